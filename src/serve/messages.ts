/** Messages between the supervisor (main thread) and its workers. */
import type { ExitCode } from "../errors.ts";
import type { LogFormat, LogLevelName } from "../log.ts";
import type { BrokerTarget } from "../rpc/broker.ts";
import type { OutletMode } from "../rpc/outlet.ts";
import type { QueueType } from "../rpc/queue.ts";
import type { TracingSettings } from "../tracing/settings.ts";
import type { LedgerConfig } from "./crash-ledger.ts";
import type { AttemptFailure } from "./outage.ts";
import type { TallySlot, WorkerStats } from "./stats.ts";

export interface WorkerConfig {
  /** 1 for the first worker: the lead (rpc/scheduler.ts), which a restart of it keeps. */
  id: number;
  broker: BrokerTarget;
  queue: string;
  queueType: QueueType;
  prefetch: number;
  maxN: number;
  logLevel: LogLevelName;
  logFormat: LogFormat;
  /** NO_COLOR was set (env-settings.ts). */
  noColor: boolean;
  /** The frame writer, or amqplib's own publish and ack (FIBRPC_OUTLET, env-settings.ts). */
  outlet: OutletMode;
  /**
   * Tracing's settings (OTEL_* variables, env-settings.ts), if on: each worker builds its own
   * tracer from them, loading the SDK from `sdk` (paths.ts SDK_URL, as the main thread has it).
   */
  tracing?: { settings: TracingSettings; sdk: string };
  /** The test build's fault injection (FIBRPC_TEST_FAULTS, serve/test-build.ts); never set in the release build. */
  faults?: string;
  /** This worker's slot of the process's crash ledger. */
  ledger: LedgerConfig;
  /** Where this worker counts the requests it answers (stats.ts AnsweredTally). */
  answered: TallySlot;
}

export type ToWorker =
  | { type: "start"; config: WorkerConfig }
  /** Drain, and be done by `by` (ms since the epoch: the supervisor's --drain-timeout runs out then). */
  | { type: "drain"; by: number }
  | { type: "stats"; id: number }
  /** A worker died computing the request with this key: its crash count so far. */
  | { type: "crashed"; key: string; count: number };

export type FromWorker =
  /** Consuming (again) on `broker` (password masked, as every broker named here). */
  | { type: "serving"; broker: string }
  /** The connection to `broker` was lost; a retry follows. */
  | { type: "interrupted"; broker: string; reason: string }
  /**
   * The next connection attempt is in `delayMs`: after a failed one (`failure`) or a lost
   * connection. The supervisor summarises these for the process (outage.ts).
   */
  | { type: "retrying"; attempt: number; delayMs: number; failure?: AttemptFailure }
  | { type: "fatal"; message: string; exitCode: ExitCode }
  | { type: "notice"; message: string }
  /** The broker blocks this worker's connection (flow control), for `reason`. */
  | { type: "blocked"; reason: string }
  /** The broker unblocked it, or (`lost`) the blocked connection is gone. */
  | { type: "unblocked"; lost: boolean }
  | { type: "drained"; served: number }
  | { type: "stats"; id: number; stats: WorkerStats };
