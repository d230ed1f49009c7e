/** `fibrpc bench` against a real serve, and against a responder that answers wrongly. */
import { expect, test } from "bun:test";
import { createConsola } from "consola";
import { parseBrokerUrl } from "../../src/broker-url.ts";
import { runBench } from "../../src/bench/run.ts";
import { RpcClient } from "../../src/rpc/client.ts";
import { rawChannel, run, startServe, uniqueQueue, URL, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

/** Progress lines, as bench writes them off a terminal ("1.0s: 123 calls, 120 calls/s, 0 errors"). */
const PROGRESS = /^\d+\.\ds: \d+ calls, \d+ calls\/s, \d+ errors$/m;

test("bench reports calls/s, percentiles and no errors; every answer checked", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  const { code, stdout, stderr } = await run(["bench", "--queue", queue, "--requests", "2000", "--concurrency", "20", "--n", "0-300", "--json"]);
  expect(code).toBe(0);
  const result = JSON.parse(stdout);
  expect(result).toMatchObject({ mode: "closed-loop", concurrency: 20, latencyFrom: "send", calls: 2000, ok: 2000, errors: {} });
  expect(result.callsPerSecond).toBeGreaterThan(0);
  // Little's law: with 20 calls always in flight, the mean latency is 20 / (calls/s). The median
  // must be of that order: a latency measured from the wrong start, or a wrong rate, fails here.
  const littleMs = (1000 * 20) / result.callsPerSecond;
  expect(result.latencyMs.p50).toBeGreaterThan(littleMs / 5);
  expect(result.latencyMs.p50).toBeLessThan(littleMs * 5);
  expect(stderr).toBe("");
  const human = await run(["bench", "--queue", queue, "--duration", "1500ms", "--concurrency", "5"]);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/^fibrpc bench: \d+ calls of fib\(1\) on queue "[^"]+", closed-loop, 5 in flight, in [\d.]+ s$/m);
  expect(human.stdout).toMatch(/calls\/s\s+\d+/);
  expect(human.stdout).toMatch(/p50 [\d.]+ ms {2}p90 [\d.]+ ms {2}p99 [\d.]+ ms {2}p99\.9 [\d.]+ ms {2}max [\d.]+ ms {2}\(from each send\)/);
  expect(human.stderr).toMatch(/^1\.0s: \d+ calls, \d+ calls\/s, 0 errors$/m); // plain periodic lines off a TTY
  expect(await server.stop()).toBe(0);
});

test("--rate: open loop at a fixed rate, latency from each intended start, the achieved rate reported; no progress with --json or --log-format json", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--queue", queue]);
  // 2.5 s: progress would have printed twice by then.
  const json = await run(["bench", "--queue", queue, "--rate", "400", "--requests", "1000", "--json"]);
  expect(json.code).toBe(0);
  const result = JSON.parse(json.stdout);
  expect(result).toMatchObject({ mode: "open-loop", rate: 400, maxOutstanding: 10000, missed: 0, latencyFrom: "intended-start", calls: 1000, ok: 1000, errors: {} });
  expect(result.achievedRate).toBeGreaterThan(400 * 0.85);
  expect(result.achievedRate).toBeLessThan(400 * 1.15);
  expect(result.seconds).toBeGreaterThan(2.4); // the schedule took its 2.5 s, not less
  expect(result.latencyMs.p50).toBeGreaterThan(0);
  expect(result.sendLagMs.max).toBeGreaterThanOrEqual(0);
  expect(json.stderr).toBe("");

  // Text summary, with --duration, progress in JSON logs off too.
  const human = await run(["bench", "--queue", queue, "--rate", "300.5", "--duration", "2500ms", "--log-format", "json", "--concurrency", "50"]);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/^fibrpc bench: \d+ calls of fib\(1\) on queue "[^"]+", open-loop at 300\.5 calls\/s \(achieved: \d+ sent\/s\), in [\d.]+ s$/m);
  // The answers per second over the whole run (drain included) are labelled apart from the rate sent.
  const seconds = /, in ([\d.]+) s$/m.exec(human.stdout)![1];
  expect(human.stdout).toMatch(new RegExp(`^ {2}answered/s \\d+ {2}\\(over all ${seconds!.replace(".", "\\.")} s, incl\\. the drain of the calls in flight at the end\\)$`, "m"));
  expect(human.stdout).not.toMatch(/^ {2}calls\/s/m);
  expect(human.stdout).toMatch(/\(from each intended start\)/);
  expect(human.stdout).toMatch(/^ {2}send lag {2}p50 [\d.]+ ms/m);
  expect(human.stderr).not.toMatch(PROGRESS);
  expect(human.stderr).not.toMatch(/calls\/s/);
  // Without either, the same run prints its progress.
  const shown = await run(["bench", "--queue", queue, "--rate", "300", "--duration", "1500ms"]);
  expect(shown.code).toBe(0);
  expect(shown.stderr).toMatch(PROGRESS);
  expect(await server.stop()).toBe(0);
});

test("--rate must be a positive number: one line, exit 64", async () => {
  for (const bad of ["0", "-5", "abc", "1e3", "2000000"]) {
    const r = await run(["bench", "--rate", bad, "--requests", "1"]);
    expect(r.code, bad).toBe(64);
    expect(r.stderr.trim().split("\n"), bad).toHaveLength(1);
    expect(r.stderr).toContain("--rate must be a number of calls per second");
  }
  const env = await run(["bench", "--requests", "1"], { FIBRPC_RATE: "fast" });
  expect(env.code).toBe(64);
  expect(env.stderr).toContain("--rate must be a number of calls per second");
});

test("a wrong answer is an error, never a fast result", async () => {
  const queue = uniqueQueue();
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: false });
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    ch.sendToQueue(msg.properties.replyTo, Buffer.from("42"), { correlationId: msg.properties.correlationId });
    ch.ack(msg);
  });
  const { code, stdout } = await run(["bench", "--queue", queue, "--requests", "100", "--n", "30", "--json"]);
  expect(code).toBe(76); // REMOTE_ERROR, the exit code of a wrong reply
  expect(JSON.parse(stdout)).toMatchObject({ calls: 100, ok: 0, errors: { WRONG_ANSWER: 100 } });
});

// Each mode keeps its own state: closed loop a fixed set of calls in flight; open loop a schedule,
// the calls outstanding and the send-lag histogram. Neither may grow with the calls made.
const MEMORY_RUNS = [
  { label: "closed loop, 100 in flight", seconds: 60, mode: { concurrency: 100 } },
  { label: "open loop at 1500 calls/s", seconds: 60, mode: { concurrency: 100, rate: 1500 } },
] as const;

for (const run of MEMORY_RUNS) {
  test(
    `memory stays flat over a ${run.seconds} s run, ${run.label}: latencies go into a fixed histogram, not one sample per call`,
    async () => {
      // In process, so the heap can be read right after a full collection: live bytes, to a few
      // KiB. RSS cannot show it: it saws by 10-15 MiB between collections, more than the whole
      // 8 bytes a call the old sample array cost at this machine's few thousand calls/s.
      const queue = uniqueQueue();
      const server = await startServe(["--workers", "2", "--queue", queue]);
      const log = createConsola({ level: 1 });
      const client = await RpcClient.connect({ broker: { urls: [parseBrokerUrl(URL)], tls: {} }, queue, replyQueue: "direct", format: "text", timeoutMs: 10_000, log });
      const heap: { s: number; calls: number; bytes: number }[] = [];
      let result;
      try {
        result = await runBench(client, {
          ...run.mode,
          durationMs: run.seconds * 1000,
          n: { min: 1, max: 1 },
          timeoutMs: 10_000,
          progressEveryMs: 2_500,
          onProgress: (p) => {
            Bun.gc(true);
            heap.push({ s: p.elapsedMs / 1000, calls: p.done, bytes: process.memoryUsage().heapUsed });
          },
        });
      } finally {
        await client.close();
      }
      expect(await server.stop()).toBe(0);
      expect(result.ok).toBe(result.calls);

      // From 20 s on (warmed up: the heap settles once, by about 1 MiB, between 15 and 20 s).
      // Between collections the heap also holds whatever is in flight at that instant: in open
      // loop, a burst behind schedule can briefly hold megabytes. So the floor is compared: the
      // lowest reading of the first third against the lowest of the last third. Anything kept
      // per call raises the floor by at least that much times the calls made between the thirds.
      const settled = heap.filter((h) => h.s >= 20);
      const third = Math.floor(settled.length / 3);
      const early = settled.slice(0, third);
      const late = settled.slice(-third);
      const floor = (hs: typeof heap) => Math.min(...hs.map((h) => h.bytes));
      const calls = late[0]!.calls - early.at(-1)!.calls;
      const growth = floor(late) - floor(early);
      const kib = (b: number) => `${(b / 1024).toFixed(0)} KiB`;
      console.log(
        `bench memory, ${run.seconds} s ${run.label}: ${result.calls} calls (${Math.round(result.callsPerSecond)}/s); heap after a full GC ` +
          heap.map((h) => `${h.s.toFixed(0)}s ${kib(h.bytes)}`).join(", ") +
          `; floor ${kib(floor(early))} → ${kib(floor(late))} (${growth >= 0 ? "+" : ""}${kib(growth)}) with ${calls} calls between (${(growth / calls).toFixed(3)} B/call; one 8-byte sample a call would be ${kib(8 * calls)})`,
      );
      expect(third).toBeGreaterThanOrEqual(3);
      expect(settled.at(-1)!.s).toBeGreaterThanOrEqual(run.seconds - 5);
      expect(calls).toBeGreaterThan(15_000);
      // A quarter of what one 8-byte sample per call would keep.
      expect(growth / calls).toBeLessThan(2);
    },
    { timeout: run.seconds * 1000 + 60_000 },
  );
}
