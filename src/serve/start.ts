/**
 * What `fibrpc serve` does once its options are resolved (commands/serve.ts): claim the status file, open
 * the HTTP port, say what it serves, then supervise the workers until they have drained.
 */
import { displayUrl } from "../broker-url.ts";
import type { ExitCode } from "../errors.ts";
import type { Logger } from "../log.ts";
import { warnTracingProblems } from "../tracing/start.ts";
import type { TracingConfig } from "../tracing/settings.ts";
import { version } from "../version.ts";
import { startHttp } from "./http.ts";
import { keepStatus, STATUS_HEARTBEAT_MS } from "./status.ts";
import { supervise, type Supervisor, type SupervisorOptions } from "./supervisor.ts";
import { quote } from "../printable.ts";

export interface ServeJob {
  worker: SupervisorOptions["worker"];
  workers: number;
  drainTimeoutMs: number;
  /** The file `fibrpc health` reads, kept up to date. */
  statusFile?: string;
  /** /metrics, /healthz and /readyz on this address. */
  http?: { host: string; port: number };
  /** The OTEL_* variables as read: their problems are said once for the process, after the start lines. */
  tracing: TracingConfig;
  /** The test build's shorter outage summary (serve/test-build.ts). */
  outageSummaryMs?: number;
}

export async function serve(job: ServeJob, log: Logger): Promise<ExitCode> {
  const { worker, workers } = job;
  const { queue, queueType, prefetch, maxN } = worker;
  // The status file first, then HTTP: a file another serve holds, a port in use or an address not of this
  // machine is a usage error before any worker starts. Requests reach the supervisor once it exists.
  const status = job.statusFile === undefined ? undefined : keepStatus(job.statusFile, { queue, workers }, log);
  // A second signal ends serve at once (process.exit, supervisor.ts), past the `finally` below: the file goes then too.
  const releaseAtExit = () => {
    try {
      status?.release();
    } catch {
      // Exiting anyway (its code must stay the signal's): `fibrpc health` tells a dead pid from a live one.
    }
  };
  process.once("exit", releaseAtExit);
  let supervisor: Supervisor | undefined;
  let http: { url: string; stop(): void } | undefined;
  try {
    if (job.http)
      http = startHttp(job.http.host, job.http.port, {
        collect: () => supervisor!.collect(),
        state: () => supervisor!.state(),
      });
    const brokers = worker.broker.urls.map(displayUrl);
    log.info(
      `fibrpc ${version} serving queue ${quote(queue)} (${queueType}) ` +
        `on ${brokers.join(", ")} with ${workers} worker${workers === 1 ? "" : "s"}, ` +
        `prefetch ${prefetch}, max-n ${maxN}`,
      { version, queue, queueType, brokers, workers, prefetch, maxN },
    );
    if (http) log.info(`HTTP on ${http.url}: /metrics, /healthz, /readyz`);
    // Said once for the process; the workers are sent the settings and build their tracers.
    warnTracingProblems(job.tracing, log);
    const every = { statusEveryMs: STATUS_HEARTBEAT_MS, outageSummaryMs: job.outageSummaryMs };
    supervisor = supervise({
      workers,
      drainTimeoutMs: job.drainTimeoutMs,
      log,
      onStatus: status?.update,
      ...every,
      worker,
    });
    return await supervisor.done;
  } finally {
    http?.stop();
    status?.release();
    process.off("exit", releaseAtExit);
  }
}
