/** --retry's "retrying" lines (rpc/retry-lines.ts): bounded when many calls retry at once, complete for one call. */
import { expect, test } from "bun:test";
import { QUIET_MS, RetryLines } from "../../src/rpc/retry-lines.ts";

function linesAt() {
  const lines: string[] = [];
  let now = 0;
  const log = { debug: () => {}, warn: () => {}, info: (message: string) => lines.push(`${now}: ${message}`) };
  const retry = new RetryLines(log, () => now);
  return { retry, lines, at: (ms: number) => (now = ms) };
}

test("a hundred calls retrying after one outage: a line a second for a new call, the others counted", () => {
  const { retry, lines, at } = linesAt();
  for (let i = 0; i < 100; i++) {
    at(i * 30); // 100 calls over 3 s
    retry.retrying(`c${i}`, "BROKER_UNREACHABLE", `fib(${i}): BROKER_UNREACHABLE; retrying (retry 1/3)`);
  }
  at(3_500);
  retry.flush();
  expect(lines).toEqual([
    "0: fib(0): BROKER_UNREACHABLE; retrying (retry 1/3)",
    "1020: fib(34): BROKER_UNREACHABLE; retrying (retry 1/3); 33 other calls retried after BROKER_UNREACHABLE since the last such line",
    "2040: fib(68): BROKER_UNREACHABLE; retrying (retry 1/3); 33 other calls retried after BROKER_UNREACHABLE since the last such line",
    "3500: 31 other calls retried after BROKER_UNREACHABLE since the last such line",
  ]);
  expect(QUIET_MS).toBe(1_000);
});

test("a call that had a line has all its later ones; each code on its own; an ended call is not followed", () => {
  const { retry, lines, at } = linesAt();
  retry.retrying("a", "TIMEOUT", "fib(1): TIMEOUT; retrying (retry 1/2)");
  at(10);
  retry.retrying("a", "TIMEOUT", "fib(1): TIMEOUT; retrying (retry 2/2)");
  retry.retrying("b", "TIMEOUT", "fib(2): TIMEOUT; retrying (retry 1/2)");
  retry.retrying("b", "CONNECTION_LOST", "fib(2): CONNECTION_LOST; retrying (retry 2/2)");
  retry.ended("a");
  retry.retrying("a", "TIMEOUT", "fib(1) again: TIMEOUT");
  retry.flush();
  retry.flush();
  expect(lines).toEqual([
    "0: fib(1): TIMEOUT; retrying (retry 1/2)",
    "10: fib(1): TIMEOUT; retrying (retry 2/2)",
    "10: fib(2): CONNECTION_LOST; retrying (retry 2/2)",
    "10: 2 other calls retried after TIMEOUT since the last such line",
  ]);
});
