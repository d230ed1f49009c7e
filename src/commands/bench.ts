import { defineCommand } from "citty";
import { progressDisplay } from "../bench/progress.ts";
import { ReconnectingCaller } from "../bench/reconnect.ts";
import { runBench } from "../bench/run.ts";
import { formatSummary } from "../bench/summary.ts";
import { writeStdout } from "../output.ts";
import { awaitServer } from "../rpc/await-server.ts";
import type { ExitCode } from "../errors.ts";
import type { Options } from "../options.ts";
import { RpcClient, type ClientOptions } from "../rpc/client.ts";
import { runAction, type RunContext } from "./_run.ts";
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
      const log = loggerOf(o, run);
      // With tracing on (OTEL_*), a send span per call as `call` makes them, sampled per OTEL_TRACES_SAMPLER
      // (a ratio keeps a share of the calls; each carries its sampling decision to the server).
      const tracer = await tracerOf(run, log);
      const clientOptions = { ...clientOptionsOf(o, run, log, "direct"), tracer };
      try {
        return await bench(o, run, clientOptions);
      } finally {
        // The spans exported before exit, within a bounded wait (tracing off: nothing to do).
        await tracer?.shutdown();
      }
    }),
});

async function bench(o: Options<"bench">, run: RunContext, clientOptions: ClientOptions): Promise<ExitCode> {
  const client = await RpcClient.connect(clientOptions);
  let caller: ReconnectingCaller | undefined;
  try {
    await awaitServer(client, { deadline: Date.now() + o.timeout, wait: false });
    const runEnd = o.duration === undefined ? undefined : Date.now() + o.duration;
    const reconnect = (deadline: number) =>
      RpcClient.connect(clientOptions, Math.min(deadline, Date.now() + o.timeout));
    caller = new ReconnectingCaller(client, reconnect, {
      // --duration: until the run's end, when the caller is closed; --requests: a run with no
      // broker for --timeout is cut short (no call could be answered in time any more).
      reconnectUntil: (lostAt) => (runEnd === undefined ? lostAt + o.timeout : Number.POSITIVE_INFINITY),
      log: clientOptions.log,
    });
    // Progress is for a person watching; with JSON on stdout or in the logs, stderr stays
    // machine-readable, so none.
    const progress = o.json || o.logFormat === "json" ? undefined : progressDisplay(process.stderr);
    const requests = o.duration === undefined ? o.requests : undefined;
    const result = await runBench(caller, {
      concurrency: o.concurrency,
      rate: o.rate,
      // Open loop: --concurrency only caps the calls in flight, and only when asked for.
      maxOutstanding: o.rate !== undefined && o.from.concurrency !== "default" ? o.concurrency : undefined,
      requests,
      durationMs: o.duration,
      n: o.n,
      timeoutMs: o.timeout,
      onProgress: progress?.onProgress,
      progressEveryMs: progress?.everyMs,
    });
    progress?.done();
    // Masked: outages and a run cut short quote the broker's URL in their errors. The exit code is as
    // `fibrpc call`'s for the same outcomes (errors.ts); missed calls, like timeouts, say the server did
    // not keep up (bench/run.ts).
    const { exitCode, ...shown } = result;
    const planned = { n: o.n.text, queue: o.queue, requests, durationMs: o.duration };
    const masker = run.masker;
    await writeStdout(o.json ? `${masker.mask(JSON.stringify(shown))}\n` : formatSummary(result, planned, masker));
    return exitCode;
  } finally {
    await (caller ?? client).close();
  }
}
