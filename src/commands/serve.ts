import { defineCommand } from "citty";
import { displayUrl, ordinal } from "../broker-url.ts";
import { DEFAULT_PREFETCH, defaultWorkers, fromEnv, parseDuration, parseHost, parseIntOption } from "../config.ts";
import { usageError } from "../errors.ts";
import { DEFAULT_MAX_N } from "../rpc/protocol.ts";

/**
 * The largest --max-n: fib(10,000,000) (2.1 M digits) takes ~0.4 s here, already long for a worker
 * to block; much beyond it a request could stall a worker past its heartbeats.
 */
const MAX_MAX_N = 10_000_000;
import { QUEUE_TYPES, type QueueType } from "../rpc/queue.ts";
import { removeStatus, STATUS_HEARTBEAT_MS, writeStatus } from "../serve/status.ts";
import { startHttp } from "../serve/http.ts";
import { supervise, type Supervisor } from "../serve/supervisor.ts";
import { version } from "../version.ts";
import { brokerArgs, checkFlags, loadConfigFile, logArgs, resolveBroker, resolveLogFormat, resolveLogger, resolveLogLevel } from "./_args.ts";
import { runAction } from "./_run.ts";

const args = {
  workers: {
    type: "string",
    valueHint: "count",
    description: "Bun Workers in this process, each with its own connection and consumer [env FIBRPC_WORKERS] (default: number of CPUs)",
  },
  prefetch: {
    type: "string",
    valueHint: "count",
    description: `Unacknowledged requests the broker may push to each worker; while computing a heavy request (n ≥ 100000) a worker takes no new ones (classic queues); 1 is the tutorial's strict fair dispatch [env FIBRPC_PREFETCH] (default: ${DEFAULT_PREFETCH})`,
  },
  "max-n": {
    type: "string",
    valueHint: "n",
    description: `Largest n this server computes; larger requests get an N_TOO_LARGE error reply [env FIBRPC_MAX_N] (default: ${DEFAULT_MAX_N})`,
  },
  "queue-type": {
    type: "string",
    valueHint: QUEUE_TYPES.join("|"),
    description: "classic: declared like the tutorial's server (not durable); quorum: durable and replicated, for clusters [env FIBRPC_QUEUE_TYPE] (default: classic)",
  },
  "drain-timeout": {
    type: "string",
    valueHint: "duration",
    description: "On SIGTERM/SIGINT, how long to finish requests in progress before stopping anyway [env FIBRPC_DRAIN_TIMEOUT] (default: 10s)",
  },
  "http-port": {
    type: "string",
    valueHint: "port",
    description: "Serve /metrics (Prometheus), /healthz and /readyz on this port [env FIBRPC_HTTP_PORT] (default: off)",
  },
  "http-host": {
    type: "string",
    valueHint: "address",
    description: "Address --http-port listens on; 0.0.0.0 for every interface (the container image sets it) [env FIBRPC_HTTP_HOST] (default: 127.0.0.1)",
  },
  "status-file": {
    type: "string",
    valueHint: "path",
    description: "Keep this file up to date with the workers' state, for `fibrpc health` [env FIBRPC_STATUS_FILE] (default: none)",
  },
  ...brokerArgs,
  ...logArgs,
} as const;

export default defineCommand({
  meta: { name: "serve", description: "Serve Fibonacci requests from the request queue until SIGTERM or SIGINT" },
  args,
  run: ({ args: parsed, rawArgs }) =>
    runAction(async () => {
      const flags = checkFlags(rawArgs, args);
      await loadConfigFile(parsed.config);
      const { urls, queue, tls } = resolveBroker(flags.urls, parsed);
      // amqplib's recovering connection takes its socket options once, for every URL.
      const timeouts = urls.map((u) => u.connectionTimeoutMs);
      const differs = timeouts.findIndex((t) => t !== timeouts[0]);
      if (differs !== -1) {
        const shown = (t: number | undefined) => (t === undefined ? "none" : `${t}`);
        throw usageError(`serve uses one connection_timeout for all its broker URLs; the 1st gives ${shown(timeouts[0])}, the ${ordinal(differs + 1)} ${shown(timeouts[differs])}: give the same on each`);
      }
      const workers = parseIntOption("workers", fromEnv(parsed.workers, "FIBRPC_WORKERS"), defaultWorkers(), 1, 256);
      const prefetch = parseIntOption("prefetch", fromEnv(parsed.prefetch, "FIBRPC_PREFETCH"), DEFAULT_PREFETCH, 1, 65_535);
      const maxN = parseIntOption("max-n", fromEnv(parsed["max-n"], "FIBRPC_MAX_N"), DEFAULT_MAX_N, 0, MAX_MAX_N);
      const queueType = (fromEnv(parsed["queue-type"], "FIBRPC_QUEUE_TYPE") ?? "classic") as QueueType;
      if (!QUEUE_TYPES.includes(queueType)) throw usageError(`--queue-type must be one of ${QUEUE_TYPES.join(", ")}, got ${JSON.stringify(queueType)}`);
      const drainTimeout = fromEnv(parsed["drain-timeout"], "FIBRPC_DRAIN_TIMEOUT");
      const drainTimeoutMs = drainTimeout === undefined ? 10_000 : parseDuration("drain-timeout", drainTimeout);
      const httpPortValue = fromEnv(parsed["http-port"], "FIBRPC_HTTP_PORT");
      const httpPort = httpPortValue === undefined ? undefined : parseIntOption("http-port", httpPortValue, 0, 1, 65_535);
      const httpHostValue = fromEnv(parsed["http-host"], "FIBRPC_HTTP_HOST");
      const httpHost = httpHostValue === undefined ? "127.0.0.1" : parseHost("http-host", httpHostValue);
      // The image sets FIBRPC_HTTP_HOST for when a port is given; on the command line it is a mistake.
      if (parsed["http-host"] !== undefined && httpPort === undefined) throw usageError("--http-host has no effect without --http-port (or FIBRPC_HTTP_PORT)");
      const logLevel = resolveLogLevel(parsed["log-level"]);
      const logFormat = resolveLogFormat(parsed["log-format"]);
      const log = resolveLogger(parsed);
      const statusFile = fromEnv(parsed["status-file"], "FIBRPC_STATUS_FILE");
      let statusWarned = false;
      const onStatus = statusFile
        ? (serving: number, total: number) => {
            try {
              writeStatus(statusFile, { pid: process.pid, queue, workers: total, serving, updatedAt: Date.now() });
              statusWarned = false;
            } catch (err) {
              // A status file that cannot be written makes `fibrpc health` fail; serving goes on.
              if (!statusWarned) log.warn(`cannot write the status file ${statusFile}: ${(err as Error).message}`);
              statusWarned = true;
            }
          }
        : undefined;
      // HTTP first: a port in use or an address not of this machine is a usage error before any
      // worker starts. Requests reach the supervisor only once it exists (later turns).
      let supervisor: Supervisor | undefined;
      let http: { url: string; stop(): void } | undefined;
      if (httpPort !== undefined) {
        try {
          http = startHttp(httpHost, httpPort, { collect: () => supervisor!.collect(), state: () => supervisor!.state() });
        } catch (err) {
          const code = (err as { code?: string }).code;
          if (code === "EADDRINUSE") throw usageError(`--http-port ${httpPort} is already in use on ${httpHost}; pick another port`);
          if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_NONAME") throw usageError(`--http-host ${httpHost} is not an address of this machine`);
          throw err;
        }
      }
      log.info(`fibrpc ${version} serving queue ${JSON.stringify(queue)} (${queueType}) on ${urls.map(displayUrl).join(", ")} with ${workers} workers, prefetch ${prefetch}, max-n ${maxN}`, {
        version,
        queue,
        queueType,
        brokers: urls.map(displayUrl),
        workers,
        prefetch,
        maxN,
      });
      if (http) log.info(`HTTP on ${http.url}: /metrics, /healthz, /readyz`);
      try {
        supervisor = supervise({ workers, drainTimeoutMs, log, onStatus, statusEveryMs: STATUS_HEARTBEAT_MS, worker: { broker: { urls, tls }, queue, queueType, prefetch, maxN, logLevel, logFormat } });
        return await supervisor.done;
      } finally {
        http?.stop();
        if (statusFile) removeStatus(statusFile);
      }
    }),
});
