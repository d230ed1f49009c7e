/** serve's outage log (src/serve/outage.ts): the lines it says, driven with a fake clock. */
import { describe, expect, test } from "bun:test";
import { FibrpcError } from "../../src/errors.ts";
import { duration, OutageLog, reasonOf, SUMMARY_EVERY_MS, type AttemptFailure } from "../../src/serve/outage.ts";

const BROKER = "amqp://guest:***@127.0.0.1:1";
const refused: AttemptFailure = {
  broker: BROKER,
  reason: "connection refused",
  kind: "connection-refused",
  line: `cannot reach the broker at ${BROKER}: connection refused; start RabbitMQ there`,
};
const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);

/** Three workers retrying with amqplib's back-off (250 ms doubling to 5 s), staggered, for `ms`. */
function retryFor(
  log: OutageLog,
  workers: number,
  from: number,
  ms: number,
): { lines: ReturnType<OutageLog["retrying"]>; attempts: number } {
  const next = Array.from({ length: workers }, (_, i) => ({ at: from + i * 7, step: 0 }));
  const lines = [];
  let attempts = 0;
  for (;;) {
    const w = next.reduce((a, b) => (b.at < a.at ? b : a));
    if (w.at >= from + ms) return { lines, attempts };
    const delay = Math.min(5000, 250 * 2 ** w.step++);
    lines.push(...log.retrying(next.indexOf(w) + 1, refused, delay, w.at));
    attempts++;
    w.at += delay;
  }
}

describe("an unreachable broker at start-up", () => {
  test("one warning for the process, whatever the number of workers and attempts, within 30 s", () => {
    const log = new OutageLog(3);
    const { lines, attempts } = retryFor(log, 3, T0, SUMMARY_EVERY_MS - 1);
    expect(attempts).toBeGreaterThan(15);
    expect(lines).toEqual([
      {
        level: "warn",
        message: refused.line,
        fields: { broker: BROKER, reason: "connection refused", since: "2026-11-25T12:00:00.000Z", workers: 3 },
      },
    ]);
    expect(log.active).toBe(true);
  });

  test("then a summary at most every 30 s, at a retry (never between two back-off steps)", () => {
    const log = new OutageLog(3);
    const { lines } = retryFor(log, 3, T0, 125_000);
    expect(lines.map((l) => l.level)).toEqual(["warn", "warn", "warn", "warn", "warn"]);
    const summaries = lines.slice(1);
    const times = summaries.map((l) => Date.parse(l.fields.since as string) + (l.fields.downSeconds as number) * 1000);
    for (let i = 1; i < times.length; i++)
      expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(SUMMARY_EVERY_MS - 100);
    expect(summaries[0]!.message).toMatch(
      /^still cannot reach amqp:\/\/guest:\*\*\*@127\.0\.0\.1:1 \(connection refused\) after 3\d s: 3\/3 workers waiting, \d+ attempts in 3\d s; next try in \d\.\d s$/,
    );
    expect(summaries[0]!.fields).toMatchObject({
      broker: BROKER,
      reason: "connection refused",
      since: "2026-11-25T12:00:00.000Z",
      workersWaiting: 3,
      workers: 3,
    });
    // Every attempt is counted in exactly one line (the first one in the warning).
    const counted = 1 + summaries.reduce((sum, l) => sum + (l.fields.attempts as number), 0);
    expect(counted).toBe(summaries.at(-1)!.fields.totalAttempts as number);
  });

  test("a new kind of failure during the outage is said at once with its own remedy, once; the summaries go on", () => {
    const log = new OutageLog(1);
    const noMajority: AttemptFailure = {
      broker: BROKER,
      reason: "could not declare the queue: metadata store timed out",
      kind: "no-majority",
      line: "… could not declare the queue …; bring the cluster's other nodes back",
    };
    const unresponsive: AttemptFailure = {
      broker: BROKER,
      reason: 'could not declare queue "q": the queue does not answer',
      kind: "queue-unresponsive",
      line: "… the queue does not answer …; if it lasts, delete it (rabbitmqctl delete_queue q)",
    };
    const said = [
      ...log.retrying(1, noMajority, 300, T0),
      ...log.retrying(1, noMajority, 300, T0 + 31_000),
      ...log.retrying(1, unresponsive, 300, T0 + 40_000),
      ...log.retrying(1, unresponsive, 300, T0 + 45_000),
      ...log.retrying(1, noMajority, 300, T0 + 50_000),
      ...log.retrying(1, unresponsive, 300, T0 + 75_000),
    ].map((l) => l.message);
    expect(said).toEqual([
      noMajority.line,
      expect.stringMatching(/^still cannot reach .*metadata store timed out/),
      unresponsive.line,
      expect.stringMatching(/^still cannot reach .*does not answer\) after 1m15s/),
    ]);
  });

  test("a custom interval (the test build's knob) paces the summaries the same way", () => {
    const log = new OutageLog(2, 1000);
    expect(log.retrying(1, refused, 250, T0)).toHaveLength(1);
    expect(log.retrying(2, refused, 250, T0 + 10)).toEqual([]);
    expect(log.retrying(1, refused, 500, T0 + 999)).toEqual([]);
    const [summary] = log.retrying(2, refused, 500, T0 + 1000);
    expect(summary!.message).toBe(
      `still cannot reach ${BROKER} (connection refused) after 1.0 s: 2/2 workers waiting, 3 attempts in 1.0 s; next try in 0.5 s`,
    );
    expect(summary!.fields).toEqual({
      broker: BROKER,
      reason: "connection refused",
      since: "2026-11-25T12:00:00.000Z",
      downSeconds: 1,
      attempts: 3,
      totalAttempts: 4,
      workersWaiting: 2,
      workers: 2,
      nextTryMs: 499,
    });
    expect(log.retrying(1, refused, 1000, T0 + 1499)).toEqual([]);
  });

  test("one line once every worker serves; it says connected (not reconnected) and how long it took", () => {
    const log = new OutageLog(3);
    retryFor(log, 3, T0, 72_000);
    expect(log.serving(1, "amqp://guest:***@127.0.0.1:5672", T0 + 72_000)).toEqual([]);
    expect(log.serving(2, "amqp://guest:***@127.0.0.1:5672", T0 + 72_100)).toEqual([]);
    const [back, ...rest] = log.serving(3, "amqp://guest:***@127.0.0.1:5672", T0 + 72_300);
    expect(rest).toEqual([]);
    expect(back!.level).toBe("info");
    expect(back!.message).toMatch(
      /^connected to amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672 after 1m12s \(\d+ failed attempts\); 3\/3 workers serving$/,
    );
    expect(back!.fields).toMatchObject({
      since: "2026-11-25T12:00:00.000Z",
      downSeconds: 72.3,
      workers: 3,
      serving: 3,
    });
    expect(log.active).toBe(false);
  });
});

describe("a lost connection", () => {
  const serving = (log: OutageLog, at: number) => [1, 2].flatMap((w) => log.serving(w, "amqp://b", at));

  test("one warning when the first worker loses it, one line when all are back: reconnected", () => {
    const log = new OutageLog(2);
    expect(serving(log, T0)).toEqual([]); // a normal start says nothing here (the supervisor does)
    expect(log.lost(1, "amqp://b", "Socket closed abruptly", T0 + 1000)).toEqual([
      {
        level: "warn",
        message: "connection to amqp://b lost (Socket closed abruptly); reconnecting",
        fields: { broker: "amqp://b", reason: "Socket closed abruptly", since: "2026-11-25T12:00:01.000Z", workers: 2 },
      },
    ]);
    expect(log.lost(2, "amqp://b", "Socket closed abruptly", T0 + 1001)).toEqual([]);
    expect(log.retrying(1, undefined, 250, T0 + 1001)).toEqual([]);
    expect(log.retrying(2, undefined, 250, T0 + 1002)).toEqual([]);
    expect(log.serving(1, "amqp://b", T0 + 1300)).toEqual([]);
    expect(log.serving(2, "amqp://b", T0 + 1400)).toEqual([
      {
        level: "info",
        message: "reconnected to amqp://b after 0.4 s (0 failed attempts); 2/2 workers serving",
        fields: {
          broker: "amqp://b",
          since: "2026-11-25T12:00:01.000Z",
          downSeconds: 0.4,
          attempts: 0,
          workers: 2,
          serving: 2,
        },
      },
    ]);
    // The next outage is a new one: its own first warning.
    expect(log.lost(2, "amqp://b", "x", T0 + 5000)).toHaveLength(1);
  });

  test("only some workers back: no resumed line yet; the summary counts those still waiting", () => {
    const log = new OutageLog(3, 1000);
    for (const w of [1, 2, 3]) log.serving(w, "amqp://b", T0);
    log.lost(1, "amqp://b", "gone", T0);
    log.lost(2, "amqp://b", "gone", T0);
    expect(log.serving(1, "amqp://b", T0 + 300)).toEqual([]);
    const [summary] = log.retrying(2, refused, 500, T0 + 1200);
    expect(summary!.message).toContain("1/3 workers waiting, 1 attempt in 1.2 s");
    expect(log.active).toBe(true);
    expect(log.serving(2, "amqp://b", T0 + 1800)[0]!.message).toBe(
      "reconnected to amqp://b after 1.8 s (1 failed attempt); 3/3 workers serving",
    );
  });

  test("the broker back but refusing (the vhost, a limit): said at once, with the broker's reason and what to do; not a line per attempt", () => {
    const log = new OutageLog(1);
    log.serving(1, "amqp://b", T0);
    log.lost(1, "amqp://b", "CONNECTION_FORCED - Closed via management plugin", T0);
    const vhost: AttemptFailure = {
      broker: "amqp://b",
      reason: "refused the connection: access to vhost 'v1' refused for user 'u' (530 NOT_ALLOWED)",
      kind: "vhost",
      line: "the broker at amqp://b refused the connection: access to vhost 'v1' refused for user 'u' (530 NOT_ALLOWED); give user \"u\" permissions on vhost \"v1\" (…)",
      refused: true,
    };
    expect(log.retrying(1, vhost, 250, T0 + 10).map((l) => l.message)).toEqual([vhost.line]);
    expect(log.retrying(1, vhost, 500, T0 + 300)).toEqual([]);
    // A refusal-free failure after a lost connection stays what the lost line announced.
    const other = new OutageLog(1);
    other.serving(1, "amqp://b", T0);
    other.lost(1, "amqp://b", "gone", T0);
    expect(other.retrying(1, refused, 250, T0 + 10)).toEqual([]);
  });

  test("a worker that died is not counted as serving until its replacement serves", () => {
    const log = new OutageLog(2);
    serving(log, T0);
    log.lost(1, "amqp://b", "gone", T0);
    log.gone(2);
    expect(log.serving(1, "amqp://b", T0 + 100)).toEqual([]);
    expect(log.serving(2, "amqp://b", T0 + 900)[0]!.message).toContain("2/2 workers serving");
  });
});

test("reasonOf: the error's words after the broker it names", () => {
  const broker = "amqp://u:***@h:5672/v";
  expect(
    reasonOf(
      new FibrpcError("BROKER_UNREACHABLE", `cannot reach the broker at ${broker}: connection refused`, { broker }),
    ),
  ).toBe("connection refused");
  expect(
    reasonOf(
      new FibrpcError("BROKER_UNREACHABLE", `the broker at ${broker} closed the connection during the handshake`, {
        broker,
      }),
    ),
  ).toBe("closed the connection during the handshake");
  expect(reasonOf(new FibrpcError("BROKER_UNREACHABLE", "something else"))).toBe("something else");
});

test("duration", () => {
  expect([300, 2_950, 9_949, 14_000, 59_400, 72_000, 3_599_000, 3_600_000, 7_500_000].map(duration)).toEqual([
    "0.3 s",
    "3.0 s",
    "9.9 s",
    "14 s",
    "59 s",
    "1m12s",
    "59m59s",
    "1h00m",
    "2h05m",
  ]);
});
