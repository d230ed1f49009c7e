import { defineCommand } from "citty";
import { boolFromEnv, DEFAULT_TIMEOUT_MS, fromEnv, parseDuration, parseIntOption } from "../config.ts";
import { ExitCode, FibrpcError, usageError } from "../errors.ts";
import { runBench, type BenchProgress, type BenchResult } from "../bench/run.ts";
import { parseNSpec } from "../bench/stats.ts";
import { writeStdout } from "../output.ts";
import { RpcClient } from "../rpc/client.ts";
import { DEFAULT_MAX_N } from "../rpc/protocol.ts";
import { brokerArgs, checkFlags, loadConfigFile, logArgs, resolveBroker, resolveLogger } from "./_args.ts";
import { runAction } from "./_run.ts";

const args = {
  concurrency: { type: "string", valueHint: "count", description: "Calls kept in flight [env FIBRPC_CONCURRENCY] (default: 100)" },
  requests: { type: "string", valueHint: "count", description: "Stop after this many calls [env FIBRPC_REQUESTS] (default: 10000, unless --duration)" },
  duration: { type: "string", valueHint: "duration", description: "Stop after this long instead, e.g. 10s [env FIBRPC_DURATION]" },
  n: { type: "string", valueHint: "n|min-max", description: "n of every call, or a range to draw from uniformly (256 values spread over it), e.g. 1000-2000 [env FIBRPC_N] (default: 1)" },
  timeout: { type: "string", valueHint: "duration", description: "Per-call timeout [env FIBRPC_TIMEOUT] (default: 30s)" },
  json: { type: "boolean", description: "Print the summary as one JSON object [env FIBRPC_JSON]" },
  ...brokerArgs,
  ...logArgs,
} as const;

export default defineCommand({
  meta: { name: "bench", description: "Load a running `fibrpc serve` and report calls/s, latency percentiles and errors; every answer is checked" },
  args,
  run: ({ args: parsed, rawArgs }) =>
    runAction(async () => {
      const flags = checkFlags(rawArgs, args);
      await loadConfigFile(parsed.config);
      const concurrency = parseIntOption("concurrency", fromEnv(parsed.concurrency, "FIBRPC_CONCURRENCY"), 100, 1, 100_000);
      const duration = fromEnv(parsed.duration, "FIBRPC_DURATION");
      const requestsValue = fromEnv(parsed.requests, "FIBRPC_REQUESTS");
      const durationMs = duration === undefined ? undefined : parseDuration("duration", duration);
      if (durationMs !== undefined && requestsValue !== undefined) throw usageError("give --requests or --duration, not both");
      const requests = durationMs === undefined ? parseIntOption("requests", requestsValue, 10_000, 1) : undefined;
      const nSpec = fromEnv(parsed.n, "FIBRPC_N") ?? "1";
      const n = parseNSpec(nSpec);
      if (!n) throw usageError(`--n must be a number or a range like 10-20, got ${JSON.stringify(nSpec)}`);
      if (n.max > DEFAULT_MAX_N) throw usageError(`--n must be at most ${DEFAULT_MAX_N}, got ${n.max}`);
      const timeout = fromEnv(parsed.timeout, "FIBRPC_TIMEOUT");
      const timeoutMs = timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration("timeout", timeout);
      const { urls, queue, tls } = resolveBroker(flags.urls, parsed);
      const log = resolveLogger(parsed);
      const json = boolFromEnv(parsed.json, "FIBRPC_JSON");

      const client = await RpcClient.connect({ broker: { urls, tls }, queue, replyQueue: "direct", format: "text", timeoutMs, log });
      try {
        if ((await client.consumerCount()) === 0) {
          throw new FibrpcError("NO_CONSUMER", `queue ${JSON.stringify(queue)} on ${client.broker} has no consumer: start \`fibrpc serve\` first`);
        }
        const tty = process.stderr.isTTY === true;
        const result = await runBench(client, {
          concurrency,
          requests,
          durationMs,
          n,
          timeoutMs,
          onProgress: tty ? drawBar : printLine,
          progressEveryMs: tty ? 100 : 1000,
        });
        if (tty) process.stderr.write("\r\u001b[K");
        await writeStdout(json ? `${JSON.stringify(result)}\n` : formatSummary(result, { concurrency, n: nSpec, queue }));
        const failed = Object.values(result.errors).reduce((a, b) => a + b, 0);
        return failed === 0 ? ExitCode.OK : result.errors.TIMEOUT || result.errors.CONNECTION_LOST ? ExitCode.TEMPORARY : ExitCode.REMOTE_ERROR;
      } finally {
        await client.close();
      }
    }),
});

let lastDone = 0;
let lastAt = 0;
function rate(p: BenchProgress): number {
  const now = p.elapsedMs;
  const r = now > lastAt ? ((p.done - lastDone) * 1000) / (now - lastAt) : 0;
  lastDone = p.done;
  lastAt = now;
  return r;
}

function drawBar(p: BenchProgress): void {
  const width = 30;
  const filled = Math.round(p.fraction * width);
  process.stderr.write(`\r\u001b[K[${"#".repeat(filled)}${" ".repeat(width - filled)}] ${(p.fraction * 100).toFixed(0).padStart(3)}%  ${p.done} calls  ${Math.round(rate(p))} calls/s  ${p.errors} errors`);
}

function printLine(p: BenchProgress): void {
  process.stderr.write(`${(p.elapsedMs / 1000).toFixed(1)}s: ${p.done} calls, ${Math.round(rate(p))} calls/s, ${p.errors} errors\n`);
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
