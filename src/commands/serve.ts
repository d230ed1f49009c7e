import { defineCommand } from "citty";
import { displayUrl } from "../broker-url.ts";
import { startHttp } from "../serve/http.ts";
import { keepStatus, STATUS_HEARTBEAT_MS } from "../serve/status.ts";
import { supervise, type Supervisor } from "../serve/supervisor.ts";
import { version } from "../version.ts";
import { runAction } from "./_run.ts";
import { brokerTarget, loggerOf } from "./_shared.ts";
import { warnTracingProblems } from "../tracing/start.ts";
import { SDK_URL } from "../paths.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve Fibonacci requests from the request queue until SIGTERM or SIGINT" },
  run: (context) =>
    runAction("serve", context, async (o, run) => {
      const broker = brokerTarget(o);
      const { queue, queueType, workers, prefetch, maxN, logLevel, logFormat } = o;
      const log = loggerOf(o, run);
      // The status file first, then HTTP: a file another serve holds, a port in use or an address not of this
      // machine is a usage error before any worker starts. Requests reach the supervisor once it exists.
      const status = o.statusFile === undefined ? undefined : keepStatus(o.statusFile, { queue, workers }, log);
      let supervisor: Supervisor | undefined;
      let http: { url: string; stop(): void } | undefined;
      try {
        if (o.httpPort !== undefined)
          http = startHttp(o.httpHost, o.httpPort, {
            collect: () => supervisor!.collect(),
            state: () => supervisor!.state(),
          });
        const brokers = broker.urls.map(displayUrl);
        log.info(
          `fibrpc ${version} serving queue ${JSON.stringify(queue)} (${queueType}) ` +
            `on ${brokers.join(", ")} with ${workers} workers, prefetch ${prefetch}, max-n ${maxN}`,
          { version, queue, queueType, brokers, workers, prefetch, maxN },
        );
        if (http) log.info(`HTTP on ${http.url}: /metrics, /healthz, /readyz`);
        const { outlet, noColor, test, tracing } = run.env;
        // Said once for the process; the workers are sent the settings and build their tracers.
        warnTracingProblems(tracing, log);
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
          tracing: tracing.settings && { settings: tracing.settings, sdk: SDK_URL.href },
          faults: test.faults,
        };
        const every = { statusEveryMs: STATUS_HEARTBEAT_MS, outageSummaryMs: test.outageSummaryMs };
        const onStatus = status?.update;
        supervisor = supervise({ workers, drainTimeoutMs: o.drainTimeout, log, onStatus, ...every, worker });
        return await supervisor.done;
      } finally {
        http?.stop();
        status?.release();
      }
    }),
});
