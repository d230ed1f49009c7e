/**
 * The bench's two loads against a simulated server on a fake clock: open loop measures each call
 * from its intended start, so a stall or a late load generator shows in the percentiles; closed
 * loop, at the same server, hides the stall (coordinated omission).
 */
import { expect, test } from "bun:test";
import { runBench, type Caller } from "../../src/bench/run.ts";
import type { CallOutcome } from "../../src/rpc/client.ts";
import { FakeClock } from "./fake-clock.ts";

/** One server taking requests in order, `serviceMs` each, serving nothing from stall.from to stall.to. */
function fakeServer(
  clock: FakeClock,
  serviceMs: number,
  stall = { from: 0, to: 0 },
): Caller & { sent: number; maxInFlight: number } {
  let freeAt = 0;
  let inFlight = 0;
  const server = {
    sent: 0,
    maxInFlight: 0,
    usable: true,
    call(n: number): Promise<CallOutcome> {
      server.sent++;
      server.maxInFlight = Math.max(server.maxInFlight, ++inFlight);
      let start = Math.max(clock.now(), freeAt);
      if (start >= stall.from && start < stall.to) start = stall.to;
      freeAt = start + serviceMs;
      const sentAt = clock.now();
      return new Promise((resolve) =>
        clock.at(freeAt, () => {
          inFlight--;
          resolve({ n, ok: true, result: "1", ms: clock.now() - sentAt });
        }),
      );
    },
  };
  return server;
}

const base = { concurrency: 1, n: { min: 1, max: 1 }, timeoutMs: 30_000 };

test("open loop, server keeping up: calls at their intended starts, latency = service time, the rate achieved", async () => {
  const clock = new FakeClock();
  const server = fakeServer(clock, 0.5);
  const r = await clock.run(runBench(server, { ...base, rate: 1000, requests: 1000, clock }));
  expect(r).toMatchObject({
    mode: "open-loop",
    rate: 1000,
    missed: 0,
    latencyFrom: "intended-start",
    calls: 1000,
    ok: 1000,
    errors: {},
  });
  expect(r.latencyMs!.p50).toBeCloseTo(0.5, 2);
  expect(r.latencyMs!.max).toBeCloseTo(0.5, 2);
  expect(r.sendLagMs!.max).toBe(0);
  expect(r.mode === "open-loop" && r.achievedRate).toBeCloseTo(1000, 0);
  // The last call is due at 999 ms and takes 0.5 ms.
  expect(r.seconds).toBeCloseTo(0.9995, 4);
});

test("a 200 ms stall: open loop puts it in p90 and p99, closed loop only in its max", async () => {
  const stall = { from: 100, to: 300 };
  const openClock = new FakeClock();
  const open = await openClock.run(
    runBench(fakeServer(openClock, 0.5, stall), { ...base, rate: 1000, requests: 1000, clock: openClock }),
  );
  const closedClock = new FakeClock();
  const closed = await closedClock.run(
    runBench(fakeServer(closedClock, 0.5, stall), { ...base, concurrency: 1, requests: 1000, clock: closedClock }),
  );
  console.log(
    `stall of 200 ms in 1 s: open loop p50 ${open.latencyMs!.p50} p90 ${open.latencyMs!.p90} p99 ${open.latencyMs!.p99} max ${open.latencyMs!.max}; closed loop p50 ${closed.latencyMs!.p50} p90 ${closed.latencyMs!.p90} p99 ${closed.latencyMs!.p99} max ${closed.latencyMs!.max}`,
  );
  expect(closed).toMatchObject({ mode: "closed-loop", concurrency: 1, latencyFrom: "send", calls: 1000, ok: 1000 });
  expect(open).toMatchObject({ mode: "open-loop", calls: 1000, ok: 1000, missed: 0 });
  // Closed loop: one call waited out the stall; the 200 calls due during it were never sent then.
  expect(closed.latencyMs!.max).toBeGreaterThanOrEqual(200);
  expect(closed.latencyMs!.p99).toBeLessThan(1);
  // Open loop: the calls due during the stall waited for it, up to 200 ms; and the backlog after.
  expect(open.latencyMs!.max).toBeGreaterThanOrEqual(200);
  expect(open.latencyMs!.p99).toBeGreaterThan(150);
  expect(open.latencyMs!.p90).toBeGreaterThan(50);
});

test("latency runs from the intended start: a late load generator's delay is in it", async () => {
  // Every sleep of the scheduler wakes 5 ms late; it then sends what is due, back to back.
  const clock = new FakeClock(5);
  const r = await clock.run(runBench(fakeServer(clock, 0.1), { ...base, rate: 1000, requests: 500, clock }));
  expect(r).toMatchObject({ calls: 500, ok: 500, missed: 0 });
  expect(r.sendLagMs!.max).toBeGreaterThanOrEqual(5);
  expect(r.sendLagMs!.p50).toBeGreaterThan(1);
  // Measured from the send, every call would take 0.1 ms to 0.6 ms (queued behind its batch).
  expect(r.latencyMs!.p90).toBeGreaterThan(4);
  expect(r.latencyMs!.max).toBeGreaterThanOrEqual(5.1);
});

test("open loop is not throttled by calls in flight, up to the cap; calls due beyond it are missed", async () => {
  const clock = new FakeClock();
  // The server stalls for the whole schedule: nothing returns before 1 s.
  const server = fakeServer(clock, 0.5, { from: 0, to: 1000 });
  const r = await clock.run(
    runBench(server, { ...base, concurrency: 100, rate: 1000, requests: 200, maxOutstanding: 50, clock }),
  );
  expect(r).toMatchObject({ mode: "open-loop", calls: 50, ok: 50, missed: 150, maxOutstanding: 50 });
  expect(server.sent).toBe(50);
  expect(server.maxInFlight).toBe(50);
  expect(r.mode === "open-loop" && r.achievedRate).toBeCloseTo(250, 0); // 50 sent over the 200 ms the schedule took

  // Without a cap below the load, the calls pile up in flight: the schedule goes on.
  const clock2 = new FakeClock();
  const server2 = fakeServer(clock2, 0.5, { from: 0, to: 1000 });
  const r2 = await clock2.run(runBench(server2, { ...base, concurrency: 1, rate: 1000, requests: 200, clock: clock2 }));
  expect(r2).toMatchObject({ calls: 200, ok: 200, missed: 0 });
  expect(server2.maxInFlight).toBe(200);
});

test("open loop with a duration: the calls due before its end", async () => {
  const clock = new FakeClock();
  const r = await clock.run(runBench(fakeServer(clock, 0.2), { ...base, rate: 400, durationMs: 500, clock }));
  expect(r).toMatchObject({ mode: "open-loop", calls: 200, ok: 200, missed: 0 });
});

test("the run's exit code is the one `fibrpc call` gives the same outcomes, the most severe winning", async () => {
  const { ExitCode, FibrpcError } = await import("../../src/errors.ts");
  // Outcomes in turn: an error reply (no FibrpcError: REMOTE_ERROR), a wrong answer (REMOTE_ERROR),
  // then a queue that has gone (a client error carrying NO_SERVER), then fine.
  const notFound = new FibrpcError("QUEUE_NOT_FOUND", `queue "q" does not exist`);
  const outcomes = (i: number): CallOutcome =>
    i === 0
      ? { n: 1, ok: false, code: "N_TOO_LARGE", message: "too large", remote: true, ms: 1 }
      : i === 1
        ? { n: 1, ok: true, result: "2", ms: 1 }
        : i === 2
          ? {
              n: 1,
              ok: false,
              code: "QUEUE_NOT_FOUND",
              message: notFound.message,
              remote: false,
              error: notFound,
              ms: 1,
            }
          : { n: 1, ok: true, result: "1", ms: 1 };
  const caller = (upTo: number): Caller => {
    let i = 0;
    return { usable: true, call: async () => (i < upTo ? outcomes(i++) : outcomes(3)) };
  };
  expect((await runBench(caller(0), { ...base, requests: 5 })).exitCode).toBe(ExitCode.OK);
  expect((await runBench(caller(1), { ...base, requests: 5 })).exitCode).toBe(ExitCode.REMOTE_ERROR);
  expect((await runBench(caller(2), { ...base, requests: 5 })).exitCode).toBe(ExitCode.REMOTE_ERROR);
  // QUEUE_NOT_FOUND: 69, as `fibrpc call` exits for it (it was 76 here, bench's own rule).
  expect((await runBench(caller(3), { ...base, requests: 5 })).exitCode).toBe(ExitCode.NO_SERVER);
});

test("stopped (SIGINT): no call starts after it, those in flight finish, the run says it was cut short; exit 130", async () => {
  for (const rate of [undefined, 1000]) {
    const clock = new FakeClock();
    const server = fakeServer(clock, 1);
    const stop = new AbortController();
    clock.at(100, () => stop.abort("SIGINT"));
    const r = await clock.run(
      runBench(server, { ...base, concurrency: 4, rate, durationMs: 10_000, clock, stop: stop.signal }),
    );
    expect(r.cutShort).toMatchObject({ atSeconds: 0.1, code: "SIGINT" });
    expect(r.exitCode).toBe(130);
    expect(r.calls).toBe(server.sent);
    expect(r.ok).toBe(r.calls);
    // Nothing sent after the signal: at most what was in flight then had to finish, 1 ms each.
    expect(r.seconds).toBeLessThan(0.2);
  }
});

test("open loop at a low rate, stopped between two calls: answered/s is over the time run, not the next call's due time", async () => {
  const clock = new FakeClock();
  const server = fakeServer(clock, 10);
  const stop = new AbortController();
  // One call per 1000 s: the first goes at t=0, the signal comes at 15 s, long before the second is due.
  clock.at(15_000, () => stop.abort("SIGTERM"));
  const r = await clock.run(runBench(server, { ...base, rate: 0.001, requests: 2, clock, stop: stop.signal }));
  expect(r).toMatchObject({ calls: 1, ok: 1, exitCode: 143, cutShort: { code: "SIGTERM", atSeconds: 15 } });
  expect(r.mode === "open-loop" && r.scheduleSeconds).toBeCloseTo(15, 3);
  expect(r.callsPerSecond).toBeCloseTo(1 / 15, 4);
});

test("a signal after the plan's last call started cuts nothing: the run ends as planned, exit 0", async () => {
  const clock = new FakeClock();
  const server = fakeServer(clock, 10);
  const stop = new AbortController();
  // 4 calls in flight from t=0; the signal comes while they are, and no fifth was planned.
  clock.at(5, () => stop.abort("SIGTERM"));
  const r = await clock.run(runBench(server, { ...base, concurrency: 4, requests: 4, clock, stop: stop.signal }));
  expect(r).toMatchObject({ calls: 4, ok: 4, exitCode: 0 });
  expect(r.cutShort).toBeUndefined();
});

test("a signal before --duration's end cuts the run short, even when the calls in flight outlast that end", async () => {
  const clock = new FakeClock();
  const server = fakeServer(clock, 5_000); // each call held 5 s, as by a broker's resource alarm
  const stop = new AbortController();
  clock.at(2_000, () => stop.abort("SIGINT"));
  const r = await clock.run(runBench(server, { ...base, concurrency: 1, durationMs: 4_000, clock, stop: stop.signal }));
  expect(r).toMatchObject({ calls: 1, exitCode: 130, cutShort: { code: "SIGINT", atSeconds: 2 } });
});

test("stopped while waiting for the connection to come back: the wait ends with the run", async () => {
  const clock = new FakeClock();
  const never = new Promise<void>(() => {});
  const caller: Caller = {
    usable: true,
    call: async (n) => ({ n, ok: false, code: "CONNECTION_LOST", message: "gone", ms: 0 }) as CallOutcome,
    // Disconnected for good: every loop waits to reconnect.
    ready: () => never,
  };
  const stop = new AbortController();
  clock.at(50, () => stop.abort("SIGINT"));
  const r = await clock.run(
    runBench(caller, { ...base, concurrency: 2, durationMs: 60_000, clock, stop: stop.signal }),
  );
  expect(r).toMatchObject({ calls: 0, exitCode: 130, cutShort: { code: "SIGINT" } });
});
