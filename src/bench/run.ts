/**
 * `fibrpc bench`: loads a queue through fibrpc's own client until `requests` calls are done or
 * `durationMs` has passed, checks every answer against the exact value, and reports calls/s,
 * latency percentiles and errors by code. Two ways to load it:
 *
 * - closed loop (no `rate`): `concurrency` calls always in flight, each sent when one returns.
 *   The load follows the server: a stall holds back the calls that would have been sent during
 *   it, so their waiting is never measured (coordinated omission).
 * - open loop (`rate` calls/s): call i is due at t0 + i/rate whatever happened before, and its
 *   latency runs from that intended start, not from when it was sent. A stalled server, or a
 *   late load generator, shows up in the percentiles as it would to users arriving at that rate.
 *   At most `maxOutstanding` calls are in flight; a call due while that many are is not sent
 *   and is counted as missed (a failure, but not an answer, so not in the latencies).
 *
 * Only answered calls count in calls/s and the latencies; failed ones are counted by code. When
 * the connection is lost, a caller that reconnects (bench/reconnect.ts) keeps the run going: the
 * open loop keeps its schedule (calls due meanwhile fail at once), the closed loop waits for the
 * new connection; the times without one are reported (outages). A caller that stops being usable
 * before the run's planned end (--requests or --duration) cuts it short, and the result says so.
 *
 * The clock is a parameter so that the scheduler can be tested with a fake one.
 */
import { expectedAnswer, isRightAnswer } from "./answers.ts";
import { ExitCode, FibrpcError, mostSevere } from "../errors.ts";
import { exitCodeOf, type CallOutcome } from "../rpc/client.ts";
import { LatencyHistogram, type LatencySummary } from "./histogram.ts";

export interface BenchOptions {
  /** Closed loop: calls kept in flight. */
  concurrency: number;
  /** Open loop: calls per second, scheduled at fixed intended starts. */
  rate?: number;
  /** Open loop: most calls in flight at once; a call due beyond it is missed. */
  maxOutstanding?: number;
  requests?: number;
  durationMs?: number;
  n: { min: number; max: number };
  timeoutMs: number;
  onProgress?: (progress: BenchProgress) => void;
  progressEveryMs?: number;
  clock?: Clock;
  /**
   * Ends the run early once aborted, its reason the signal ("SIGINT", "SIGTERM"): no call starts after it,
   * those in flight finish, and the result says where it was cut short, with the signal's exit code.
   */
  stop?: AbortSignal;
}

/** What the bench needs of a client (RpcClient has it; bench/reconnect.ts adds the rest). */
export interface Caller {
  /** False once no more calls can be made: the run ends (cut short, if before its planned end). */
  readonly usable: boolean;
  call(n: number, deadline: number): Promise<CallOutcome>;
  /**
   * Undefined if a call can be sent now; else resolves when one can again after a lost connection, or by
   * `until` (the clock's): the closed loop waits on it.
   */
  ready?(until: number): Promise<void> | undefined;
  /** The times the caller had no connection, on the bench's clock. */
  readonly outages?: readonly Outage[];
  /** Why the caller stopped being usable, if it knows. */
  readonly failure?: FibrpcError;
}

/** A time without a connection to the broker, on the bench's clock (ms). */
export interface Outage {
  from: number;
  /** Undefined while it lasts (to the run's end, if it never ended). */
  to?: number;
  /** Calls that failed while it lasted. */
  failed: number;
  /** Why the last attempt to reconnect failed. */
  lastError?: FibrpcError;
  /** When a connection was open again, with no server on the queue yet (the outage went on until one came). */
  noServerFrom?: number;
}

/** An outage as the result reports it, in seconds from the run's start. */
export interface OutageReport {
  fromSeconds: number;
  /** Null: it lasted to the run's end. */
  toSeconds: number | null;
  seconds: number;
  failed: number;
  lastError?: { code: string; message: string };
  /** Connected again from then on, but the queue had no server yet: the rest of the outage was that. */
  noServerFromSeconds?: number;
}

export interface Clock {
  /** Milliseconds, monotonic. */
  now(): number;
  /** Resolves once `ms` have passed (at once, after other events, for ms ≤ 0). */
  sleep(ms: number): Promise<void>;
}

export const realClock: Clock = {
  now: () => performance.now(),
  sleep: (ms) => new Promise((resolve) => (ms <= 0 ? setImmediate(resolve) : setTimeout(resolve, ms))),
};

export interface BenchProgress {
  done: number;
  errors: number;
  elapsedMs: number;
  /** 0..1 when the end is known. */
  fraction: number;
}

export type BenchMode =
  | { mode: "closed-loop"; concurrency: number }
  | {
      mode: "open-loop";
      rate: number;
      achievedRate: number;
      maxOutstanding: number;
      missed: number;
      /**
       * How long its schedule was meant to take (calls × 1/rate; cut short, up to the cut): answered/s is over at
       * least that.
       */
      scheduleSeconds: number;
    };

export type BenchResult = BenchMode & {
  /** Where each latency is measured from: the send (closed loop) or the intended start (open loop). */
  latencyFrom: "send" | "intended-start";
  /** Calls sent and settled (answered, failed or timed out); missed calls are not among them. */
  calls: number;
  /** Answered with the right value. */
  ok: number;
  /** Failed (any error, a wrong answer included): calls - ok. */
  failed: number;
  seconds: number;
  /**
   * Answered calls per second (failed ones are not counted); open loop, over the run or its schedule, whichever
   * is longer (`--rate 1 --duration 3s`, the last call answered at 2.0 s: 1/s, not 1.5).
   */
  callsPerSecond: number;
  /** Of the answered calls; null when none was answered. */
  latencyMs: LatencySummary | null;
  /** Open loop: how late the load generator sent calls after their intended start (null: none sent). */
  sendLagMs?: LatencySummary | null;
  errors: Record<string, number>;
  /** The times without a connection to the broker (bench reconnects). */
  outages: OutageReport[];
  /** The run ended before its planned end: when, and why. */
  cutShort?: { atSeconds: number; code: string; message: string };
  /**
   * The run's exit code: 0 only if every call was answered, the connection never lost and the run
   * not cut short; else the most severe of the calls' outcomes as `fibrpc call` would exit (a
   * wrong answer: REMOTE_ERROR), missed calls and outages (TEMPORARY), a cut-short run's reason,
   * an outage that lasted to the end (its last error's). A run a signal cut short (o.stop): 130 or 143.
   */
  exitCode: ExitCode;
};

/** What answered/s is over: the run, or an open loop's schedule if that is longer. */
export function rateSeconds(mode: BenchMode, seconds: number): number {
  return mode.mode === "open-loop" ? Math.max(seconds, mode.scheduleSeconds) : seconds;
}

/** Open loop without --concurrency: enough for 10,000 calls/s at a second each. */
export const DEFAULT_MAX_OUTSTANDING = 10_000;
/** Open loop: a wait for the next call's start longer than this ends early if the run is stopped. */
const LONG_WAIT_MS = 200;
/** Open loop: calls sent back to back before replies get a turn, when the schedule is behind. */
const BURST = 200;

export async function runBench(client: Caller, o: BenchOptions): Promise<BenchResult> {
  const clock = o.clock ?? realClock;
  // Every answer is checked (answers.ts) against what is worked out before the clock starts, for at
  // most POOL values of n spread over the range, so that checking costs the load generator nothing
  // while it measures (for heavy n it would cost as much as serving).
  const pool = nPool(o.n.min, o.n.max);
  const expected = pool.map(expectedAnswer);
  const drawIndex = pool.length === 1 ? () => 0 : () => Math.floor(Math.random() * pool.length);
  const latencies = new LatencyHistogram();
  const errors: Record<string, number> = {};
  let done = 0;
  let failed = 0;
  let worstExitCode: ExitCode = ExitCode.OK;
  const t0 = clock.now();
  const endAt = o.durationMs === undefined ? Infinity : t0 + o.durationMs;
  // Without --requests or --duration (in-process callers only), the caller decides when it ends.
  const planned = o.requests !== undefined || o.durationMs !== undefined;
  /** When the caller stopped being usable before the planned end. */
  let stoppedAt: number | undefined;
  const stillUsable = () => {
    if (client.usable) return true;
    if (planned) stoppedAt ??= clock.now();
    return false;
  };
  const stopping = new Stopping(o.stop, clock);

  /** One call, its latency measured from `from` (the send, or the intended start). */
  const callOnce = async (from: number): Promise<void> => {
    const index = drawIndex();
    const outcome = await client.call(pool[index]!, Date.now() + o.timeoutMs);
    const ms = clock.now() - from;
    done++;
    if (!outcome.ok) {
      failed++;
      errors[outcome.code] = (errors[outcome.code] ?? 0) + 1;
      // A call an outage kept from being sent counts toward the outage's exit code (75 once it ended; its last
      // error's if it lasted to the end), not its own: NO_CONSUMER while the servers reconnect is no 69.
      if (!outcome.error?.details.outage) worstExitCode = mostSevere([worstExitCode, exitCodeOf(outcome)]);
    } else if (!isRightAnswer(outcome.result, expected[index]!)) {
      // A wrong answer is an error, never a fast result.
      failed++;
      errors.WRONG_ANSWER = (errors.WRONG_ANSWER ?? 0) + 1;
      worstExitCode = mostSevere([worstExitCode, ExitCode.REMOTE_ERROR]);
    } else {
      latencies.add(ms);
    }
  };

  const progressTimer = o.onProgress
    ? setInterval(() => {
        const elapsedMs = clock.now() - t0;
        const fraction =
          o.requests !== undefined ? done / o.requests : o.durationMs ? Math.min(1, elapsedMs / o.durationMs) : 0;
        o.onProgress!({ done, errors: failed, elapsedMs, fraction });
      }, o.progressEveryMs ?? 200)
    : undefined;

  let mode: BenchMode;
  let sendLag: LatencyHistogram | undefined;
  try {
    if (o.rate === undefined) {
      let started = 0;
      const loop = async () => {
        for (;;) {
          // Without a connection, wait for the caller to reconnect (or the run to be stopped) rather than
          // fail calls at once (which would only spin); a caller that cannot reconnect ends the run.
          const reconnecting = client.ready?.(endAt);
          if (reconnecting) await stopping.until(reconnecting);
          if ((o.requests !== undefined && started >= o.requests) || clock.now() >= endAt) break;
          if (stopping.cuts()) break;
          if (!stillUsable()) break;
          started++;
          await callOnce(clock.now());
        }
      };
      await Promise.all(Array.from({ length: o.concurrency }, loop));
      mode = { mode: "closed-loop", concurrency: o.concurrency };
    } else {
      sendLag = new LatencyHistogram();
      const open = await openLoop({
        rate: o.rate,
        maxOutstanding: o.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING,
        requests: o.requests,
        t0,
        endAt,
        clock,
        sendLag,
        callOnce,
        stillUsable,
        stopping,
      });
      mode = {
        mode: "open-loop",
        rate: o.rate,
        achievedRate: open.achievedRate,
        scheduleSeconds: open.scheduleSeconds,
        maxOutstanding: o.maxOutstanding ?? DEFAULT_MAX_OUTSTANDING,
        missed: open.missed,
      };
    }
  } finally {
    if (progressTimer) clearInterval(progressTimer);
  }
  const end = clock.now();
  const seconds = (end - t0) / 1000;
  const since = (t: number) => Math.max(0, t - t0) / 1000;
  const outages = (client.outages ?? []).map(
    (outage): OutageReport => ({
      fromSeconds: since(outage.from),
      toSeconds: outage.to === undefined ? null : since(outage.to),
      seconds: ((outage.to ?? end) - outage.from) / 1000,
      failed: outage.failed,
      ...(outage.lastError ? { lastError: { code: outage.lastError.code, message: outage.lastError.message } } : {}),
      ...(outage.noServerFrom === undefined ? {} : { noServerFromSeconds: since(outage.noServerFrom) }),
    }),
  );
  const codes: ExitCode[] = [worstExitCode];
  if (mode.mode === "open-loop" && mode.missed > 0) codes.push(ExitCode.TEMPORARY);
  let cutShort: BenchResult["cutShort"];
  // A signal cut the run short if the plan then asked for another call (cuts()), or if it came before --duration's
  // end while the calls in flight outlasted that end (a broker holding them): none was started after it either.
  // One after the last call of --requests started cuts nothing.
  const beforeEnd =
    stopping.at !== undefined && o.durationMs !== undefined && stopping.at < endAt && stoppedAt === undefined;
  const signal = stopping.cut || beforeEnd ? String(o.stop?.reason ?? "SIGINT") : undefined;
  if (signal !== undefined) {
    cutShort = {
      atSeconds: since(stopping.at!),
      code: signal,
      message: "no call was started after it; the calls in flight then were finished",
    };
  } else if (stoppedAt !== undefined) {
    const why =
      client.failure ??
      new FibrpcError("CONNECTION_LOST", "the connection to the broker was lost", { reason: "connection-lost" });
    cutShort = { atSeconds: since(stoppedAt), code: why.code, message: why.message };
    codes.push(why.exitCode);
  }
  // A run with a gap in it is not a clean one even if no call failed (a closed loop may have had
  // none in flight when the connection went): the connection dropped, 75. An outage to the end:
  // the broker never came back (as unreachable as its last error says).
  for (const outage of client.outages ?? [])
    codes.push(outage.to === undefined ? (outage.lastError?.exitCode ?? ExitCode.TEMPORARY) : ExitCode.TEMPORARY);
  return {
    ...mode,
    latencyFrom: mode.mode === "closed-loop" ? "send" : "intended-start",
    calls: done,
    ok: done - failed,
    failed,
    seconds,
    callsPerSecond: rateSeconds(mode, seconds) > 0 ? (done - failed) / rateSeconds(mode, seconds) : 0,
    latencyMs: latencies.summary() ?? null,
    ...(sendLag ? { sendLagMs: sendLag.summary() ?? null } : {}),
    errors,
    outages,
    ...(cutShort ? { cutShort } : {}),
    // Stopped by a signal: the shell's code for it (130, 143), as `call -` and serve exit.
    exitCode:
      signal === undefined ? mostSevere(codes) : signal === "SIGTERM" ? ExitCode.SIGTERM_AGAIN : ExitCode.SIGINT_AGAIN,
  };
}

/**
 * The open-loop schedule: call i is due at t0 + i·1000/rate ms. Each due call is sent as soon as
 * the scheduler gets to it, however late, and however many are in flight (up to the cap); it is
 * never made to wait for an earlier call. Returns once every sent call has settled.
 */
async function openLoop(s: {
  rate: number;
  maxOutstanding: number;
  requests?: number;
  t0: number;
  endAt: number;
  clock: Clock;
  sendLag: LatencyHistogram;
  callOnce: (from: number) => Promise<void>;
  stillUsable: () => boolean;
  stopping: Stopping;
}): Promise<{ achievedRate: number; missed: number; scheduleSeconds: number }> {
  const interval = 1000 / s.rate;
  let scheduled = 0;
  let sent = 0;
  let missed = 0;
  let outstanding = 0;
  let drained: (() => void) | undefined;
  let burst = 0;
  /** When a signal or a lost connection ended the schedule: it then covers only the time up to there. */
  let cutAt: number | undefined;
  for (;;) {
    if (s.requests !== undefined && scheduled >= s.requests) break;
    const due = s.t0 + scheduled * interval;
    if (due >= s.endAt) break;
    if (s.stopping.cuts() || !s.stillUsable()) {
      cutAt = s.clock.now();
      break;
    }
    const now = s.clock.now();
    if (due > now) {
      burst = 0;
      // A long wait (a low --rate) ends when the run is stopped; a short one is not worth the promise.
      const wait = s.clock.sleep(due - now);
      await (due - now > LONG_WAIT_MS ? s.stopping.until(wait) : wait);
      continue;
    }
    scheduled++;
    if (outstanding >= s.maxOutstanding) {
      missed++;
      continue;
    }
    sent++;
    outstanding++;
    s.sendLag.add(now - due);
    s.callOnce(due).finally(() => {
      if (--outstanding === 0) drained?.();
    });
    // Behind schedule, calls go out back to back; now and then let replies in.
    if (++burst >= BURST) {
      burst = 0;
      await s.clock.sleep(0);
    }
  }
  const scheduleEnd = s.clock.now();
  if (outstanding > 0) await new Promise<void>((resolve) => (drained = resolve));
  // Over the time the schedule took, at least the time it was meant to take: the calls it started, one interval
  // each, or, cut short, up to the cut (`--rate 0.001` stopped after 15 s ran 15 s, not the 1000 s of its one call).
  const meantMs = Math.min(scheduled * interval, (cutAt ?? Number.POSITIVE_INFINITY) - s.t0);
  const seconds = Math.max(scheduleEnd - s.t0, meantMs) / 1000;
  return { achievedRate: seconds > 0 ? sent / seconds : 0, missed, scheduleSeconds: meantMs / 1000 };
}

/**
 * o.stop as the loops see it: when it came (`at`), whether it kept a call of the plan from starting
 * (`cut`: the run was cut short, not just ending), and waits that end when it comes, each unhooked once
 * over, so that no reaction is left behind per call or per wait.
 */
class Stopping {
  at: number | undefined;
  cut = false;
  private readonly wakers = new Set<() => void>();

  constructor(signal: AbortSignal | undefined, clock: Clock) {
    const stop = () => {
      this.at ??= clock.now();
      for (const wake of this.wakers) wake();
      this.wakers.clear();
    };
    if (signal?.aborted) stop();
    else signal?.addEventListener("abort", stop, { once: true });
  }

  /** True (and the run cut short) if stopped: asked where the plan would start another call. */
  cuts(): boolean {
    if (this.at === undefined) return false;
    this.cut = true;
    return true;
  }

  /** Resolves when `wait` does, or when the run is stopped, whichever comes first. */
  until(wait: Promise<unknown>): Promise<void> {
    if (this.at !== undefined) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.wakers.delete(done);
        resolve();
      };
      this.wakers.add(done);
      wait.then(done, done);
    });
  }
}

/** How many distinct n a range is sampled with. */
export const POOL = 256;

/** The n a run draws from: the whole range if it is small, else POOL values spread evenly over it. */
export function nPool(min: number, max: number): number[] {
  const span = max - min + 1;
  if (span <= POOL) return Array.from({ length: span }, (_, i) => min + i);
  return Array.from({ length: POOL }, (_, i) => min + Math.round((i * (span - 1)) / (POOL - 1)));
}
