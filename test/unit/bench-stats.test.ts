/** The bench's latency summary, against a distribution whose percentiles are known. */
import { expect, test } from "bun:test";
import { LatencyRecorder } from "../../src/bench/stats.ts";

test("percentiles of 1..1000 ms, added in shuffled order", () => {
  const recorder = new LatencyRecorder(16); // grows past its first size
  const values = Array.from({ length: 1000 }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
  for (const v of values) recorder.add(v);
  expect(recorder.size).toBe(1000);
  expect(recorder.summary()).toEqual({ p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 });
});

test("no samples: zeros, not NaN", () => {
  expect(new LatencyRecorder().summary()).toEqual({ p50: 0, p90: 0, p99: 0, p999: 0, max: 0 });
});
