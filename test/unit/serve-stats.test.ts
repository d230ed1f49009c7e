/**
 * serve's per-worker figures as the supervisor adds them up: counters summed, the workers' heaps
 * summed, the event-loop delay the longest of any worker; a worker that has gone leaves its
 * counters to the process's totals and none of its gauges (a counter never goes down, a gauge of
 * a thread that no longer exists is not a reading).
 */
import { expect, test } from "bun:test";
import {
  addStats,
  AnsweredTally,
  countersOf,
  emptyStats,
  StatsRecorder,
  ThreadProbe,
  type WorkerStats,
} from "../../src/serve/stats.ts";

function worker(served: number, heapUsedBytes: number, eventLoopLagMaxSeconds: number, inFlight: number): WorkerStats {
  const recorder = new StatsRecorder();
  for (let i = 0; i < served; i++) recorder.answered("ok", 0.002);
  recorder.redelivered();
  return recorder.snapshot(inFlight, { heapUsedBytes, eventLoopLagMaxSeconds });
}

test("added: counters and heaps summed, the event-loop delay is the longest", () => {
  const total = [worker(3, 1000, 0.25, 2), worker(5, 3000, 0.05, 1)].reduce(addStats, emptyStats());
  expect(total).toMatchObject({
    requests: { ok: 8 },
    latencyCount: 8,
    redelivered: 2,
    inFlight: 3,
    heapUsedBytes: 4000,
    eventLoopLagMaxSeconds: 0.25,
  });
});

test("a worker that has gone: its counters stay in the totals, its gauges do not", () => {
  const gone = countersOf(worker(4, 2000, 1.5, 3));
  const total = addStats(gone, worker(1, 500, 0.01, 0));
  expect(total).toMatchObject({
    requests: { ok: 5 },
    redelivered: 2,
    inFlight: 0,
    heapUsedBytes: 500,
    eventLoopLagMaxSeconds: 0.01,
  });
});

test("the thread probe reads this thread's heap, and a loop delay of 0 at the first read (its sampler starts then)", () => {
  const probe = new ThreadProbe();
  const { heapUsedBytes, eventLoopLagMaxSeconds } = probe.read();
  expect(heapUsedBytes).toBeGreaterThan(0);
  expect(eventLoopLagMaxSeconds).toBe(0);
});

test("the answered tally: each worker counts in its slot of memory the supervisor keeps (requests dropped without a reply are not answered)", () => {
  const tally = new AnsweredTally(3);
  const first = new StatsRecorder(tally.slotOf(0));
  const third = new StatsRecorder(tally.slotOf(2));
  for (let i = 0; i < 4; i++) first.answered("ok", 0.001);
  first.answered("N_TOO_LARGE", 0.001);
  third.answered("ok", 0.001);
  third.answered("DROPPED", 0.001);
  expect(tally.total).toBe(6);
  // A new worker in a slot (after a crash) adds to what its predecessor counted.
  new StatsRecorder(tally.slotOf(0)).answered("ok", 0.001);
  expect(tally.total).toBe(7);
});
