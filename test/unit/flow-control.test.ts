/**
 * serve's flow-control log (src/serve/flow-control.ts): the broker blocks and unblocks each
 * worker's connection; the process says it once, driven here with a fake clock.
 */
import { describe, expect, test } from "bun:test";
import { BlockedLog } from "../../src/serve/flow-control.ts";

const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);
const BLOCKED =
  "broker is blocking publishers: low on memory; replies wait until its resource alarm clears, none is lost (rabbitmq-diagnostics alarms on the broker says which)";

describe("a resource alarm blocking every worker", () => {
  test("one warning when the first connection is blocked, one line when the last is unblocked, with how long", () => {
    const log = new BlockedLog();
    expect(log.blocked(1, "low on memory", T0)).toEqual([
      { level: "warn", message: BLOCKED, fields: { reason: "low on memory", since: "2026-11-25T12:00:00.000Z" } },
    ]);
    expect(log.blocked(2, "low on memory", T0 + 10)).toEqual([]);
    expect(log.blocked(3, "low on memory", T0 + 20)).toEqual([]);
    expect({ count: log.count, reason: log.reason, blocks: log.blocks }).toEqual({
      count: 3,
      reason: "low on memory",
      blocks: 3,
    });

    expect(log.unblocked(2, false, T0 + 4_000)).toEqual([]);
    expect(log.unblocked(1, false, T0 + 4_100)).toEqual([]);
    expect(log.count).toBe(1);
    expect(log.unblocked(3, false, T0 + 4_200)).toEqual([
      { level: "info", message: "broker stopped blocking publishers after 4.2 s", fields: { blockedSeconds: 4.2 } },
    ]);
    expect({ count: log.count, reason: log.reason, blocks: log.blocks }).toEqual({
      count: 0,
      reason: undefined,
      blocks: 3,
    });
  });

  test("a second alarm later: said again, and the counter goes on", () => {
    const log = new BlockedLog();
    log.blocked(1, "low on memory", T0);
    log.unblocked(1, false, T0 + 1_000);
    expect(log.blocked(1, "low on disk space", T0 + 60_000)).toEqual([
      expect.objectContaining({
        level: "warn",
        message: expect.stringMatching(/^broker is blocking publishers: low on disk space; /),
      }),
    ]);
    expect(log.reason).toBe("low on disk space");
    expect(log.blocks).toBe(2);
  });

  test("a report repeated by a worker counts once; an unblock of a worker not blocked says nothing", () => {
    const log = new BlockedLog();
    log.blocked(1, "low on memory", T0);
    expect(log.blocked(1, "low on memory", T0 + 1)).toEqual([]);
    expect(log.blocks).toBe(1);
    expect(log.unblocked(2, false, T0 + 2)).toEqual([]);
    expect(log.count).toBe(1);
  });
});

describe("blocked connections that go away", () => {
  test("lost (the broker restarted, the worker died): the episode ends saying so, not as an unblock", () => {
    const log = new BlockedLog();
    log.blocked(1, "low on memory", T0);
    log.blocked(2, "low on memory", T0);
    expect(log.gone(1, T0 + 500)).toEqual([]);
    expect(log.unblocked(2, true, T0 + 12_000)).toEqual([
      {
        level: "info",
        message:
          "the blocked connections were lost after 12 s blocked; the broker blocks new ones again while its alarm lasts",
        fields: { blockedSeconds: 12 },
      },
    ]);
    expect(log.count).toBe(0);
  });

  test("the last one unblocked after another was lost: an unblock", () => {
    const log = new BlockedLog();
    log.blocked(1, "low on memory", T0);
    log.blocked(2, "low on memory", T0);
    log.gone(1, T0 + 500);
    expect(log.unblocked(2, false, T0 + 3_000)).toEqual([
      expect.objectContaining({ message: "broker stopped blocking publishers after 3.0 s" }),
    ]);
  });
});
