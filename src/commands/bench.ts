import { defineCommand } from "citty";
import { ReconnectingCaller } from "../bench/reconnect.ts";
import { runBench, type BenchProgress } from "../bench/run.ts";
import { formatSummary } from "../bench/summary.ts";
import { writeStdout } from "../output.ts";
import { argsOf } from "../options.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { RpcClient } from "../rpc/client.ts";
import { runAction } from "./_run.ts";
import { brokerTarget, loggerOf } from "./_shared.ts";

export default defineCommand({
  // Its exit codes: EXIT_CODES (src/errors.ts), in the root --help: 0 only if every call was
  // answered, the connection never lost and the run not cut short; else the worst failure's
  // code, as `fibrpc call` exits for it (bench/run.ts).
  meta: {
    name: "bench",
    description:
      "Load a running `fibrpc serve` and report answered calls/s, latency percentiles and errors; " +
      "every answer is checked",
  },
  args: argsOf("bench"),
  run: (context) =>
    runAction("bench", context, async (o, run) => {
      const broker = brokerTarget(o);
      const log = loggerOf(o, run);

      const { outlet, publisherConfirms } = run.env;
      const clientOptions = {
        broker,
        queue: o.queue,
        replyQueue: "direct",
        format: "text",
        timeoutMs: o.timeout,
        log,
        publisherConfirms,
        outlet,
      } as const;
      const client = await RpcClient.connect(clientOptions);
      let caller: ReconnectingCaller | undefined;
      try {
        await awaitServer(client, { deadline: Date.now() + o.timeout, wait: false });
        const runEnd = o.duration === undefined ? undefined : Date.now() + o.duration;
        caller = new ReconnectingCaller(
          client,
          (deadline) => RpcClient.connect(clientOptions, Math.min(deadline, Date.now() + o.timeout)),
          {
            // --duration: until the run's end, when the caller is closed; --requests: a run with no
            // broker for --timeout is cut short (no call could be answered in time any more).
            reconnectUntil: (lostAt) => (runEnd === undefined ? lostAt + o.timeout : Number.POSITIVE_INFINITY),
            log,
          },
        );
        const tty = process.stderr.isTTY === true;
        const rate = rateMeter();
        // Progress is for a person watching; with JSON on stdout or in the logs, stderr stays
        // machine-readable, so none.
        const quiet = o.json || o.logFormat === "json";
        const result = await runBench(caller, {
          concurrency: o.concurrency,
          rate: o.rate,
          // Open loop: --concurrency only caps the calls in flight, and only when asked for.
          maxOutstanding: o.rate !== undefined && o.from.concurrency !== "default" ? o.concurrency : undefined,
          requests: o.duration === undefined ? o.requests : undefined,
          durationMs: o.duration,
          n: o.n,
          timeoutMs: o.timeout,
          onProgress: quiet ? undefined : tty ? (p) => drawBar(p, rate(p)) : (p) => printLine(p, rate(p)),
          progressEveryMs: tty ? 100 : 1000,
        });
        if (tty && !quiet) process.stderr.write("\r\u001b[K");
        const { exitCode, ...shown } = result;
        // Masked: outages and a run cut short quote the broker's URL in their errors.
        const planned = {
          n: o.n.text,
          queue: o.queue,
          requests: o.duration === undefined ? o.requests : undefined,
          durationMs: o.duration,
        };
        await writeStdout(
          o.json ? `${run.masker.mask(JSON.stringify(shown))}\n` : formatSummary(result, planned, run.masker),
        );
        // As `fibrpc call` exits for the same outcomes (one table, src/errors.ts); missed calls,
        // like timeouts, say the server did not keep up: try again later (bench/run.ts).
        return exitCode;
      } finally {
        await (caller ?? client).close();
      }
    }),
});

/** Answered calls per second since the last progress report (failed ones are not counted). */
function rateMeter(): (p: BenchProgress) => number {
  let lastAnswered = 0;
  let lastAt = 0;
  return (p) => {
    const now = p.elapsedMs;
    const answered = p.done - p.errors;
    const r = now > lastAt ? ((answered - lastAnswered) * 1000) / (now - lastAt) : 0;
    lastAnswered = answered;
    lastAt = now;
    return r;
  };
}

function drawBar(p: BenchProgress, rate: number): void {
  const width = 30;
  const filled = Math.round(p.fraction * width);
  process.stderr.write(
    `\r\u001b[K[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%  ` +
      `${p.done} calls  ${Math.round(rate)} calls/s  ${p.errors} errors`,
  );
}

function printLine(p: BenchProgress, rate: number): void {
  process.stderr.write(
    `${(p.elapsedMs / 1000).toFixed(1)}s: ${p.done} calls, ${Math.round(rate)} calls/s, ${p.errors} errors\n`,
  );
}
