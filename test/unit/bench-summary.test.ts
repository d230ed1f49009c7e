/**
 * What bench reports when calls fail (bench/run.ts, bench/summary.ts), on virtual time: the rate
 * counts answered calls only, failed ones are counted apart by code, no percentile is printed
 * without an answer (never "p50 0.000 ms"), and the exit code is never 0.
 */
import { expect, test } from "bun:test";
import { runBench, type BenchOptions, type Caller } from "../../src/bench/run.ts";
import { formatSummary, perSecond } from "../../src/bench/summary.ts";
import { ExitCode, FibrpcError } from "../../src/errors.ts";
import type { CallOutcome } from "../../src/rpc/client.ts";
import { FakeClock } from "./fake-clock.ts";

/** Calls answered or timed out after `ms`, as `fails(i)` says for the i-th call. */
function server(clock: FakeClock, ms: number, fails: (i: number) => boolean): Caller {
  let i = 0;
  return {
    usable: true,
    call: (n) =>
      new Promise<CallOutcome>((resolve) => {
        const failed = fails(i++);
        clock.at(clock.now() + ms, () => {
          if (!failed) return resolve({ n, ok: true, result: "1", ms });
          const error = new FibrpcError("TIMEOUT", 'no reply within the timeout from a server on queue "rpc_queue"', {
            reason: "reply-timed-out",
          });
          resolve({ n, ok: false, code: error.code, message: error.message, remote: false, error, ms });
        });
      }),
  };
}

async function bench(fails: (i: number) => boolean, o: Partial<BenchOptions>) {
  const clock = new FakeClock();
  const result = await clock.run(
    runBench(server(clock, 10, fails), {
      concurrency: 2,
      n: { min: 1, max: 1 },
      timeoutMs: 10,
      requests: 10,
      ...o,
      clock,
    }),
  );
  return {
    result,
    summary: formatSummary(result, { n: "1", queue: "rpc_queue", requests: o.requests ?? 10 }),
    json: JSON.parse(JSON.stringify(result)),
  };
}

test("nothing answered, closed loop: 0 calls/s, the failures counted, no percentile but 'no answered calls', exit 75", async () => {
  const { result, summary, json } = await bench(() => true, {});
  expect(result).toMatchObject({
    calls: 10,
    ok: 0,
    failed: 10,
    callsPerSecond: 0,
    latencyMs: null,
    errors: { TIMEOUT: 10 },
    outages: [],
  });
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(json.latencyMs).toBeNull();
  expect(summary).toBe(
    [
      'fibrpc bench: 10 calls of fib(1) on queue "rpc_queue", closed-loop, 2 in flight, in 0.05 s',
      "  calls/s   0  (answered calls only; 10 failed calls not counted)",
      "  latency   none: no answered calls",
      "  errors    TIMEOUT 10",
      "",
    ].join("\n"),
  );
  expect(summary).not.toMatch(/p50|0\.000 ms/);
});

test("nothing answered, open loop: 0 answered/s, no latency percentile (the send lag of the calls sent is still shown), exit 75", async () => {
  const { result, summary } = await bench(() => true, { rate: 100 });
  expect(result).toMatchObject({ mode: "open-loop", calls: 10, ok: 0, failed: 10, callsPerSecond: 0, latencyMs: null });
  expect(result.sendLagMs).not.toBeNull();
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(summary).toMatch(
    /^ {2}answered\/s 0 {2}\(over all 0\.10 s, incl\. the drain of the calls in flight at the end; 10 failed calls not counted\)$/m,
  );
  expect(summary).toMatch(/^ {2}latency {3}none: no answered calls$/m);
  expect(summary).toMatch(/^ {2}send lag {2}p50 0\.000 ms/m);
});

test("some answered: the rate is of the answered calls only, the percentiles of theirs; exit 75", async () => {
  const { result, summary } = await bench((i) => i % 4 === 0, { requests: 40 });
  expect(result).toMatchObject({ calls: 40, ok: 30, failed: 10, errors: { TIMEOUT: 10 } });
  expect(result.callsPerSecond * result.seconds).toBeCloseTo(30, 9);
  expect(result.latencyMs).toEqual({ p50: 10, p90: 10, p99: 10, p999: 10, max: 10 });
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(summary).toMatch(/^ {2}calls\/s {3}\d+ {2}\(answered calls only; 10 failed calls not counted\)$/m);
});

test("some failed: the latency line says its percentiles are of the answered calls only (a timeout has none)", async () => {
  const { summary } = await bench((i) => i % 4 === 0, { requests: 40 });
  expect(summary).toMatch(/^ {2}latency {3}p50 10\.000 ms .*\(from each send; answered calls only, 10 failed\)$/m);
});

test("open loop whose last answer comes before its schedule's end: answered/s is over the schedule, never above the rate", async () => {
  // --rate 1 for 3 calls: sent at 0, 1 and 2 s, the last answered at 2.01 s; the schedule is 3 s long.
  const { result, summary } = await bench(() => false, { rate: 1, requests: 3 });
  expect(result.seconds).toBeCloseTo(2.01, 6);
  expect(result.callsPerSecond).toBeCloseTo(1, 9);
  expect(summary).toMatch(/^ {2}answered\/s 1 {2}\(over the 3\.00 s of its schedule, incl\. the drain/m);
});

test("every call answered: the summary as before, exit 0", async () => {
  const { result, summary } = await bench(() => false, {});
  expect(result).toMatchObject({ calls: 10, ok: 10, failed: 0, errors: {}, outages: [] });
  expect(result.cutShort).toBeUndefined();
  expect(result.exitCode).toBe(ExitCode.OK);
  expect(summary).toMatch(/^ {2}calls\/s {3}\d+$/m);
  expect(summary).toMatch(/^ {2}errors {4}none \(every answer checked against the exact value\)$/m);
  expect(summary).not.toMatch(/not counted|outage|cut short/);
  // Above n = 100000 an answer is checked by its digits: the line does not claim more.
  expect(formatSummary(result, { n: "200000", nMax: 200_000, queue: "q" })).toMatch(
    /^ {2}errors {4}none \(every answer checked: whole below n = 100000, by its number of digits and last 12 digits above\)$/m,
  );
});

test('one call is said as one, not "1 calls"', async () => {
  const { summary } = await bench(() => false, { requests: 1, concurrency: 1 });
  expect(summary).toStartWith('fibrpc bench: 1 call of fib(1) on queue "rpc_queue", closed-loop, 1 in flight, in ');
});

test("rates below 10 calls/s keep two significant digits (a --rate of 0.3 is not 0)", () => {
  expect([0.3, 1.4985, 0.049, 0, 9.96, 12.4].map(perSecond)).toEqual(["0.3", "1.5", "0.049", "0", "10", "12"]);
});

test("a caller that stops (a lost connection, no reconnecting) before the calls planned: cut short, never exit 0", async () => {
  const clock = new FakeClock();
  let calls = 0;
  const caller: Caller = {
    get usable() {
      return calls < 4;
    },
    call: async (n) => {
      calls++;
      return { n, ok: true, result: "1", ms: 0 };
    },
  };
  const result = await clock.run(
    runBench(caller, { concurrency: 1, n: { min: 1, max: 1 }, timeoutMs: 10, requests: 10, clock }),
  );
  expect(result).toMatchObject({
    calls: 4,
    ok: 4,
    failed: 0,
    cutShort: { atSeconds: 0, code: "CONNECTION_LOST", message: "the connection to the broker was lost" },
  });
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(formatSummary(result, { n: "1", queue: "q", requests: 10 })).toMatch(
    /^ {2}cut short at t=0\.0 s after 4 of the 10 calls planned: CONNECTION_LOST: the connection to the broker was lost$/m,
  );
});

test("an outage in which no call failed (none was in flight): still shown, and the run exits 75, not 0", async () => {
  const clock = new FakeClock();
  const caller: Caller = {
    usable: true,
    outages: [
      {
        from: 1,
        to: 3,
        failed: 0,
        lastError: new FibrpcError(
          "BROKER_UNREACHABLE",
          "cannot reach the broker at amqp://guest:***@127.0.0.1:5672: connection refused",
        ),
      },
    ],
    call: async (n) => ({ n, ok: true, result: "1", ms: 0 }),
  };
  const result = await clock.run(
    runBench(caller, { concurrency: 1, n: { min: 1, max: 1 }, timeoutMs: 10, requests: 10, clock }),
  );
  expect(result).toMatchObject({ calls: 10, ok: 10, failed: 0, errors: {} });
  expect(result.outages).toEqual([
    {
      fromSeconds: 0.001,
      toSeconds: 0.003,
      seconds: 0.002,
      failed: 0,
      lastError: {
        code: "BROKER_UNREACHABLE",
        message: "cannot reach the broker at amqp://guest:***@127.0.0.1:5672: connection refused",
      },
    },
  ]);
  expect(result.exitCode).toBe(ExitCode.TEMPORARY);
  expect(formatSummary(result, { n: "1", queue: "q" })).toMatch(
    /^ {2}outage {4}no connection to the broker from t=0\.0 s to t=0\.0 s \(2 ms\): 0 calls failed; last error: cannot reach the broker at amqp:\/\/guest:\*\*\*@127\.0\.0\.1:5672: connection refused$/m,
  );
});
