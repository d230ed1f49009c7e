import { defineCommand } from "citty";
import { progressDisplay } from "../bench/progress.ts";
import { benchServer } from "../bench/session.ts";
import { formatSummary, withoutFloatNoise } from "../bench/summary.ts";
import { writeSync } from "node:fs";
import { ExitCode, FibrpcError, messageOf } from "../errors.ts";
import { showsInfo } from "../log.ts";
import { writeResults } from "../output.ts";
import { NEARNESS } from "../options.ts";
import { runAction } from "./_run.ts";
import { clientOptionsOf, loggerOf, tracerOf } from "./_shared.ts";

export default defineCommand({
  meta: {
    name: "bench",
    description:
      "Load a running `fibrpc serve` and report answered calls/s, latency percentiles and errors; " +
      "every answer is checked",
  },
  run: (context) =>
    runAction("bench", context, async (o, run) => {
      // Progress is for a person watching; with JSON on stdout or in the logs, stderr stays
      // machine-readable, so none; and none below --log-level info, which asks for a quieter stderr.
      const quiet = o.json || o.logFormat === "json" || !showsInfo(o.logLevel);
      // On a terminal its bar is drawn in place: a log line erases it first (the bar comes back below).
      const log = loggerOf(o, run, !quiet);
      // With tracing on (OTEL_*), a send span per call as `call` makes them, sampled per OTEL_TRACES_SAMPLER
      // (a ratio keeps a share of the calls; each carries its sampling decision to the server).
      const tracer = await tracerOf(run, log);
      const clientOptions = { ...clientOptionsOf(o, run, log, o.replyQueue), tracer };
      const progress = quiet ? undefined : progressDisplay(process.stderr);
      // --requests and --duration given at two levels (options-resolve.ts refuses them at one): the nearer wins.
      const byDuration = o.duration !== undefined && NEARNESS[o.from.duration] >= NEARNESS[o.from.requests];
      const requests = byDuration ? undefined : o.requests;
      const durationMs = byDuration ? o.duration : undefined;
      const loop = {
        concurrency: o.concurrency,
        rate: o.rate,
        // Open loop: --concurrency only caps the calls in flight, and only when asked for.
        maxOutstanding: o.rate !== undefined && o.from.concurrency !== "default" ? o.concurrency : undefined,
        requests,
        durationMs,
        n: o.n,
        timeoutMs: o.timeout,
        onProgress: progress?.onProgress,
        progressEveryMs: progress?.everyMs,
      };
      // A signal that leaves no summary (before the run starts, or a second one): --json still gets its object.
      const interrupted = (signal: "SIGINT" | "SIGTERM", why: string): never => {
        try {
          if (o.json) writeSync(1, `${JSON.stringify({ error: { code: "INTERRUPTED", message: why } })}\n`);
        } catch {
          // stdout closed or full: the exit code and the line below still say it.
        }
        process.stderr.write(`fibrpc: ${why}\n`);
        process.exit(signal === "SIGINT" ? ExitCode.SIGINT_AGAIN : ExitCode.SIGTERM_AGAIN);
      };
      try {
        return await benchServer(
          clientOptions,
          loop,
          async (result) => {
            progress?.done();
            // Masked: outages and a run cut short quote the broker's URL in their errors. The exit code is as
            // `fibrpc call`'s for the same outcomes (errors.ts); missed calls, like timeouts, say the server
            // did not keep up (bench/run.ts).
            const { exitCode, ...shown } = result;
            const planned = { n: o.n.text, nMax: o.n.max, queue: o.queue, requests, durationMs };
            const { masker } = run;
            await writeResults(
              o.json
                ? `${masker.mask(JSON.stringify(shown, withoutFloatNoise))}\n`
                : formatSummary(result, planned, masker),
            );
            return exitCode;
          },
          interrupted,
        );
      } catch (err) {
        // --json: stdout holds one object whatever happens, as call's does (`fibrpc bench --json | jq` gets
        // the error, and the exit code says it too).
        if (o.json) {
          const error =
            err instanceof FibrpcError
              ? { code: err.code, message: err.message }
              : { code: "INTERNAL", message: `internal error: ${messageOf(err)}` };
          // Best effort: if stdout fails too, the error that stopped the run is still the one reported.
          await writeResults(`${run.masker.mask(JSON.stringify({ error }))}\n`).catch(() => {});
        }
        throw err;
      } finally {
        // The spans exported before exit, within a bounded wait (tracing off: nothing to do).
        await tracer?.shutdown();
      }
    }),
});
