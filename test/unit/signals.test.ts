/** signals.ts: the same signal again within ECHO_MS is the first one's echo; later, or another signal, is a second. */
import { expect, test } from "bun:test";
import { ECHO_MS, firstSignal, isEcho, secondSignalName } from "../../src/signals.ts";

test("an echo is the same signal within the window", () => {
  const first = firstSignal("SIGTERM", 1000);
  expect(isEcho(first, "SIGTERM", 1000)).toBe(true);
  expect(isEcho(first, "SIGTERM", 1000 + ECHO_MS - 1)).toBe(true);
  expect(isEcho(first, "SIGTERM", 1000 + ECHO_MS)).toBe(false);
  // Ctrl-C after a SIGTERM is a decision of its own, however soon.
  expect(isEcho(first, "SIGINT", 1001)).toBe(false);
});

test("a second signal is named with the first when they differ", () => {
  const first = firstSignal("SIGTERM", 0);
  expect(secondSignalName(first, "SIGTERM")).toBe("SIGTERM again");
  expect(secondSignalName(first, "SIGINT")).toBe("SIGINT after SIGTERM");
});
