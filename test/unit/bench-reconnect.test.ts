/**
 * bench through a broker restart, on virtual time: bench/reconnect.ts around fake clients of a
 * fake broker that goes away and comes back, driven by bench/run.ts as `fibrpc bench` drives it
 * (the same over a real private node: test/integration/restarts.test.ts). The open loop keeps its
 * schedule, the closed loop waits for the new connection, every failure is counted, the outage is
 * reported, and the run's exit code is never 0.
 */
import { expect, test } from "bun:test";
import { createConsola } from "consola/core";
import { ReconnectingCaller } from "../../src/bench/reconnect.ts";
import { type Caller, type Outage, rateSeconds, runBench, type BenchOptions } from "../../src/bench/run.ts";
import { formatSummary } from "../../src/bench/summary.ts";
import { ExitCode, FibrpcError } from "../../src/errors.ts";
import type { CallOutcome, RpcClient } from "../../src/rpc/client.ts";
import { FakeClock } from "./fake-clock.ts";

const BROKER = "amqp://guest:***@127.0.0.1:5672";

/**
 * A broker that answers each call in `serviceMs`, is down from `down.from` to `down.to` (its
 * clients lose their connection then: calls in flight fail, as RpcClient's do), refuses
 * connections while down, or with `refuse` for good from then on.
 */
function fakeBroker(
  clock: FakeClock,
  o: { serviceMs: number; down: { from: number; to: number }; refuse?: FibrpcError },
) {
  const live = new Set<{ lose: () => void }>();
  const sentWhileDown: number[] = [];
  let connects = 0;
  clock.at(o.down.from, () => {
    for (const client of live) client.lose();
    live.clear();
  });
  const isDown = () => clock.now() >= o.down.from && clock.now() < o.down.to;
  const make = (): RpcClient => {
    let usable = true;
    const pending = new Set<(outcome: CallOutcome) => void>();
    const self = {
      lose: () => {
        usable = false;
        const error = new FibrpcError(
          "CONNECTION_LOST",
          `the connection to the broker at ${BROKER} was lost while the call was in flight`,
          { reason: "connection-lost" },
        );
        for (const settle of pending)
          settle({ n: 1, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 });
        pending.clear();
      },
    };
    live.add(self);
    const client = {
      broker: BROKER,
      get usable() {
        return usable;
      },
      call(n: number): Promise<CallOutcome> {
        if (isDown()) sentWhileDown.push(clock.now());
        return new Promise((resolve) => {
          pending.add(resolve);
          clock.at(clock.now() + o.serviceMs, () => {
            if (!pending.delete(resolve)) return;
            resolve({ n, ok: true, result: "1", ms: o.serviceMs });
          });
        });
      },
      close: async () => {
        usable = false;
      },
    };
    return client as unknown as RpcClient;
  };
  const connect = async (): Promise<RpcClient> => {
    connects++;
    if (o.refuse && clock.now() >= o.down.from) throw o.refuse;
    if (isDown())
      throw new FibrpcError("BROKER_UNREACHABLE", `cannot reach the broker at ${BROKER}: connection refused`, {
        reason: "connection-refused",
        broker: BROKER,
      });
    return make();
  };
  return { first: make(), connect, sentWhileDown, connects: () => connects };
}

const quiet = createConsola({ level: -999 });
const base = { concurrency: 1, n: { min: 1, max: 1 }, timeoutMs: 5_000 };

async function benchAcross(o: {
  down: { from: number; to: number };
  refuse?: FibrpcError;
  bench: Partial<BenchOptions>;
}) {
  const clock = new FakeClock();
  const broker = fakeBroker(clock, { serviceMs: 5, down: o.down, refuse: o.refuse });
  const durationMs = o.bench.durationMs;
  const caller = new ReconnectingCaller(broker.first, broker.connect, {
    // As bench/session.ts: the run's end bounds reconnecting with --duration, --timeout without.
    reconnectUntil: (lostAt) => (durationMs === undefined ? lostAt + base.timeoutMs : Number.POSITIVE_INFINITY),
    log: quiet,
    clock,
    time: clock,
  });
  const result = await clock.run(runBench(caller, { ...base, ...o.bench, clock }));
  await caller.close();
  return {
    result,
    broker,
    summary: formatSummary(result, { n: "1", queue: "rpc_queue", requests: o.bench.requests, durationMs }),
  };
}

test("open loop, --rate 20 for 20 s across a 4.4 s outage: the schedule kept, the calls due meanwhile failed and counted, the outage reported, exit 75", async () => {
  const { result, broker, summary } = await benchAcross({
    down: { from: 3_010, to: 7_400 },
    bench: { rate: 20, durationMs: 20_000 },
  });
  expect(result.mode).toBe("open-loop");
  // Every call of the schedule was made: 20/s for 20 s, none missed, none skipped.
  expect(result.calls).toBe(400);
  expect(result.mode === "open-loop" && result.missed).toBe(0);
  // To the last call's intended start (19.95 s) and its answer.
  expect(result.seconds).toBeGreaterThanOrEqual(19.95);
  expect(result.cutShort).toBeUndefined();
  // The calls due while the broker was away (3.05 s to the reconnection) failed at once, "not sent".
  expect(result.errors).toEqual({ CONNECTION_LOST: result.failed });
  expect(result.failed).toBeGreaterThanOrEqual(87); // 3.05 s .. 7.4 s at 20/s
  expect(result.ok).toBe(400 - result.failed);
  expect(broker.sentWhileDown).toEqual([]);
  expect(result.outages).toHaveLength(1);
  const [outage] = result.outages;
  expect(outage!.fromSeconds).toBeCloseTo(3.05, 6);
  // Reconnected within a back-off step (at most 1.5 s) of the broker's return.
  expect(outage!.toSeconds!).toBeGreaterThanOrEqual(7.4);
  expect(outage!.toSeconds!).toBeLessThanOrEqual(8.9);
  expect(outage!.failed).toBe(result.failed);
  expect(outage!.lastError).toEqual({
    code: "BROKER_UNREACHABLE",
    message: `cannot reach the broker at ${BROKER}: connection refused`,
  });
  // Only answered calls in the rate, over the run or its schedule (whichever is longer).
  expect(result.callsPerSecond * rateSeconds(result, result.seconds)).toBeCloseTo(result.ok, 6);
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(summary).toMatch(
    new RegExp(
      `^ {2}outage {4}no connection to the broker from t=3\\.[01] s to t=\\d\\.\\d s \\(\\d\\.\\d s\\): ${result.failed} calls failed; last error: cannot reach the broker at amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:5672: connection refused$`,
      "m",
    ),
  );
  expect(summary).toMatch(new RegExp(`^ {2}errors {4}CONNECTION_LOST ${result.failed}$`, "m"));
  expect(summary).toContain(`; ${result.failed} failed calls not counted)`);
});

test("closed loop, 3 in flight for 20 s across the same outage: the calls in flight failed, none sent while away, the run went on to its end, exit 75", async () => {
  const { result, broker, summary } = await benchAcross({
    down: { from: 3_001, to: 7_400 },
    bench: { concurrency: 3, durationMs: 20_000 },
  });
  expect(result.mode).toBe("closed-loop");
  expect(result.seconds).toBeGreaterThanOrEqual(20);
  expect(result.cutShort).toBeUndefined();
  // The three in flight when the connection went; then the loops waited instead of failing calls.
  expect(result.errors).toEqual({ CONNECTION_LOST: 3 });
  expect(broker.sentWhileDown).toEqual([]);
  expect(result.outages).toHaveLength(1);
  expect(result.outages[0]).toMatchObject({ failed: 3 });
  expect(result.outages[0]!.fromSeconds).toBeCloseTo(3.001, 6);
  // Answered before and after: 3 calls per 5 ms, over the 20 s less the outage.
  const away = result.outages[0]!.seconds;
  expect(result.ok).toBeGreaterThan(3 * ((20 - away) * 200 - 10));
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(summary).toMatch(
    /^ {2}outage {4}no connection to the broker from t=3\.0 s to t=\d\.\d s \(\d\.\d s\): 3 calls failed; last error: /m,
  );
});

test("the broker not back within --timeout of the loss (a run of --requests): cut short, the outage to the end, exit 68", async () => {
  const { result, summary } = await benchAcross({
    down: { from: 1_001, to: 60_000 },
    bench: { concurrency: 2, requests: 1_000_000 },
  });
  expect(result.cutShort).toMatchObject({
    code: "BROKER_UNREACHABLE",
    message: `cannot reach the broker at ${BROKER}: connection refused`,
  });
  // Given up --timeout (5 s) after the loss.
  expect(result.cutShort!.atSeconds).toBeCloseTo(6.001, 6);
  expect(result.outages).toEqual([
    {
      fromSeconds: 1.001,
      toSeconds: null,
      seconds: expect.any(Number),
      failed: 2,
      lastError: expect.objectContaining({ code: "BROKER_UNREACHABLE" }),
    },
  ]);
  expect(result.exitCode).toBe(ExitCode.BROKER_UNREACHABLE);
  expect(summary).toMatch(
    /^ {2}outage {4}no connection to the broker from t=1\.0 s to the end of the run \(t=6\.0 s\) \(5\.0 s\): 2 calls failed; last error: /m,
  );
  expect(summary).toMatch(
    new RegExp(
      `^ {2}cut short at t=6\\.0 s after ${result.calls} of the 1000000 calls planned: BROKER_UNREACHABLE: cannot reach the broker at amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:5672: connection refused$`,
      "m",
    ),
  );
});

test("reconnecting refused for a reason waiting cannot fix (the login): cut short at once, with its exit code (77)", async () => {
  const refuse = new FibrpcError(
    "ACCESS_REFUSED",
    `the broker at ${BROKER} refused the login: wrong user name or password`,
    { reason: "login" },
  );
  const { result } = await benchAcross({
    down: { from: 2_001, to: 2_500 },
    refuse,
    bench: { rate: 100, durationMs: 10_000 },
  });
  expect(result.cutShort).toMatchObject({ code: "ACCESS_REFUSED" });
  expect(result.cutShort!.atSeconds).toBeLessThan(2.1);
  expect(result.exitCode).toBe(ExitCode.ACCESS_REFUSED);
});

/**
 * A caller whose connection is lost at 1 s and open again at 2 s (bench/reconnect.ts), where the queue has no
 * server until `serverAt` (never, if undefined): the calls meanwhile are not sent, as ReconnectingCaller fails them.
 */
function noServerYet(clock: FakeClock, serverAt: number | undefined): Caller {
  const outage: Outage = { from: 1_000, failed: 0, lastError: undefined };
  const outages: Outage[] = [];
  const notSent = (code: "CONNECTION_LOST" | "NO_CONSUMER") =>
    new FibrpcError(code, code === "NO_CONSUMER" ? "reconnected; the queue has no server yet" : "no connection", {
      reason: "not-sent",
      outage: true,
    });
  return {
    usable: true,
    outages,
    async call(n: number): Promise<CallOutcome> {
      const now = clock.now();
      if (now >= 1_000 && (serverAt === undefined || now < serverAt)) {
        if (outages.length === 0) outages.push(outage);
        if (now >= 2_000) {
          outage.noServerFrom ??= 2_000;
          outage.lastError = new FibrpcError("NO_CONSUMER", "reconnected; the queue has no server yet");
        }
        const error = notSent(now < 2_000 ? "CONNECTION_LOST" : "NO_CONSUMER");
        outage.failed++;
        return { n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 };
      }
      if (outages.length > 0 && outage.to === undefined) outage.to = serverAt;
      await clock.sleep(5);
      return { n, ok: true, result: "1", ms: 5 };
    },
  };
}

test("reconnected, no server on the queue yet: the calls meanwhile are NO_CONSUMER and the outage says so; exit 75 once one came, 69 if none did", async () => {
  for (const serverAt of [4_000, undefined]) {
    const clock = new FakeClock();
    const result = await clock.run(
      runBench(noServerYet(clock, serverAt), { ...base, rate: 10, durationMs: 6_000, clock }),
    );
    const summary = formatSummary(result, { n: "1", queue: "rpc_queue", durationMs: 6_000 });
    const noServerCalls = ((serverAt ?? 6_000) - 2_000) / 100;
    expect(result.errors).toEqual({ CONNECTION_LOST: 10, NO_CONSUMER: noServerCalls });
    expect(result.outages).toEqual([
      {
        fromSeconds: 1,
        toSeconds: serverAt === undefined ? null : serverAt / 1_000,
        seconds: expect.any(Number),
        failed: 10 + noServerCalls,
        lastError: { code: "NO_CONSUMER", message: "reconnected; the queue has no server yet" },
        noServerFromSeconds: 2,
      },
    ]);
    const until = serverAt === undefined ? "the end of the run \\(t=5\\.9 s\\)" : "t=4\\.0 s";
    expect(summary).toMatch(
      new RegExp(
        `^ {2}outage {4}no connection to the broker from t=1\\.0 s, no server on queue "rpc_queue" from t=2\\.0 s, to ${until} `,
        "m",
      ),
    );
    // Recovered: the calls not sent count as the outage does (75), not as NO_CONSUMER's 69.
    expect(result.exitCode).toBe(serverAt === undefined ? ExitCode.NO_SERVER : ExitCode.TEMPORARY);
  }
});
