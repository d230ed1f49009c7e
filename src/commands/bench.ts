import { defineCommand } from "citty";
import { ExitCode } from "../errors.ts";
import { runBench, type BenchProgress, type BenchResult } from "../bench/run.ts";
import { writeStdout } from "../output.ts";
import { argsOf } from "../options.ts";
import { awaitServer } from "../rpc/await-server.ts";
import { RpcClient } from "../rpc/client.ts";
import { runAction } from "./_run.ts";
import { brokerTarget, loggerOf } from "./_shared.ts";

export default defineCommand({
  meta: { name: "bench", description: "Load a running `fibrpc serve` and report calls/s, latency percentiles and errors; every answer is checked" },
  args: argsOf("bench"),
  run: ({ rawArgs }) =>
    runAction("bench", rawArgs, async (o) => {
      const broker = brokerTarget(o);
      const log = loggerOf(o);

      const client = await RpcClient.connect({ broker, queue: o.queue, replyQueue: "direct", format: "text", timeoutMs: o.timeout, log });
      try {
        await awaitServer(client, { deadline: Date.now() + o.timeout, wait: false });
        const tty = process.stderr.isTTY === true;
        const rate = rateMeter();
        const result = await runBench(client, {
          concurrency: o.concurrency,
          requests: o.duration === undefined ? o.requests : undefined,
          durationMs: o.duration,
          n: o.n,
          timeoutMs: o.timeout,
          onProgress: tty ? (p) => drawBar(p, rate(p)) : (p) => printLine(p, rate(p)),
          progressEveryMs: tty ? 100 : 1000,
        });
        if (tty) process.stderr.write("\r\u001b[K");
        await writeStdout(o.json ? `${JSON.stringify(result)}\n` : formatSummary(result, { concurrency: o.concurrency, n: o.n.text, queue: o.queue }));
        const failed = Object.values(result.errors).reduce((a, b) => a + b, 0);
        return failed === 0 ? ExitCode.OK : result.errors.TIMEOUT || result.errors.CONNECTION_LOST ? ExitCode.TEMPORARY : ExitCode.REMOTE_ERROR;
      } finally {
        await client.close();
      }
    }),
});

/** Calls per second since the last progress report. */
function rateMeter(): (p: BenchProgress) => number {
  let lastDone = 0;
  let lastAt = 0;
  return (p) => {
    const now = p.elapsedMs;
    const r = now > lastAt ? ((p.done - lastDone) * 1000) / (now - lastAt) : 0;
    lastDone = p.done;
    lastAt = now;
    return r;
  };
}

function drawBar(p: BenchProgress, rate: number): void {
  const width = 30;
  const filled = Math.round(p.fraction * width);
  process.stderr.write(`\r\u001b[K[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%  ${p.done} calls  ${Math.round(rate)} calls/s  ${p.errors} errors`);
}

function printLine(p: BenchProgress, rate: number): void {
  process.stderr.write(`${(p.elapsedMs / 1000).toFixed(1)}s: ${p.done} calls, ${Math.round(rate)} calls/s, ${p.errors} errors\n`);
}

function formatSummary(r: BenchResult, o: { concurrency: number; n: string; queue: string }): string {
  const ms = (v: number) => `${v.toFixed(3)} ms`;
  const errors = Object.entries(r.errors);
  return [
    `fibrpc bench: ${r.calls} calls of fib(${o.n}) on queue ${JSON.stringify(o.queue)}, ${o.concurrency} in flight, in ${r.seconds.toFixed(2)} s`,
    `  calls/s   ${Math.round(r.callsPerSecond)}`,
    `  latency   p50 ${ms(r.latencyMs.p50)}  p90 ${ms(r.latencyMs.p90)}  p99 ${ms(r.latencyMs.p99)}  p99.9 ${ms(r.latencyMs.p999)}  max ${ms(r.latencyMs.max)}`,
    `  errors    ${errors.length === 0 ? "none (every answer checked against the exact value)" : errors.map(([code, count]) => `${code} ${count}`).join(", ")}`,
    "",
  ].join("\n");
}
