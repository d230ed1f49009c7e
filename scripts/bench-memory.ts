/**
 * The bench's memory over a long run (`bun run bench:memory`): fibrpc's bench loop, in process,
 * against `./fibrpc serve --workers 2`, for a fixed time per mode (60 s by default), closed loop
 * (100 in flight) then open loop (100 at most in flight, at half the rate the closed loop
 * achieved). Every 2.5 s the JS heap is read right after a full collection; the floor (lowest
 * reading) of the first third of the settled readings (from 20 s on: JavaScriptCore drops code it
 * has not run for a while about 15 s in, ~1 MiB at once) is compared with that of the last third,
 * per call made between them, and against what one 8-byte sample per call (the old sample array)
 * would have kept. Prints one line per mode; nothing is judged or written.
 *
 *   bun scripts/bench-memory.ts [--seconds 60] [--leak]
 *
 * --leak runs a third time, closed loop, keeping 8 bytes per call on purpose: what a regression
 * to one sample per call looks like in the same figures.
 *
 * The test suite's version is short and counts calls instead of time: the last test of
 * test/integration/bench.test.ts.
 */
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";
import { connect } from "amqplib";
import { createConsola } from "consola";
import { parseBrokerUrl } from "../src/broker-url.ts";
import { runBench, type BenchOptions, type Caller } from "../src/bench/run.ts";
import { RpcClient } from "../src/rpc/client.ts";
import { machineLine } from "./lib/markdown-section.ts";
import { startProcess, stop } from "./lib/processes.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "fibrpc");
const URL = process.env.FIBRPC_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const argv = process.argv.slice(2);
const flag = (name: string) => argv.indexOf(`--${name}`);
const seconds = flag("seconds") >= 0 ? Number(argv[flag("seconds") + 1]) : 60;
const withLeak = flag("leak") >= 0;
if (!Number.isFinite(seconds) || seconds < 30)
  throw new Error("--seconds: at least 30 (the readings from 20 s on are compared, by thirds)");
const log = (line: string) => process.stderr.write(`bench:memory: ${line}\n`);

if (!existsSync(BIN)) {
  log("building ./fibrpc");
  Bun.spawnSync([process.execPath, "run", "build"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
}

/** The client as the bench sees it, keeping 8 bytes per call when asked to. */
function leaking(client: RpcClient): Caller {
  const kept: number[] = [];
  return {
    get usable() {
      return client.usable;
    },
    call(n, deadline) {
      kept.push(kept.length + 0.5);
      return client.call(n, deadline);
    },
  };
}

const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;

async function measure(
  client: RpcClient,
  label: string,
  mode: Pick<BenchOptions, "concurrency" | "rate" | "maxOutstanding">,
  leak = false,
): Promise<number> {
  const heap: { s: number; calls: number; bytes: number }[] = [];
  const result = await runBench(leak ? leaking(client) : client, {
    ...mode,
    durationMs: seconds * 1000,
    n: { min: 1, max: 1 },
    timeoutMs: 10_000,
    progressEveryMs: 2_500,
    onProgress: (p) => {
      Bun.gc(true);
      heap.push({ s: p.elapsedMs / 1000, calls: p.done, bytes: process.memoryUsage().heapUsed });
    },
  });
  const settled = heap.filter((h) => h.s >= 20);
  const third = Math.floor(settled.length / 3);
  const floor = (hs: typeof heap) => Math.min(...hs.map((h) => h.bytes));
  const early = settled.slice(0, third);
  const late = settled.slice(-third);
  const calls = late[0]!.calls - early.at(-1)!.calls;
  const growth = floor(late) - floor(early);
  console.log(
    `${label}: ${result.calls} calls in ${result.seconds.toFixed(0)} s (${Math.round(result.callsPerSecond)}/s), ${result.calls - result.ok} failed${result.mode === "open-loop" ? `, ${result.missed} missed` : ""}\n` +
      `  heap after a full collection: ${heap.map((h) => `${h.s.toFixed(0)}s ${kib(h.bytes)}`).join(", ")}\n` +
      `  floor ${kib(floor(early))} → ${kib(floor(late))} (${growth >= 0 ? "+" : ""}${kib(growth)}) over ${calls} calls: ${(growth / calls).toFixed(3)} B/call, ` +
      `${((100 * growth) / (8 * calls)).toFixed(1)}% of what one 8-byte sample per call would keep (${kib(8 * calls)})`,
  );
  return result.callsPerSecond;
}

const queue = `bench_memory_${crypto.randomUUID().slice(0, 6)}`;
log(`${seconds} s per mode, queue ${queue}; ${await machineLine()}`);
const serve = await startProcess(
  [BIN, "serve", "--url", URL, "--queue", queue, "--workers", "2"],
  /(\d+)\/\1 workers serving/,
);
const client = await RpcClient.connect({
  broker: { urls: [parseBrokerUrl(URL)], tls: {} },
  queue,
  replyQueue: "direct",
  timeoutMs: 10_000,
  log: createConsola({ level: 1 }),
});
try {
  const closedRate = await measure(client, "closed loop, 100 in flight", { concurrency: 100 });
  const rate = Math.max(1, Math.round(closedRate / 2));
  await measure(client, `open loop at ${rate} calls/s (half the closed loop's), at most 100 in flight`, {
    concurrency: 100,
    rate,
    maxOutstanding: 100,
  });
  if (withLeak)
    await measure(client, "closed loop, 100 in flight, 8 bytes kept per call on purpose", { concurrency: 100 }, true);
} finally {
  await client.close();
  await stop(serve);
  const admin = await connect(URL);
  const ch = await admin.createChannel();
  await ch.deleteQueue(queue);
  await admin.close();
}
process.exit(0);
