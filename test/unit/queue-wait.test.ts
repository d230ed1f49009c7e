import { describe, expect, test } from "bun:test";
import { queueWaitMs } from "../../src/rpc/process-span.ts";

describe("queue wait from a request's AMQP timestamp (whole seconds)", () => {
  const now = 1_800_000_000_250; // a quarter of a second into a second, in ms

  test("from the timestamp's second to the delivery: up to 1 s more than the wait", () => {
    expect(queueWaitMs(1_800_000_000, now)).toBe(250);
    expect(queueWaitMs(1_799_999_990, now)).toBe(10_250);
  });

  test("none when absent or not a whole positive number", () => {
    // 2 ** 64 - 1 is what amqplib decodes from a hostile 64-bit value: not a safe integer.
    for (const timestamp of [undefined, null, "1800000000", 1_800_000_000.5, Number.NaN, 0, -5, 2 ** 64 - 1]) {
      expect(queueWaitMs(timestamp, now)).toBeUndefined();
    }
  });

  test("none when implausible: in the future (a clock ahead, or milliseconds), or over a day old", () => {
    expect(queueWaitMs(1_800_000_001, now)).toBeUndefined();
    expect(queueWaitMs(now, now)).toBeUndefined();
    expect(queueWaitMs(Number.MAX_SAFE_INTEGER, now)).toBeUndefined();
    expect(queueWaitMs(1_800_000_000 - 86_401, now)).toBeUndefined();
    expect(queueWaitMs(1_800_000_000 - 86_399, now)).toBe(86_399_250);
  });
});
