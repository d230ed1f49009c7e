/**
 * Per-worker counters, kept as plain numbers on the hot path and summed by the supervisor when
 * /metrics is scraped. No AMQP, no HTTP.
 */

/** Upper bounds (seconds) of the request-handling latency histogram. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5] as const;

export interface WorkerStats {
  /** Requests answered, by outcome: "ok", or the error code of the error reply. */
  requests: Record<string, number>;
  /** Cumulative counts per bucket of LATENCY_BUCKETS, then +Inf. */
  latencyBuckets: number[];
  latencySum: number;
  latencyCount: number;
  inFlight: number;
  reconnects: number;
  redelivered: number;
  /** Channels that publish and ack through amqplib's own methods (the frame writer could not attach). */
  outletFallbacks: number;
}

export function emptyStats(): WorkerStats {
  return { requests: {}, latencyBuckets: new Array(LATENCY_BUCKETS.length + 1).fill(0), latencySum: 0, latencyCount: 0, inFlight: 0, reconnects: 0, redelivered: 0, outletFallbacks: 0 };
}

/** a + b, as a new object. */
export function addStats(a: WorkerStats, b: WorkerStats): WorkerStats {
  const requests = { ...a.requests };
  for (const [k, v] of Object.entries(b.requests)) requests[k] = (requests[k] ?? 0) + v;
  return {
    requests,
    latencyBuckets: a.latencyBuckets.map((v, i) => v + (b.latencyBuckets[i] ?? 0)),
    latencySum: a.latencySum + b.latencySum,
    latencyCount: a.latencyCount + b.latencyCount,
    inFlight: a.inFlight + b.inFlight,
    reconnects: a.reconnects + b.reconnects,
    redelivered: a.redelivered + b.redelivered,
    outletFallbacks: a.outletFallbacks + b.outletFallbacks,
  };
}

export class StatsRecorder {
  private readonly stats = emptyStats();

  /** One request answered: `outcome` is "ok" or an error code; `seconds` from delivery to reply. */
  answered(outcome: string, seconds: number): void {
    const { stats } = this;
    stats.requests[outcome] = (stats.requests[outcome] ?? 0) + 1;
    stats.latencySum += seconds;
    stats.latencyCount++;
    // Cumulative buckets: every bucket whose bound is at least `seconds`, and +Inf.
    for (let i = LATENCY_BUCKETS.length - 1; i >= 0 && seconds <= LATENCY_BUCKETS[i]!; i--) stats.latencyBuckets[i]!++;
    stats.latencyBuckets[LATENCY_BUCKETS.length]!++;
  }

  redelivered(): void {
    this.stats.redelivered++;
  }

  reconnected(): void {
    this.stats.reconnects++;
  }

  outletFallback(): void {
    this.stats.outletFallbacks++;
  }

  snapshot(inFlight: number): WorkerStats {
    return { ...structuredClone(this.stats), inFlight };
  }
}
