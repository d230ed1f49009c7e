/** Latency samples and their summary. Pure; no AMQP. */

export class LatencyRecorder {
  private samples: Float64Array;
  private count = 0;

  constructor(expected = 1024) {
    this.samples = new Float64Array(Math.max(16, expected));
  }

  add(ms: number): void {
    if (this.count === this.samples.length) {
      const grown = new Float64Array(this.samples.length * 2);
      grown.set(this.samples);
      this.samples = grown;
    }
    this.samples[this.count++] = ms;
  }

  get size(): number {
    return this.count;
  }

  summary(): LatencySummary {
    const sorted = this.samples.slice(0, this.count).sort();
    const at = (q: number) => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!);
    return { p50: at(0.5), p90: at(0.9), p99: at(0.99), p999: at(0.999), max: sorted.length ? sorted[sorted.length - 1]! : 0 };
  }
}

export interface LatencySummary {
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** "1" → always 1; "10-20" → uniformly drawn from 10..20. */
export function parseNSpec(spec: string): { min: number; max: number } | undefined {
  const match = /^\s*(\d+)\s*(?:(?:-|\.\.)\s*(\d+))?\s*$/.exec(spec);
  if (!match) return undefined;
  const min = Number(match[1]);
  const max = match[2] === undefined ? min : Number(match[2]);
  return min <= max ? { min, max } : undefined;
}
