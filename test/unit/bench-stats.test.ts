/** The bench's latency histogram against exact percentiles of the same samples. */
import { expect, test } from "bun:test";
import { LatencyHistogram } from "../../src/bench/histogram.ts";
import { parseNOption, parseRate } from "../../src/bench/stats.ts";
import { withoutFloatNoise } from "../../src/bench/summary.ts";
import { prng } from "./prng.ts";

/** The ⌈q·n⌉-th smallest value (nearest rank), q in 0..1. */
const exactAt = (sorted: Float64Array, q: number) => sorted[Math.max(0, Math.ceil(q * sorted.length) - 1)]!;

test("p50, p90, p99, p99.9 and max within 1% of the exact values, over random samples of several shapes", () => {
  const seed = Number(process.env.BENCH_STATS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = prng(seed);
  const shapes: Record<string, () => number> = {
    // Latencies spread over six decades, 10 µs to 10 s (log-uniform).
    "log-uniform 0.01 ms..10 s": () => 10 ** (random() * 6 - 2),
    // A typical latency curve: a body around 1 ms and a long tail (log-normal).
    "log-normal around 1 ms": () =>
      Math.exp(Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random()) * 0.8),
    "uniform 0..1000 ms": () => random() * 1000,
  };
  let worst = 0;
  for (const [shape, draw] of Object.entries(shapes)) {
    const histogram = new LatencyHistogram();
    const samples = new Float64Array(200_000);
    for (let i = 0; i < samples.length; i++) {
      samples[i] = draw();
      histogram.add(samples[i]!);
    }
    samples.sort();
    const summary = histogram.summary()!;
    const exact = {
      p50: exactAt(samples, 0.5),
      p90: exactAt(samples, 0.9),
      p99: exactAt(samples, 0.99),
      p999: exactAt(samples, 0.999),
      max: samples[samples.length - 1]!,
    };
    for (const key of ["p50", "p90", "p99", "p999", "max"] as const) {
      const error = Math.abs(summary[key] - exact[key]) / exact[key];
      worst = Math.max(worst, error);
      expect(error, `${shape} ${key}: ${summary[key]} against ${exact[key]} (seed ${seed})`).toBeLessThanOrEqual(0.01);
    }
    expect(histogram.size).toBe(samples.length);
  }
  console.log(`bench-stats: worst relative error ${(worst * 100).toFixed(3)}% over 3 × 200,000 samples (seed ${seed})`);
});

test("memory is fixed: the histogram holds the same counts after a million values as when made", () => {
  const histogram = new LatencyHistogram();
  const before = histogram.footprintBytes;
  expect(before).toBeLessThan(512 * 1024);
  for (let i = 0; i < 1_000_000; i++) histogram.add((i % 5000) / 3 + 0.05);
  expect(histogram.footprintBytes).toBe(before);
  // Values beyond the range are kept as its top, not refused.
  histogram.add(10 * 3_600_000);
  expect(histogram.summary()!.max).toBe(10 * 3_600_000);
});

test("1..1000 ms added in shuffled order: the nearest-rank percentiles, to 0.1%", () => {
  const histogram = new LatencyHistogram();
  const values = Array.from({ length: 1000 }, (_, i) => i + 1).sort(() => Math.random() - 0.5);
  for (const v of values) histogram.add(v);
  const s = histogram.summary()!;
  const want = { p50: 500, p90: 900, p99: 990, p999: 999, max: 1000 };
  for (const key of Object.keys(want) as (keyof typeof want)[])
    expect(Math.abs(s[key] - want[key]) / want[key]).toBeLessThanOrEqual(0.001);
  expect(s.max).toBe(1000);
});

test("no samples: no percentiles at all (not zeros that read as measured, not NaN)", () => {
  expect(new LatencyHistogram().summary()).toBeUndefined();
});

test("--n: a number or a range, shown plainly in the summary; one too large quoted as given", () => {
  expect(parseNOption(" 5")).toEqual({ min: 5, max: 5, text: "5" });
  expect(parseNOption("01")).toEqual({ min: 1, max: 1, text: "1" });
  expect(parseNOption("3-3")).toEqual({ min: 3, max: 3, text: "3" });
  expect(parseNOption("10..20")).toEqual({ min: 10, max: 20, text: "10-20" });
  expect(() => parseNOption("9007199254740993")).toThrow(/, got 9007199254740993$/);
});

test("--rate: decimal, .5 as 0.5; anything else says what it takes", () => {
  expect([parseRate("2000"), parseRate("0.5"), parseRate(".5"), parseRate(" 12.25 ")]).toEqual([2000, 0.5, 0.5, 12.25]);
  for (const bad of ["0", "1e3", "5.", "-1", "2000000"])
    expect(() => parseRate(bad)).toThrow(/in decimal \(e\.g\. 2000 or 0\.5\)/);
});

test("the histogram's maximum is rounded to its tick like the percentiles it caps (no float noise in --json)", () => {
  const histogram = new LatencyHistogram();
  histogram.add(22.845466000000002);
  expect(histogram.summary()).toEqual({ p50: 22.8455, p90: 22.8455, p99: 22.8455, p999: 22.8455, max: 22.8455 });
  expect(JSON.stringify({ seconds: 0.02495078600000001, calls: 3 }, withoutFloatNoise)).toBe(
    '{"seconds":0.024950786,"calls":3}',
  );
});
