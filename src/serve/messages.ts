/** Messages between the supervisor (main thread) and its workers. */
import type { ExitCode } from "../errors.ts";
import type { LogFormat, LogLevelName } from "../log.ts";
import type { BrokerTarget } from "../rpc/broker.ts";
import type { QueueType } from "../rpc/queue.ts";
import type { WorkerStats } from "./stats.ts";

export interface WorkerConfig {
  id: number;
  broker: BrokerTarget;
  queue: string;
  queueType: QueueType;
  prefetch: number;
  maxN: number;
  logLevel: LogLevelName;
  logFormat: LogFormat;
  /** FIBRPC_TEST_FAULTS, for the test suite only. */
  faults?: string;
}

export type ToWorker = { type: "start"; config: WorkerConfig } | { type: "drain" } | { type: "stats"; id: number };

export type FromWorker =
  | { type: "serving" }
  | { type: "interrupted"; reason: string }
  | { type: "fatal"; message: string; exitCode: ExitCode }
  | { type: "drained"; served: number }
  | { type: "stats"; id: number; stats: WorkerStats };
