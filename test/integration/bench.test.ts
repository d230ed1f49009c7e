/** `fibrpc bench` against a real serve, and against a responder that answers wrongly. */
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BIN, rawChannel, run, startServe, tracked, uniqueQueue, cleanupAfterFile } from "../helpers.ts";

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
  expect(human.stdout).toMatch(/^fibrpc bench: \d+ calls of fib\(1\) on queue "[^"]+", open-loop at 300\.5 calls\/s \(achieved \d+ calls\/s\), in [\d.]+ s$/m);
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
  expect(code).not.toBe(0);
  expect(JSON.parse(stdout)).toMatchObject({ calls: 100, ok: 0, errors: { WRONG_ANSWER: 100 } });
});

/** VmRSS of a process, in KiB. */
function rssKiB(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"));
  return Number(line!.split(/\s+/)[1]);
}

test(
  "memory stays flat over a 60 s run: latencies go into a fixed histogram, not one sample per call",
  async () => {
    const queue = uniqueQueue();
    const server = await startServe(["--workers", "2", "--queue", queue]);
    const env: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("FIBRPC_") && v !== undefined) env[k] = v;
    const bench = tracked(Bun.spawn([BIN, "bench", "--queue", queue, "--duration", "60s", "--concurrency", "100"], { cwd: "/", env, stdin: "ignore", stdout: "pipe", stderr: "pipe" }));
    const stdoutText = new Response(bench.stdout).text();
    // stderr: one progress line a second, "12.0s: 98765 calls, ..."; read as it comes.
    const progress: { s: number; calls: number }[] = [];
    const stderrDone = (async () => {
      const decoder = new TextDecoder();
      let buffered = "";
      for await (const chunk of bench.stderr) {
        buffered += decoder.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buffered.indexOf("\n")) !== -1) {
          const m = /^([\d.]+)s: (\d+) calls/.exec(buffered.slice(0, nl));
          if (m) progress.push({ s: Number(m[1]), calls: Number(m[2]) });
          buffered = buffered.slice(nl + 1);
        }
      }
    })();
    // RSS sampled twice a second while it runs (a sampling period, not a wait for an event).
    const samples: { s: number; kib: number }[] = [];
    const t0 = performance.now();
    let exited = false;
    void bench.exited.then(() => (exited = true));
    while (!exited) {
      try {
        samples.push({ s: (performance.now() - t0) / 1000, kib: rssKiB(bench.pid) });
      } catch {
        break; // gone between the check and the read
      }
      await Promise.race([bench.exited, Bun.sleep(500)]);
    }
    const code = await bench.exited;
    await stderrDone;
    const summary = await stdoutText;
    expect(code, summary).toBe(0);
    expect(await server.stop()).toBe(0);

    // RSS saws up and down by ~10-15 MiB between garbage collections, so the trend is read from
    // the troughs (what is left right after a collection): the lowest RSS of 15-30 s (warmed up)
    // against the lowest of 45-60 s, each window spanning several collections. Means printed too.
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const window = (a: number, b: number) => samples.filter((x) => x.s >= a && x.s < b).map((x) => x.kib);
    const early = window(15, 30);
    const late = window(45, 60);
    const callsAt = (s: number) => progress.find((p) => p.s >= s)!.calls;
    const calls20 = callsAt(20);
    const calls55 = progress.findLast((p) => p.s <= 55)!.calls;
    const total = Number(/^fibrpc bench: (\d+) calls/.exec(summary)![1]);
    const growthKiB = Math.min(...late) - Math.min(...early);
    const mib = (kib: number) => (kib / 1024).toFixed(1);
    const signed = (kib: number) => `${kib >= 0 ? "+" : ""}${mib(kib)}`;
    console.log(
      `bench memory, 60 s closed loop, 100 in flight: ${total} calls (${Math.round(total / 60)}/s); RSS lowest 15-30 s ${mib(Math.min(...early))} MiB, 45-60 s ${mib(Math.min(...late))} MiB ` +
        `(${signed(growthKiB)} MiB); mean ${mib(mean(early))} → ${mib(mean(late))} MiB (${signed(mean(late) - mean(early))}); highest after 15 s ${mib(Math.max(...early, ...late))} MiB; ` +
        `calls ${calls20} → ${calls55} at 20 → 55 s (+${calls55 - calls20}; one 8-byte sample per call: +${(((calls55 - calls20) * 8) / 1048576).toFixed(1)} MiB, more while its array doubles)`,
    );
    expect(progress.length).toBeGreaterThan(50);
    expect(early.length).toBeGreaterThan(15);
    expect(late.length).toBeGreaterThan(15);
    expect(calls55 - calls20).toBeGreaterThan(20_000);
    expect(growthKiB).toBeLessThan(3 * 1024);
  },
  { timeout: 120_000 },
);
