import { defineCommand } from "citty";
import { displayUrl } from "../broker-url.ts";
import { argsOf } from "../options.ts";
import {
  claimStatus,
  holderOf,
  removeStatus,
  STATUS_HEARTBEAT_MS,
  writeStatus,
  type ServeStatus,
} from "../serve/status.ts";
import { startHttp } from "../serve/http.ts";
import { supervise, type ServeStatusUpdate, type Supervisor } from "../serve/supervisor.ts";
import { usageError } from "../errors.ts";
import { version } from "../version.ts";
import { runAction } from "./_run.ts";
import { brokerTarget, loggerOf } from "./_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve Fibonacci requests from the request queue until SIGTERM or SIGINT" },
  args: argsOf("serve"),
  run: (context) =>
    runAction("serve", context, async (o, run) => {
      const broker = brokerTarget(o);
      const { queue, queueType, workers, prefetch, maxN, logLevel, logFormat, statusFile } = o;
      const { httpPort, httpHost } = o;
      const log = loggerOf(o, run);
      let statusWarned = false;
      let statusLost = false;
      const statusOf = ({ serving, workers: total, blocked }: ServeStatusUpdate): ServeStatus => ({
        pid: process.pid,
        queue,
        workers: total,
        serving,
        ...(blocked === undefined ? {} : { blocked }),
        updatedAt: Date.now(),
      });
      const onStatus = statusFile
        ? (update: ServeStatusUpdate) => {
            if (statusLost) return;
            // Another serve took the file over (this one was stopped long enough to look gone):
            // it is that one's now, never overwritten or deleted by this one.
            const holder = holderOf(statusFile);
            if (holder !== undefined) {
              log.warn(
                `the status file ${statusFile} is now held by another serve (pid ${holder}); ` +
                  "this one stops writing it, so `fibrpc health` reports on that one",
              );
              statusLost = true;
              return;
            }
            try {
              writeStatus(statusFile, statusOf(update));
              statusWarned = false;
            } catch (err) {
              // A status file that cannot be written makes `fibrpc health` fail; serving goes on.
              if (!statusWarned) log.warn(`cannot write the status file ${statusFile}: ${(err as Error).message}`);
              statusWarned = true;
            }
          }
        : undefined;
      // A status file belongs to one serve: two sharing it would answer `fibrpc health` for each
      // other, and the first to exit would delete it under the other. Claimed first, so that a
      // refusal comes before anything has started.
      if (statusFile) {
        const claim = claimStatus(statusFile, statusOf({ serving: 0, workers }));
        if (!claim.claimed && "holder" in claim) {
          throw usageError(
            `--status-file ${statusFile} is held by another serve (pid ${claim.holder}), which is running; ` +
              "give each serve its own --status-file",
          );
        }
      }
      // HTTP next: a port in use or an address not of this machine is a usage error before any
      // worker starts. Requests reach the supervisor only once it exists (later turns).
      let supervisor: Supervisor | undefined;
      let http: { url: string; stop(): void } | undefined;
      try {
        if (httpPort !== undefined)
          http = startHttp(httpHost, httpPort, {
            collect: () => supervisor!.collect(),
            state: () => supervisor!.state(),
          });
      } catch (err) {
        if (statusFile) removeStatus(statusFile);
        const code = (err as { code?: string }).code;
        if (code === "EADDRINUSE")
          throw usageError(`--http-port ${httpPort} is already in use on ${httpHost}; pick another port`);
        if (code === "EADDRNOTAVAIL" || code === "ENOTFOUND" || code === "EAI_NONAME")
          throw usageError(`--http-host ${httpHost} is not an address of this machine`);
        throw err;
      }
      log.info(
        `fibrpc ${version} serving queue ${JSON.stringify(queue)} (${queueType}) ` +
          `on ${broker.urls.map(displayUrl).join(", ")} with ${workers} workers, prefetch ${prefetch}, max-n ${maxN}`,
        {
          version,
          queue,
          queueType,
          brokers: broker.urls.map(displayUrl),
          workers,
          prefetch,
          maxN,
        },
      );
      if (http) log.info(`HTTP on ${http.url}: /metrics, /healthz, /readyz`);
      try {
        const { outlet, noColor, test } = run.env;
        const worker = {
          broker,
          queue,
          queueType,
          prefetch,
          maxN,
          logLevel,
          logFormat,
          noColor,
          outlet,
          faults: test.faults,
        };
        const every = { statusEveryMs: STATUS_HEARTBEAT_MS, outageSummaryMs: test.outageSummaryMs };
        supervisor = supervise({ workers, drainTimeoutMs: o.drainTimeout, log, onStatus, ...every, worker });
        return await supervisor.done;
      } finally {
        http?.stop();
        if (statusFile) removeStatus(statusFile);
      }
    }),
});
