import { defineCommand } from "citty";
import { SDK_URL } from "../paths.ts";
import { serve } from "../serve/start.ts";
import { runAction } from "./_run.ts";
import { brokerTarget, loggerOf } from "./_shared.ts";

export default defineCommand({
  meta: { name: "serve", description: "Serve Fibonacci requests from the request queue until SIGTERM or SIGINT" },
  run: (context) =>
    runAction("serve", context, async (o, run) => {
      // Reads the TLS files: a usage error, before anything starts.
      const broker = brokerTarget(o);
      const log = loggerOf(o, run);
      const { outlet, noColor, test, tracing } = run.env;
      const { queue, queueType, prefetch, maxN, logLevel, logFormat } = o;
      return serve(
        {
          worker: {
            broker,
            ...{ queue, queueType, prefetch, maxN, logLevel, logFormat, noColor, outlet },
            tracing: tracing.settings && { settings: tracing.settings, sdk: SDK_URL.href },
            faults: test.faults,
          },
          workers: o.workers,
          drainTimeoutMs: o.drainTimeout,
          statusFile: o.statusFile,
          http: o.httpPort === undefined ? undefined : { host: o.httpHost, port: o.httpPort },
          tracing,
          outageSummaryMs: test.outageSummaryMs,
        },
        log,
      );
    }),
});
