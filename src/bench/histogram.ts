/**
 * Latency percentiles in fixed memory. Pure; no AMQP. Loaded with `bench` only (not by the
 * option table, which every command loads), so that `call` starts without it.
 *
 * An HDR histogram (hdr-histogram-js, the one autocannon uses) with 3 significant digits: every
 * value is kept to within 0.1% (HDR's guarantee; the bench's target is 1%), from 0.1 µs to an
 * hour, in ~217 KiB (222,208 bytes of counts, footprintBytes) however long the run. Only its
 * pure-JS class is imported, by path: the package's index also loads a WebAssembly build
 * (embedded as base64) and pako for its log encoding, neither of which the bench needs in the
 * compiled binary.
 */
import * as float64HistogramModule from "hdr-histogram-js/dist/Float64Histogram";

// The module is CommonJS (`exports.default = class …`, with __esModule): Bun's runtime gives the
// class as the default import, its bundler (the compiled binary) the exports object. Either way:
type Float64HistogramClass = typeof float64HistogramModule.default;
const loaded = float64HistogramModule.default as Float64HistogramClass | { default: Float64HistogramClass };
const Float64Histogram: Float64HistogramClass = "default" in loaded ? loaded.default : loaded;

/** Values are recorded as whole ticks of 0.1 µs, so that rounding adds < 0.1% even at 50 µs. */
const TICKS_PER_MS = 10_000;
/** An hour: longer than any --timeout a bench would use; longer values are recorded as this. */
const HIGHEST_TICKS = 3_600_000 * TICKS_PER_MS;
const SIGNIFICANT_DIGITS = 3;

export class LatencyHistogram {
  // Float64 counts: an int32 bucket would overflow after 2^31 calls of one latency.
  private readonly histogram = new Float64Histogram(1, HIGHEST_TICKS, SIGNIFICANT_DIGITS);
  private count = 0;
  private maxMs = 0;

  add(ms: number): void {
    this.histogram.recordValue(Math.min(HIGHEST_TICKS, Math.max(1, Math.round(ms * TICKS_PER_MS))));
    this.count++;
    // The exact maximum is kept apart: the histogram's is its bucket's upper end.
    if (ms > this.maxMs) this.maxMs = ms;
  }

  get size(): number {
    return this.count;
  }

  /** Bytes of counts the histogram holds: fixed when it is made. */
  get footprintBytes(): number {
    return this.histogram.estimatedFootprintInBytes;
  }

  /**
   * Nearest-rank percentiles (the ⌈q·n⌉-th smallest value), each within 0.1%, in ms; none without
   * values (never a 0 that looks measured).
   */
  summary(): LatencySummary | undefined {
    if (this.count === 0) return undefined;
    // Rounded to the tick, so that the division leaves no float noise in --json; the maximum too, which caps them.
    const max = Math.round(this.maxMs * TICKS_PER_MS) / TICKS_PER_MS;
    const at = (percentile: number) =>
      Math.min(max, Math.round(this.histogram.getValueAtPercentile(percentile)) / TICKS_PER_MS);
    return { p50: at(50), p90: at(90), p99: at(99), p999: at(99.9), max };
  }
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}
