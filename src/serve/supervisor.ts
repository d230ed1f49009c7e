/**
 * Main thread of `fibrpc serve`: starts N workers, restarts those that die (with backoff, giving
 * up on a crash loop), owns SIGTERM/SIGINT (Bun Workers get no signals) and drains on them.
 * Knows nothing of Fibonacci or of AMQP.
 */
import { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { WORKER_URL } from "../paths.ts";
import type { FromWorker, ToWorker, WorkerConfig } from "./messages.ts";
import { CrashBook } from "./crash-ledger.ts";
import { addStats, AnsweredTally, countersOf, emptyStats, type WorkerStats } from "./stats.ts";
import { BlockedLog } from "./flow-control.ts";
import { OutageLog, SUMMARY_EVERY_MS, type OutageLine } from "./outage.ts";
import { type FirstSignal, firstSignal, isEcho, secondSignalName } from "../signals.ts";

export interface SupervisorOptions {
  workers: number;
  drainTimeoutMs: number;
  worker: Omit<WorkerConfig, "id" | "ledger" | "answered">;
  log: Logger;
  /**
   * Told how many workers are serving (and why the broker blocks them, if it does): on every
   * change, and every few seconds as a heartbeat.
   */
  onStatus?: (status: ServeStatusUpdate) => void;
  statusEveryMs?: number;
  /** The outage summary's interval (default SUMMARY_EVERY_MS; the test build shortens it, serve/test-build.ts). */
  outageSummaryMs?: number;
}

export interface ServeStatusUpdate {
  serving: number;
  workers: number;
  /** The broker's reason, while it blocks a worker's connection (flow control). */
  blocked?: string;
  /** Stopping on a signal: finishing the requests in progress, taking no new ones. */
  draining?: true;
}

/** A worker that crashes this many times within CRASH_WINDOW_MS makes serve give up. */
const CRASH_LIMIT = 5;
const CRASH_WINDOW_MS = 60_000;
const RESTART_BASE_DELAY_MS = 200;
const RESTART_MAX_DELAY_MS = 5_000;

interface Slot {
  id: number;
  worker?: Worker;
  serving: boolean;
  crashes: number[];
  /** The worker's counters as of the last scrape (folded into `retired` if it dies). */
  lastStats: WorkerStats;
}

/** Everything /metrics and /readyz report, for the whole process. */
export interface ServeSnapshot {
  stats: WorkerStats;
  workers: number;
  serving: number;
  restarts: number;
  draining: boolean;
  /** Worker connections the broker blocks now (flow control), and its reason while it does. */
  blocked: number;
  blockedReason?: string;
  /** Times the broker blocked a worker's connection, since the start. */
  blocks: number;
}

export interface Supervisor {
  /** Resolves with serve's exit code once it has stopped. */
  done: Promise<ExitCode>;
  /** Serving state, at once. */
  state(): Omit<ServeSnapshot, "stats">;
  /** Asks every worker for its counters and sums them (bounded wait). */
  collect(): Promise<ServeSnapshot>;
}

/** A worker that does not answer a stats request within this is counted with its last figures. */
const STATS_TIMEOUT_MS = 1_000;

export function supervise(options: SupervisorOptions): Supervisor {
  const { log } = options;
  const slots: Slot[] = Array.from({ length: options.workers }, (_, i) => ({
    id: i + 1,
    serving: false,
    crashes: [],
    lastStats: emptyStats(),
  }));
  // Counters of workers that died, so the process's counters never go down (Prometheus counters
  // are monotonic). What a worker counted after the last scrape before it died is lost.
  let retired = emptyStats();
  let restarts = 0;
  let statsRequest = 0;
  const statsWaiters = new Map<number, Map<number, (stats: WorkerStats) => void>>();
  let stopping = false;
  const crashBook = new CrashBook(slots.length);
  const answered = new AnsweredTally(slots.length);
  // The broker's flow control, said once for the process (not per worker's connection).
  const flow = new BlockedLog();
  const notices = new Set<string>();
  let lastReported = -1;
  let everAllUp = false;
  // While the broker is away, the outage log speaks for the process (one warning, a summary at
  // most every 30 s, one line when all are back) instead of a line per worker and attempt.
  const outage = new OutageLog(slots.length, options.outageSummaryMs ?? SUMMARY_EVERY_MS);
  const say = (lines: OutageLine[]) => {
    for (const line of lines) log[line.level](line.message, line.fields);
  };
  let finish: (code: ExitCode) => void = () => {};
  const done = new Promise<ExitCode>((resolve) => {
    finish = resolve;
  });

  const servingCount = () => slots.filter((s) => s.serving).length;
  /** `announce`: false while the outage log speaks for the serving count. */
  const reportServing = (announce = !outage.active) => {
    const up = servingCount();
    status();
    if (up === lastReported || stopping) return;
    lastReported = up;
    if (up === slots.length) everAllUp = true;
    if (!announce) return;
    const message = `${up}/${slots.length} workers serving`;
    if (up === slots.length) log.info(message);
    else if (everAllUp) log.warn(message);
    else log.debug(message); // still starting up: not worth a warning
  };

  const status = () =>
    options.onStatus?.({
      serving: stopping ? 0 : servingCount(),
      workers: slots.length,
      ...(flow.reason === undefined ? {} : { blocked: flow.reason }),
      ...(stopping ? { draining: true as const } : {}),
    });

  const post = (slot: Slot, message: ToWorker) => slot.worker?.postMessage(message);

  const start = (slot: Slot) => {
    const worker = new Worker(WORKER_URL);
    slot.worker = worker;
    slot.serving = false;
    worker.onmessage = (event: MessageEvent<FromWorker>) => onWorkerMessage(slot, event.data);
    worker.onerror = (event) => {
      log.error(`worker ${slot.id} failed: ${event.message}`);
    };
    worker.addEventListener("close", () => onWorkerClosed(slot, worker));
    post(slot, {
      type: "start",
      config: {
        ...options.worker,
        id: slot.id,
        ledger: crashBook.configFor(slot.id - 1),
        answered: answered.slotOf(slot.id - 1),
      },
    });
  };

  /** The error that stops serve: shown even at --log-level silent, as call's and bench's own error line is. */
  const sayFatal = (text: string) => {
    const level = log.level;
    log.level = Math.max(level, 0);
    log.error(text);
    log.level = level;
  };

  const onWorkerMessage = (slot: Slot, message: FromWorker) => {
    switch (message.type) {
      case "serving": {
        slot.serving = true;
        const lines = stopping ? [] : outage.serving(slot.id, message.broker, Date.now());
        say(lines);
        // The line ending an outage says how many serve.
        reportServing(lines.length === 0 && !outage.active);
        break;
      }
      case "interrupted":
        slot.serving = false;
        if (!stopping) say(outage.lost(slot.id, message.broker, message.reason, Date.now()));
        else lostInDrain(message.broker, message.reason);
        reportServing();
        break;
      case "retrying":
        if (!stopping) say(outage.retrying(slot.id, message.failure, message.delayMs, Date.now()));
        break;
      case "fatal":
        // Every worker meets the same problem; say it once.
        if (!stopping) sayFatal(message.message);
        shutdown(message.exitCode);
        break;
      case "notice":
        // Every worker meets the same situation; say it once per process.
        if (!notices.has(message.message)) log.warn(message.message);
        notices.add(message.message);
        break;
      case "blocked":
        say(flow.blocked(slot.id, message.reason, Date.now()));
        status();
        break;
      case "unblocked":
        say(flow.unblocked(slot.id, message.lost, Date.now()));
        status();
        break;
      case "drained":
        log.debug(`worker ${slot.id} drained after serving ${plural(message.served, "request")}`);
        break;
      case "stats":
        slot.lastStats = message.stats;
        statsWaiters.get(message.id)?.get(slot.id)?.(message.stats);
        break;
    }
  };

  const onWorkerClosed = (slot: Slot, worker: Worker) => {
    if (slot.worker !== worker) return;
    slot.worker = undefined;
    slot.serving = false;
    outage.gone(slot.id);
    say(flow.gone(slot.id, Date.now()));
    retired = addStats(retired, countersOf(slot.lastStats));
    slot.lastStats = emptyStats();
    if (stopping) {
      crashBook.clear(slot.id - 1);
      // Once the drain timed out, its line was the last word.
      if (slots.every((s) => !s.worker) && !timedOut) {
        clearTimeout(drainTimer);
        // The line closing what "SIGTERM: draining" opened; after a fatal error, that error stays
        // the last word (and this goes to debug).
        log[bySignal ? "info" : "debug"](
          `drained: ${plural(draining, "worker")} stopped, ${plural(answered.total, "request")} answered`,
          { workers: draining, answered: answered.total, exitCode },
        );
        finish(exitCode);
      }
      return;
    }
    // Which request it was computing, if any, is the one that killed it: every worker learns it,
    // so the request is refused as poison once it has crashed workers often enough.
    const pinned = crashBook.pinCrash(slot.id - 1);
    if (pinned) {
      log.warn(`worker ${slot.id} died while computing a request (crash ${pinned.count} pinned on it)`);
      for (const other of slots) post(other, { type: "crashed", ...pinned });
    }
    const now = Date.now();
    slot.crashes = [...slot.crashes.filter((t) => now - t < CRASH_WINDOW_MS), now];
    if (slot.crashes.length >= CRASH_LIMIT) {
      sayFatal(
        `worker ${slot.id} died ${slot.crashes.length} times within ${CRASH_WINDOW_MS / 1000}s; ` +
          `giving up (see the errors above)`,
      );
      shutdown(ExitCode.INTERNAL);
      return;
    }
    const delay = Math.min(RESTART_MAX_DELAY_MS, RESTART_BASE_DELAY_MS * 2 ** (slot.crashes.length - 1));
    log.warn(`worker ${slot.id} died unexpectedly; restarting it in ${delay} ms`);
    restarts++;
    reportServing();
    setTimeout(() => {
      if (!stopping) start(slot);
    }, delay);
  };

  let exitCode: ExitCode = ExitCode.OK;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;
  /** Workers asked to drain. */
  let draining = 0;
  let timedOut = false;
  let bySignal = false;
  let lostDuringDrain = false;
  /**
   * A connection lost while draining: what its worker held goes back to the queue, and a reply it wrote just
   * before may not have reached the broker. Not a clean drain (75, as a timed-out one), said once.
   */
  const lostInDrain = (broker: string, reason: string) => {
    if (exitCode === ExitCode.OK) exitCode = ExitCode.TEMPORARY;
    if (lostDuringDrain) return;
    lostDuringDrain = true;
    log.warn(
      `lost the connection to the broker at ${broker} during the drain (${reason}): ` +
        "the requests in progress go back to the queue, for another server",
    );
  };
  /** `signalled`: a signal asked for the drain (its line said "draining"; this one closes it). */
  const shutdown = (code: ExitCode, signalled = false) => {
    if (stopping) return;
    stopping = true;
    exitCode = code;
    bySignal = signalled;
    status(); // draining: not ready for new work
    const live = slots.filter((s) => s.worker);
    draining = live.length;
    if (live.length === 0) {
      // Nothing to drain: after a crash loop its error line is the last word.
      if (bySignal)
        log.info(`drained: no worker was running, ${plural(answered.total, "request")} answered`, {
          workers: 0,
          answered: answered.total,
          exitCode,
        });
      finish(exitCode);
      return;
    }
    const by = Date.now() + options.drainTimeoutMs;
    for (const slot of live) post(slot, { type: "drain", by });
    drainTimer = setTimeout(() => {
      timedOut = true;
      const left = slots.filter((s) => s.worker);
      // The requests those workers hold unacked go back to the queue when their connections
      // close: not lost, but not answered by this serve either, so not a clean exit (75, the
      // caller may retry; a more telling code, e.g. 78 after a refusal, stays).
      if (exitCode === ExitCode.OK) exitCode = ExitCode.TEMPORARY;
      log.warn(
        `drain timed out after ${options.drainTimeoutMs} ms: ${plural(left.length, "worker")} stopped abruptly; ` +
          `${left.length === 1 ? "its" : "their"} unacked requests go back to the queue`,
        {
          workers: left.length,
          answered: answered.total,
          exitCode,
        },
      );
      for (const slot of left) slot.worker?.terminate();
      finish(exitCode);
    }, options.drainTimeoutMs);
  };

  let first: FirstSignal | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    // A closed terminal may send SIGHUP more than once (the shell passes it on to its jobs): only SIGINT and
    // SIGTERM cut a drain short, and not the first one's echo (signals.ts).
    if (stopping && (signal === "SIGHUP" || (first !== undefined && isEcho(first, signal)))) return;
    if (stopping) {
      log.warn(`${first ? secondSignalName(first, signal) : signal}: exiting now`);
      process.exit(signal === "SIGINT" ? ExitCode.SIGINT_AGAIN : ExitCode.SIGTERM_AGAIN);
    }
    first = firstSignal(signal);
    log.info(`${signal}: draining (no new requests; finishing those in progress; up to ${options.drainTimeoutMs} ms)`);
    shutdown(ExitCode.OK, true);
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  // A hangup (the terminal of a serve run by hand closed) is taken as SIGTERM: a drain, not the abrupt
  // end the default action would be (a heavy computation lost, the status file left behind).
  process.on("SIGHUP", onSignal);

  const state = () => ({
    workers: slots.length,
    serving: stopping ? 0 : servingCount(),
    restarts,
    draining: stopping,
    blocked: flow.count,
    ...(flow.reason === undefined ? {} : { blockedReason: flow.reason }),
    blocks: flow.blocks,
  });
  const collect = async (): Promise<ServeSnapshot> => {
    const id = ++statsRequest;
    const waiters = new Map<number, (stats: WorkerStats) => void>();
    statsWaiters.set(id, waiters);
    const answers = slots
      .filter((slot) => slot.worker)
      .map(
        (slot) =>
          new Promise<WorkerStats>((resolve) => {
            const timer = setTimeout(() => resolve(slot.lastStats), STATS_TIMEOUT_MS);
            waiters.set(slot.id, (stats) => {
              clearTimeout(timer);
              resolve(stats);
            });
            post(slot, { type: "stats", id });
          }),
      );
    const all = await Promise.all(answers);
    statsWaiters.delete(id);
    return { ...state(), stats: all.reduce(addStats, retired) };
  };

  for (const slot of slots) start(slot);
  status();
  const heartbeat = options.onStatus ? setInterval(status, options.statusEveryMs ?? 5000) : undefined;
  return {
    done: done.finally(() => {
      if (heartbeat) clearInterval(heartbeat);
      if (drainTimer) clearTimeout(drainTimer);
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
      process.off("SIGHUP", onSignal);
    }),
    state,
    collect,
  };
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}
