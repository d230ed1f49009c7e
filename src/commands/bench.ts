import { defineCommand } from "citty";
import { ExitCode, mostSevere } from "../errors.ts";
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
        // Progress is for a person watching; with JSON on stdout or in the logs, stderr stays
        // machine-readable, so none.
        const quiet = o.json || o.logFormat === "json";
        const result = await runBench(client, {
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
        const { worstExitCode, ...shown } = result;
        await writeStdout(o.json ? `${JSON.stringify(shown)}\n` : formatSummary(result, { n: o.n.text, queue: o.queue }));
        // As `fibrpc call` exits for the same outcomes (one table, src/errors.ts); missed calls,
        // like timeouts, say the server did not keep up: try again later.
        const missed = result.mode === "open-loop" && result.missed > 0;
        return mostSevere([worstExitCode, missed ? ExitCode.TEMPORARY : ExitCode.OK]);
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

/**
 * "closed-loop, 100 in flight" or "open-loop at 2000 calls/s (achieved: 1998 sent/s)". The
 * achieved rate is of sends over the schedule (JSON achievedRate); the answers per second over
 * the whole run, the drain of the last calls included, are the summary's "answered/s" line.
 */
export function modeText(r: BenchResult): string {
  if (r.mode === "closed-loop") return `closed-loop, ${r.concurrency} in flight`;
  return `open-loop at ${r.rate} calls/s (achieved: ${Math.round(r.achievedRate)} sent/s)`;
}

function formatSummary(r: BenchResult, o: { n: string; queue: string }): string {
  const ms = (v: number) => `${v.toFixed(3)} ms`;
  const errors = Object.entries(r.errors);
  const lines = [
    `fibrpc bench: ${r.calls} calls of fib(${o.n}) on queue ${JSON.stringify(o.queue)}, ${modeText(r)}, in ${r.seconds.toFixed(2)} s`,
    // Open loop: answers over the whole run, which ends when the calls still in flight after the
    // schedule are answered, so it can be well under the rate sent; named apart from it.
    r.mode === "open-loop"
      ? `  answered/s ${Math.round(r.callsPerSecond)}  (over all ${r.seconds.toFixed(2)} s, incl. the drain of the calls in flight at the end)`
      : `  calls/s   ${Math.round(r.callsPerSecond)}`,
    `  latency   p50 ${ms(r.latencyMs.p50)}  p90 ${ms(r.latencyMs.p90)}  p99 ${ms(r.latencyMs.p99)}  p99.9 ${ms(r.latencyMs.p999)}  max ${ms(r.latencyMs.max)}  (from ${r.latencyFrom === "send" ? "each send" : "each intended start"})`,
  ];
  if (r.mode === "open-loop") {
    lines.push(`  send lag  p50 ${ms(r.sendLagMs!.p50)}  p99 ${ms(r.sendLagMs!.p99)}  max ${ms(r.sendLagMs!.max)}  (the load generator's own delay, included above)`);
    if (r.missed > 0) lines.push(`  missed    ${r.missed} calls not sent: ${r.maxOutstanding} were already in flight (failures, not in the latencies)`);
  }
  lines.push(`  errors    ${errors.length === 0 ? "none (every answer checked against the exact value)" : errors.map(([code, count]) => `${code} ${count}`).join(", ")}`, "");
  return lines.join("\n");
}
