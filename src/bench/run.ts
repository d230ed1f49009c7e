/**
 * `fibrpc bench`: keeps `concurrency` calls in flight through fibrpc's own client until
 * `requests` calls are done or `durationMs` has passed, checks every answer against the exact
 * value, and reports calls/s, latency percentiles and errors by code.
 */
import { fibDecimal } from "../fib.ts";
import type { RpcClient } from "../rpc/client.ts";
import { LatencyRecorder, type LatencySummary } from "./stats.ts";

export interface BenchOptions {
  concurrency: number;
  requests?: number;
  durationMs?: number;
  n: { min: number; max: number };
  timeoutMs: number;
  onProgress?: (progress: BenchProgress) => void;
  progressEveryMs?: number;
}

export interface BenchProgress {
  done: number;
  errors: number;
  elapsedMs: number;
  /** 0..1 when the end is known. */
  fraction: number;
}

export interface BenchResult {
  calls: number;
  ok: number;
  seconds: number;
  callsPerSecond: number;
  latencyMs: LatencySummary;
  errors: Record<string, number>;
}

export async function runBench(client: RpcClient, o: BenchOptions): Promise<BenchResult> {
  // Every answer is compared with the exact value. Those are computed before the clock starts,
  // for at most POOL values of n spread over the range, so that checking costs the load
  // generator nothing while it measures (for heavy n it would cost as much as serving).
  const pool = nPool(o.n.min, o.n.max);
  const expected = pool.map((n) => fibDecimal(n));
  const drawIndex = pool.length === 1 ? () => 0 : () => Math.floor(Math.random() * pool.length);
  const latencies = new LatencyRecorder(o.requests ?? 65_536);
  const errors: Record<string, number> = {};
  let started = 0;
  let done = 0;
  let failed = 0;
  const t0 = performance.now();
  const endAt = o.durationMs === undefined ? Infinity : t0 + o.durationMs;
  // A lost connection ends the run (its calls fail at once; going on would only spin).
  const more = () => client.usable && (o.requests === undefined || started < o.requests) && performance.now() < endAt;

  const progressTimer = o.onProgress
    ? setInterval(() => {
        const elapsedMs = performance.now() - t0;
        const fraction = o.requests !== undefined ? done / o.requests : o.durationMs ? Math.min(1, elapsedMs / o.durationMs) : 0;
        o.onProgress!({ done, errors: failed, elapsedMs, fraction });
      }, o.progressEveryMs ?? 200)
    : undefined;

  const loop = async () => {
    while (more()) {
      started++;
      const index = drawIndex();
      const n = pool[index]!;
      const outcome = await client.call(n, Date.now() + o.timeoutMs);
      done++;
      if (!outcome.ok) {
        failed++;
        errors[outcome.code] = (errors[outcome.code] ?? 0) + 1;
      } else if (outcome.result !== expected[index]) {
        // A wrong answer is an error, never a fast result.
        failed++;
        errors.WRONG_ANSWER = (errors.WRONG_ANSWER ?? 0) + 1;
      } else {
        latencies.add(outcome.ms);
      }
    }
  };
  await Promise.all(Array.from({ length: o.concurrency }, loop));
  if (progressTimer) clearInterval(progressTimer);
  const seconds = (performance.now() - t0) / 1000;
  return { calls: done, ok: done - failed, seconds, callsPerSecond: done / seconds, latencyMs: latencies.summary(), errors };
}

/** How many distinct n a range is sampled with. */
export const POOL = 256;

/** The n a run draws from: the whole range if it is small, else POOL values spread evenly over it. */
export function nPool(min: number, max: number): number[] {
  const span = max - min + 1;
  if (span <= POOL) return Array.from({ length: span }, (_, i) => min + i);
  return Array.from({ length: POOL }, (_, i) => min + Math.round((i * (span - 1)) / (POOL - 1)));
}
