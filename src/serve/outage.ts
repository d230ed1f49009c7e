/**
 * What serve's log says while the broker is away, for the whole process: one warning when the
 * first worker loses the broker (or cannot reach it), one more for each new kind of failure (its
 * own remedy), then at most one summary line every 30 s
 * while workers keep trying (attempts, workers waiting, since when, why), and one line once every
 * worker consumes again. Never a line per attempt or per worker: those go to debug, in the
 * workers. Pure: the supervisor feeds it the workers' reports with the time and logs the lines
 * it returns, so a unit test can drive it with a fake clock.
 */
import type { FibrpcError } from "../errors.ts";
import { duration } from "../duration.ts";

// Where serve's lines and their tests have always found it.
export { duration };

/** The shortest interval between two lines of one outage (the first warning, the summaries). */
export const SUMMARY_EVERY_MS = 30_000;

export interface OutageLine {
  level: "warn" | "info";
  message: string;
  /** Structured fields, shown by --log-format json. */
  fields: Record<string, unknown>;
}

/** A failed connection attempt, as a worker reports it. */
export interface AttemptFailure {
  /** The broker tried, password masked. */
  broker: string;
  /** Why, in a few words: "connection refused". */
  reason: string;
  /** The kind of failure (the error's reason, else its code): a new kind is said at once. */
  kind: string;
  /** The full line for an operator: what, why, what to do (the error with its hint). */
  line: string;
  /**
   * The broker refused the attempt (the login, the vhost, a limit; a certificate not trusted):
   * not what the lost connection's line announced, so its line is said at once.
   */
  refused?: boolean;
}

type WorkerState = "starting" | "serving" | "waiting";

interface Outage {
  since: number;
  /** Whether the process had been serving before (reconnected) or is only starting (connected). */
  wasServing: boolean;
  attempts: number;
  /** Failed attempts since the last line. */
  attemptsSinceLine: number;
  lastLineAt: number;
  /** Brokers that failed since the last line, and the latest reason. */
  brokers: Set<string>;
  reason: string;
  /** Kinds of failure whose full line (with what to do) this outage has said: a new one is said at once. */
  said: Set<string>;
}

export class OutageLog {
  private readonly states = new Map<number, WorkerState>();
  private readonly nextTryAt = new Map<number, number>();
  private outage: Outage | undefined;
  private everServed = false;

  constructor(
    private readonly workers: number,
    private readonly everyMs = SUMMARY_EVERY_MS,
  ) {
    for (let id = 1; id <= workers; id++) this.states.set(id, "starting");
  }

  /** Whether an outage is under way (some worker lost the broker and not every worker is back). */
  get active(): boolean {
    return this.outage !== undefined;
  }

  /** A worker that was serving lost its connection; it reconnects. */
  lost(worker: number, broker: string, reason: string, now: number): OutageLine[] {
    this.states.set(worker, "waiting");
    if (this.outage) return [];
    this.begin(now, broker, reason);
    return [
      {
        level: "warn",
        message: `connection to ${broker} lost (${reason}); reconnecting`,
        fields: { broker, reason, since: iso(now), workers: this.workers },
      },
    ];
  }

  /**
   * A worker's next connection attempt is scheduled `delayMs` from now: after a failed attempt
   * (`failure`), or right after its connection was lost (no failure: `lost` said it).
   */
  retrying(worker: number, failure: AttemptFailure | undefined, delayMs: number, now: number): OutageLine[] {
    this.states.set(worker, "waiting");
    this.nextTryAt.set(worker, now + delayMs);
    if (!failure) return [];
    const outage = this.outage;
    if (!outage) {
      this.begin(now, failure.broker, failure.reason);
      this.outage!.said.add(failure.kind);
      this.outage!.attempts = 1;
      return [
        {
          level: "warn",
          message: failure.line,
          fields: { broker: failure.broker, reason: failure.reason, since: iso(now), workers: this.workers },
        },
      ];
    }
    outage.attempts++;
    outage.attemptsSinceLine++;
    outage.brokers.add(failure.broker);
    outage.reason = failure.reason;
    // A failure of another kind than those said (the broker back, but refusing in a new way)
    // needs its own remedy: its full line, once, without waiting for the next summary.
    // (After a lost connection, the first reason is what the lost line already announced, unless
    // the broker refused the attempt: that is news.)
    if (outage.said.size === 0 && !failure.refused) outage.said.add(failure.kind);
    else if (!outage.said.has(failure.kind)) {
      outage.said.add(failure.kind);
      return [
        {
          level: "warn",
          message: failure.line,
          fields: { broker: failure.broker, reason: failure.reason, since: iso(outage.since), workers: this.workers },
        },
      ];
    }
    if (now - outage.lastLineAt < this.everyMs) return [];
    return [this.summary(outage, now)];
  }

  /** A worker consumes (again). Once every worker does, the outage is over: one line says so. */
  serving(worker: number, broker: string, now: number): OutageLine[] {
    this.states.set(worker, "serving");
    this.nextTryAt.delete(worker);
    const outage = this.outage;
    const serving = this.count("serving");
    if (serving === this.workers) this.everServed = true;
    if (!outage || serving < this.workers) return [];
    this.outage = undefined;
    const down = now - outage.since;
    const failed = outage.attempts === 1 ? "1 failed attempt" : `${outage.attempts} failed attempts`;
    return [
      {
        level: "info",
        message:
          `${outage.wasServing ? "reconnected" : "connected"} to ${broker} after ${duration(down)} (${failed}); ` +
          `${serving}/${this.workers} workers serving`,
        fields: {
          broker,
          since: iso(outage.since),
          downSeconds: Math.round(down / 100) / 10,
          attempts: outage.attempts,
          workers: this.workers,
          serving,
        },
      },
    ];
  }

  /** A worker is gone (it died and is restarted): it connects anew. */
  gone(worker: number): void {
    this.states.set(worker, "starting");
    this.nextTryAt.delete(worker);
  }

  private begin(now: number, broker: string, reason: string): void {
    this.outage = {
      since: now,
      wasServing: this.everServed,
      attempts: 0,
      attemptsSinceLine: 0,
      lastLineAt: now,
      brokers: new Set([broker]),
      reason,
      said: new Set(),
    };
  }

  private summary(outage: Outage, now: number): OutageLine {
    const waiting = this.count("waiting");
    const nextTry = Math.max(0, Math.min(...[...this.nextTryAt.values()].map((at) => at - now)));
    const brokers = [...outage.brokers].join(", ");
    const attempts = outage.attemptsSinceLine === 1 ? "1 attempt" : `${outage.attemptsSinceLine} attempts`;
    const line: OutageLine = {
      level: "warn",
      message:
        `still cannot reach ${brokers} (${outage.reason}) after ${duration(now - outage.since)}: ` +
        `${waiting}/${this.workers} workers waiting, ${attempts} in ${duration(now - outage.lastLineAt)}; ` +
        `next try in ${duration(nextTry)}`,
      fields: {
        broker: brokers,
        reason: outage.reason,
        since: iso(outage.since),
        downSeconds: Math.round((now - outage.since) / 100) / 10,
        attempts: outage.attemptsSinceLine,
        totalAttempts: outage.attempts,
        workersWaiting: waiting,
        workers: this.workers,
        nextTryMs: Math.round(nextTry),
      },
    };
    outage.lastLineAt = now;
    outage.attemptsSinceLine = 0;
    outage.brokers = new Set();
    return line;
  }

  private count(state: WorkerState): number {
    let n = 0;
    for (const s of this.states.values()) if (s === state) n++;
    return n;
  }
}

/**
 * The reason of a connection error in a few words, for the summary: its message after the broker
 * it names ("cannot reach the broker at amqp://…: connection refused" → "connection refused").
 */
export function reasonOf(error: FibrpcError): string {
  const broker = error.details.broker;
  const at = typeof broker === "string" ? error.message.indexOf(broker) : -1;
  if (at < 0) return error.message;
  const rest = error.message.slice(at + broker!.length).replace(/^:?\s+/, "");
  return rest || error.message;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}
