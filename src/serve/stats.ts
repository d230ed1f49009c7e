/**
 * Per-worker counters, kept as plain numbers on the hot path and summed by the supervisor when
 * /metrics is scraped, and the worker thread's own gauges (its heap, its event-loop delay), which
 * the main thread cannot read for it. No AMQP, no HTTP.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";

/** Upper bounds (seconds) of the request-handling latency histogram. */
export const LATENCY_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
] as const;

export interface WorkerStats {
  /** Requests answered, by outcome: "ok", or the error code of the error reply. */
  requests: Record<string, number>;
  /** Cumulative counts per bucket of LATENCY_BUCKETS, then +Inf. */
  latencyBuckets: number[];
  latencySum: number;
  latencyCount: number;
  inFlight: number;
  /** The worker's JavaScript heap in use (each Bun Worker has its own heap); summed. */
  heapUsedBytes: number;
  /** Longest delay of the worker's event loop since its previous snapshot; the max when added. */
  eventLoopLagMaxSeconds: number;
  reconnects: number;
  redelivered: number;
  /** Channels that publish and ack through amqplib's own methods (the frame writer could not attach). */
  outletFallbacks: number;
}

export function emptyStats(): WorkerStats {
  return {
    requests: {},
    latencyBuckets: new Array(LATENCY_BUCKETS.length + 1).fill(0),
    latencySum: 0,
    latencyCount: 0,
    inFlight: 0,
    heapUsedBytes: 0,
    eventLoopLagMaxSeconds: 0,
    reconnects: 0,
    redelivered: 0,
    outletFallbacks: 0,
  };
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
    heapUsedBytes: a.heapUsedBytes + b.heapUsedBytes,
    eventLoopLagMaxSeconds: Math.max(a.eventLoopLagMaxSeconds, b.eventLoopLagMaxSeconds),
    reconnects: a.reconnects + b.reconnects,
    redelivered: a.redelivered + b.redelivered,
    outletFallbacks: a.outletFallbacks + b.outletFallbacks,
  };
}

/** What a worker that has gone leaves to the process's totals: its counters, none of its gauges. */
export function countersOf(stats: WorkerStats): WorkerStats {
  return { ...stats, inFlight: 0, heapUsedBytes: 0, eventLoopLagMaxSeconds: 0 };
}

/**
 * The worker thread's gauges. perf_hooks.monitorEventLoopDelay samples the loop of the thread
 * that enables it (Bun implements it per thread), every 10 ms as prom-client does; a worker
 * computing a heavy request holds its loop for that long, and that is what this shows. The
 * sampler starts at the first read, i.e. the first scrape of /metrics: a serve that exports no
 * metrics does not pay for it (~0.5% of a core per thread, measured: docs/operations.md).
 */
export class ThreadProbe {
  private delays: ReturnType<typeof monitorEventLoopDelay> | undefined;

  /** The heap in use now, and the longest loop delay since the previous read (then starts over). */
  read(): Pick<WorkerStats, "heapUsedBytes" | "eventLoopLagMaxSeconds"> {
    let lag = 0;
    if (!this.delays) {
      this.delays = monitorEventLoopDelay({ resolution: 10 });
      this.delays.enable();
    } else {
      lag = this.delays.count > 0 ? this.delays.max / 1e9 : 0;
      this.delays.reset();
    }
    return { heapUsedBytes: process.memoryUsage().heapUsed, eventLoopLagMaxSeconds: lag };
  }
}

/** One worker's slot of the process's AnsweredTally. */
export interface TallySlot {
  memory: SharedArrayBuffer;
  slot: number;
}

/**
 * Requests answered by each worker slot since serve started, in memory the supervisor shares with
 * its workers, so that the count of a worker that died or was stopped is not lost with it (its
 * other counters are, since the last scrape): the line closing a drain says how many. One writer
 * per slot, its worker; the supervisor reads once the workers have stopped. Plain reads and
 * writes: a count read a moment late is no harm, and a Float64 counts exactly up to 2^53.
 */
export class AnsweredTally {
  readonly memory: SharedArrayBuffer;
  private readonly counts: Float64Array;

  constructor(workers: number) {
    this.memory = new SharedArrayBuffer(workers * Float64Array.BYTES_PER_ELEMENT);
    this.counts = new Float64Array(this.memory);
  }

  slotOf(slot: number): TallySlot {
    return { memory: this.memory, slot };
  }

  get total(): number {
    return this.counts.reduce((sum, n) => sum + n, 0);
  }
}

export class StatsRecorder {
  private readonly stats = emptyStats();
  private readonly tally: Float64Array | undefined;
  private readonly slot: number;

  /** `tally`: where this worker counts its answered requests for the supervisor (none outside serve). */
  constructor(tally?: TallySlot) {
    this.tally = tally && new Float64Array(tally.memory);
    this.slot = tally?.slot ?? 0;
  }

  /**
   * One request answered: `outcome` is "ok" or an error code (or DROPPED: no reply); `seconds` from
   * delivery to reply.
   */
  answered(outcome: string, seconds: number): void {
    const { stats } = this;
    if (this.tally && outcome !== "DROPPED") this.tally[this.slot]!++;
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

  snapshot(inFlight: number, thread: Pick<WorkerStats, "heapUsedBytes" | "eventLoopLagMaxSeconds">): WorkerStats {
    return { ...structuredClone(this.stats), inFlight, ...thread };
  }
}
