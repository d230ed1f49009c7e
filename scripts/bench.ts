/**
 * The benchmark suite (`bun run bench`): in ONE run, on the same broker, fibrpc next to plain
 * amqplib, with the ratios the speed issue sets as targets, fibrpc's open-loop load next to its
 * closed-loop one, and what tracing costs (part g). Prints the tables and writes them into
 * docs/benchmarks.md (sections "suite", "open-loop" and "tracing") with the machine's details.
 *
 * Needs ./fibrpc (built first if missing) and a broker on 127.0.0.1:5672 (FIBRPC_URL to change).
 * Uses queues of its own and deletes them; the machine's rpc_queue is not touched.
 *
 * Part g (issue 21, point 6) compares fibrpc at 100 in flight without tracing's code, with it off
 * (no OTEL_* variable) and with it on at 10% sampling, exporting to a sink in this process
 * (scripts/lib/otlp-sink.ts). "Without" is a build of the commit before tracing landed, named by
 * BENCH_BEFORE (its serve and bench run on a queue of their own), e.g.
 *
 *   git worktree add /tmp/pretrace 65ddd8a && ln -s $PWD/node_modules /tmp/pretrace/node_modules
 *   (cd /tmp/pretrace && bun run build)
 *   BENCH_BEFORE=/tmp/pretrace/fibrpc bun run bench
 *   git worktree remove --force /tmp/pretrace
 *
 * Without BENCH_BEFORE, tracing off is the baseline and the "off" target is not measured.
 * BENCH_ONLY=tracing runs part g alone (and rewrites only its section); BENCH_ROUNDS sets its
 * rounds (7). Part g drops OTEL_* from its children's environment (the shell's must not turn
 * tracing on where it is meant to be off).
 */
import { existsSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { connect } from "amqplib";
import { fibDecimal } from "../src/fib.ts";
import {
  brokerPid,
  cpuSeconds,
  type FibrpcWay,
  interleaved,
  runBench,
  tracingOn,
  withoutOtel,
} from "./lib/fibrpc-bench-runs.ts";
import { machineLine, median, writeSection } from "./lib/markdown-section.ts";
import { startOtlpSink } from "./lib/otlp-sink.ts";
import { startProcess, stop } from "./lib/processes.ts";

const ROOT = resolve(import.meta.dir, "..");
const BIN = join(ROOT, "fibrpc");
const BUN = process.execPath;
const URL = process.env.FIBRPC_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const id = crypto.randomUUID().slice(0, 6);
const queues = {
  ceiling: `bench_ceiling_${id}`,
  fibrpc: `bench_fibrpc_${id}`,
  heavy: `bench_heavy_${id}`,
  memory: `bench_memory_${id}`,
};
const log = (line: string) => process.stderr.write(`bench: ${line}\n`);
const ONLY = process.env.BENCH_ONLY;
if (ONLY !== undefined && ONLY !== "tracing") throw new Error(`BENCH_ONLY=${ONLY}: only "tracing" can run alone`);
const BEFORE = process.env.BENCH_BEFORE ? resolve(process.env.BENCH_BEFORE) : undefined;
if (BEFORE !== undefined && !existsSync(BEFORE)) throw new Error(`BENCH_BEFORE=${BEFORE}: no such binary`);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

if (!existsSync(BIN)) {
  log("building ./fibrpc");
  Bun.spawnSync([BUN, "run", "build"], { cwd: ROOT, stdout: "ignore", stderr: "inherit" });
}

function run(cmd: string[], env: Record<string, string> = {}): { stdout: string; ms: number; code: number | null } {
  const t = performance.now();
  const r = Bun.spawnSync(cmd, { cwd: "/", stdout: "pipe", stderr: "pipe", env: { ...process.env, ...env } });
  const ms = performance.now() - t;
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return { stdout: r.stdout.toString(), ms, code: r.exitCode };
}

function tcpOutSegments(): number {
  const lines = readFileSync("/proc/net/snmp", "utf8")
    .split("\n")
    .filter((l) => l.startsWith("Tcp:"));
  const names = lines[0]!.split(/\s+/);
  return Number(lines[1]!.split(/\s+/)[names.indexOf("OutSegs")]);
}

const BROKER = brokerPid(URL);
/** The local broker's CPU time; NaN (shown as such) when the broker is not on this machine. */
const brokerCpuSeconds = () => {
  try {
    return BROKER ? cpuSeconds(BROKER) : Number.NaN;
  } catch {
    return Number.NaN; // the broker restarted since: its figures are shown as NaN, not a failed suite
  }
};

function rssMb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("VmRSS:"))!;
  return Number(line.split(/\s+/)[1]) / 1024;
}

interface Throughput {
  callsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  segmentsPerCall: number;
  brokerCpuUsPerCall: number;
}

/** Runs a load generator that prints JSON, with machine-wide TCP segments and broker CPU per call. */
function measure(
  cmd: string[],
  calls: number,
  pick: (json: any) => { callsPerSecond: number; p50Ms: number; p99Ms: number },
  env: Record<string, string> = {},
): Throughput {
  const segments = tcpOutSegments();
  const cpu = brokerCpuSeconds();
  const out = JSON.parse(run(cmd, env).stdout);
  return {
    ...pick(out),
    segmentsPerCall: (tcpOutSegments() - segments) / calls,
    brokerCpuUsPerCall: ((brokerCpuSeconds() - cpu) * 1e6) / calls,
  };
}

const fibrpcBench = (queue: string, concurrency: number, requests: number, n = "1", env: Record<string, string> = {}) =>
  measure(
    [
      BIN,
      "bench",
      "--url",
      URL,
      "--queue",
      queue,
      "--concurrency",
      String(concurrency),
      "--requests",
      String(requests),
      "--n",
      n,
      "--json",
    ],
    requests,
    (j) => ({
      callsPerSecond: j.callsPerSecond,
      p50Ms: j.latencyMs.p50,
      p99Ms: j.latencyMs.p99,
    }),
    env,
  );
const ceilingCaller = (concurrency: number, requests: number) =>
  measure(
    [BUN, join(ROOT, "scripts/bench/ceiling-caller.ts"), URL, queues.ceiling, String(concurrency), String(requests)],
    requests,
    (j) => j,
  );

interface TracingWay extends FibrpcWay {
  runs: { callsPerSecond: number; p50Ms: number; p99Ms: number }[];
}

/** `fibrpc bench` against a way's serve (the OTLP sink answers in this process meanwhile). */
async function tracingBench(way: TracingWay, concurrency: number, requests: number) {
  const { json } = await runBench(way.bin, URL, way.queue, concurrency, requests, way.benchEnv);
  return {
    callsPerSecond: json.callsPerSecond as number,
    p50Ms: json.latencyMs.p50 as number,
    p99Ms: json.latencyMs.p99 as number,
  };
}

/**
 * Part g (issue 21, point 6): fibrpc at 100 in flight without tracing's code (BENCH_BEFORE), with
 * tracing off, and on at 10% sampling (the caller samples, serve follows the decision each request
 * carries), each way with a serve and a queue of its own, all three serving throughout; ROUNDS
 * rounds of one run each, the order turned every round, so that a drift of the machine's load falls
 * on all alike. Returns the docs section.
 */
async function tracingPart(): Promise<string> {
  log("g. tracing: without its code, off, on at 10% sampling");
  const calls = 30_000;
  const plain = withoutOtel();
  const sink = startOtlpSink();
  const tenPercent = tracingOn(sink.endpoint, "0.1");
  const commit = (bin: string) => /commit ([^,]+)/.exec(run([bin, "--version"]).stdout)?.[1] ?? "?";
  const way = (key: string, label: string, bin: string, serveEnv: Record<string, string>, benchEnv = serveEnv) =>
    ({ label, bin, queue: `bench_tracing_${key}_${id}`, serveEnv, benchEnv, runs: [] }) as TracingWay;
  const before = BEFORE && way("before", `without tracing's code (${commit(BEFORE)}, BENCH_BEFORE)`, BEFORE, plain);
  const off = way("off", `tracing off, no OTEL_* variable (${commit(BIN)})`, BIN, plain);
  const on = way(
    "on",
    "tracing on, 10% sampled (parentbased_traceidratio 0.1), to a local sink",
    BIN,
    tenPercent.serve,
    tenPercent.bench,
  );
  const ways = before ? [before, off, on] : [off, on];
  const loadBefore = (await import("node:os")).loadavg()[0]!;
  const serves: Awaited<ReturnType<typeof startProcess>>[] = [];
  const bench = await connect(URL);
  const channel = await bench.createChannel();
  try {
    for (const w of ways)
      serves.push(
        await startProcess([w.bin, "serve", "--url", URL, "--queue", w.queue], /(\d+)\/\1 workers serving/, w.serveEnv),
      );
    // Warm-up, as for a/b: one run at 100 in flight each, so that every serve's workers have compiled their hot path.
    for (const w of ways) await tracingBench(w, 100, calls);
    await interleaved(ways, ROUNDS, async (w) => {
      w.runs.push(await tracingBench(w, 100, calls));
    });
  } finally {
    // serve flushes its spans as it stops: the sink counts them before it closes.
    for (const s of serves) await stop(s);
    await sink.stop();
    for (const w of ways) await channel.deleteQueue(w.queue);
    await bench.close();
  }
  const loadAfter = (await import("node:os")).loadavg()[0]!;

  const rate = (w: TracingWay) => median(w.runs.map((x) => x.callsPerSecond));
  const base = before || off;
  const ratio = (w: TracingWay) => rate(w) / rate(base);
  const r = (x: number) => x.toFixed(2);
  const ms = (x: number) => `${x.toFixed(1)} ms`;
  const pass = (ok: boolean) => (ok ? "met" : "**missed**");
  const row = (w: TracingWay, target: string, ok: boolean | undefined) =>
    `| ${w.label} | ${Math.round(rate(w))} | ${w.runs.map((x) => Math.round(x.callsPerSecond)).join(", ")} | ` +
    `${ms(median(w.runs.map((x) => x.p50Ms)))} | ${ms(median(w.runs.map((x) => x.p99Ms)))} | ${r(ratio(w))}× | ` +
    `${target} | ${ok === undefined ? "" : pass(ok)} |`;
  const rows = [
    ...(before ? [row(before, "", undefined)] : []),
    before ? row(off, "≥ 0.98×", ratio(off) >= 0.98) : row(off, "— (baseline: no BENCH_BEFORE)", undefined),
    row(on, "≥ 0.9×", ratio(on) >= 0.9),
  ];
  const onCalls = ((ROUNDS + 1) * calls) / 1000; // the rounds and the warm-up
  log(
    `g. ${before ? `off ${r(ratio(off))}× and ` : ""}on ${r(ratio(on))}× the rate ${before ? "without tracing's code" : "with it off"}` +
      ` (on/off ${r(rate(on) / rate(off))}×)`,
  );
  return `## Tracing's cost (issue 21; \`bun run bench\`, part g)

Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC by \`bun run bench\` (part g), RabbitMQ at
${URL.replace(/:[^:@/]*@/, ":***@")}. Machine: ${await machineLine()}; load average (1 min)
${loadBefore.toFixed(1)} before and ${loadAfter.toFixed(1)} after: the broker, the serves and the load generator share the cores.
fibrpc \`serve\` with its defaults and \`fibrpc bench -c 100 --requests ${calls} --n 1\`, each way with a serve
and a queue of its own (all serving throughout), ${ROUNDS} rounds of one run per way, the order turned
each round; median of the runs. With tracing on, bench samples 10% of its calls and serve (default sampler,
\`parentbased_always_on\`) follows the decision each request carries; both export OTLP/HTTP (protobuf)
to a sink in the benchmark's process that answers 200 (\`scripts/lib/otlp-sink.ts\`): ${sink.exports} exports,
${Math.round(sink.bytes / 1024)} KiB, ${Math.round(sink.bytes / onCalls)} bytes per 1000 calls traced this way.

| fibrpc, 100 in flight | calls/s (median) | each run | p50 | p99 | ratio | target | |
| --- | --- | --- | --- | --- | --- | --- | --- |
${rows.join("\n")}

Ratios are to the first row${before ? "" : " (BENCH_BEFORE not given: tracing off is the baseline)"}; the issue's targets: tracing off ≥ 0.98× the rate without the
feature, tracing on at 10% sampling ≥ 0.9×. Reproduce (the commit before tracing landed, built apart):

\`\`\`sh
git worktree add /tmp/pretrace 65ddd8a && ln -s $PWD/node_modules /tmp/pretrace/node_modules
(cd /tmp/pretrace && bun run build)
BENCH_BEFORE=/tmp/pretrace/fibrpc BENCH_ONLY=tracing bun run bench   # part g alone; without BENCH_ONLY, the suite
git worktree remove --force /tmp/pretrace
\`\`\``;
}

const started = performance.now();
const conn = await connect(URL);
const admin = await conn.createChannel();

if (ONLY === "tracing") {
  const tracingSection = await tracingPart();
  await conn.close();
  console.log(`\n${tracingSection}\n`);
  writeSection(join(ROOT, "docs/benchmarks.md"), "tracing", tracingSection);
  log(`written to docs/benchmarks.md (${((performance.now() - started) / 60_000).toFixed(1)} min)`);
  process.exit(0);
}

// a/b. the ceiling (a minimal amqplib responder, prefetch 100, and a pipelined caller) and fibrpc
// (serve with its defaults and fibrpc bench, n = 1), both serving throughout, at 1 and 100 in flight:
// ROUNDS_AB rounds, the order turned each round so that a drift of the machine's load falls on both,
// and the median of each measure (one run of each moved by ±20% between runs on this machine).
log("a/b. ceiling (plain amqplib) and fibrpc serve (defaults) + fibrpc bench, interleaved");
const responder = await startProcess(
  [BUN, join(ROOT, "scripts/bench/ceiling-responder.ts"), URL, queues.ceiling, "100"],
  /ready/,
);
const serve = await startProcess([BIN, "serve", "--url", URL, "--queue", queues.fibrpc], /(\d+)\/\1 workers serving/);
// Warm-up, each way as long as one measured run at 100 in flight: serve's workers are JavaScript engines of
// their own, each compiling its hot path as it warms, and a serve freshly started was ~0.87× of itself warm
// in its first 60,000 calls (docs/benchmarks.md, "Warm-up"); a serve in use has long been warm.
ceilingCaller(100, 60000);
fibrpcBench(queues.fibrpc, 100, 60000);
const ROUNDS_AB = 3;
const abRuns = {
  ceiling1: [] as Throughput[],
  fibrpc1: [] as Throughput[],
  ceiling100: [] as Throughput[],
  fibrpc100: [] as Throughput[],
};
for (let round = 0; round < ROUNDS_AB; round++) {
  const pair = [
    () => {
      abRuns.ceiling1.push(ceilingCaller(1, 5000));
      abRuns.ceiling100.push(ceilingCaller(100, 60000));
    },
    () => {
      abRuns.fibrpc1.push(fibrpcBench(queues.fibrpc, 1, 5000));
      abRuns.fibrpc100.push(fibrpcBench(queues.fibrpc, 100, 60000));
    },
  ];
  for (const run of round % 2 === 0 ? pair : pair.reverse()) run();
}
await stop(responder);
/** Each measure's median over the rounds. */
const medianOf = (runs: Throughput[]): Throughput => ({
  callsPerSecond: median(runs.map((t) => t.callsPerSecond)),
  p50Ms: median(runs.map((t) => t.p50Ms)),
  p99Ms: median(runs.map((t) => t.p99Ms)),
  segmentsPerCall: median(runs.map((t) => t.segmentsPerCall)),
  brokerCpuUsPerCall: median(runs.map((t) => t.brokerCpuUsPerCall)),
});
const ceiling1 = medianOf(abRuns.ceiling1);
const ceiling100 = medianOf(abRuns.ceiling100);
const fibrpc1 = medianOf(abRuns.fibrpc1);
const fibrpc100 = medianOf(abRuns.fibrpc100);

// b4. the same serve, streamed (issue 22): `seq 1 N | fibrpc call - > /dev/null`, n = 1, 100 in flight
// (call -'s default), next to bench's closed loop at that concurrency; interleaved, median of 3.
log("b4. call - (streaming) next to bench's closed loop");
const streamRuns: { stream: number[]; bench: number[] } = { stream: [], bench: [] };
for (let i = 0; i < 3; i++) {
  const calls = 60000;
  const script = `seq 1 ${calls} | awk '{ print 1 }' | "${BIN}" call - --url "${URL}" --queue ${queues.fibrpc} > /dev/null`;
  const t0 = performance.now();
  const streamed = Bun.spawnSync(["bash", "-c", script], { cwd: "/", stdout: "ignore", stderr: "pipe" });
  if (streamed.exitCode !== 0) throw new Error(`call - exited ${streamed.exitCode}: ${streamed.stderr.toString()}`);
  streamRuns.stream.push(calls / ((performance.now() - t0) / 1000));
  streamRuns.bench.push(fibrpcBench(queues.fibrpc, 100, calls).callsPerSecond);
}

// b3. the same serve: the cost of publisher confirms at 100 in flight, with them (the default)
// and without (FIBRPC_PUBLISHER_CONFIRMS=off, fibrpc's publishing before it confirmed requests),
// interleaved so that a drift of the machine's load falls on both alike.
log("b3. publisher confirms on and off");
// At 1 in flight too, where the broker's ack is a TCP segment of its own (no target: reported).
const confirmRuns: Record<1 | 100, { on: number[]; off: number[] }> = {
  1: { on: [], off: [] },
  100: { on: [], off: [] },
};
for (let i = 0; i < 3; i++) {
  for (const [inFlight, calls] of [
    [100, 30000],
    [1, 5000],
  ] as const) {
    confirmRuns[inFlight].off.push(
      fibrpcBench(queues.fibrpc, inFlight, calls, "1", { FIBRPC_PUBLISHER_CONFIRMS: "off" }).callsPerSecond,
    );
    confirmRuns[inFlight].on.push(fibrpcBench(queues.fibrpc, inFlight, calls).callsPerSecond);
  }
}

// b2. the same serve, open loop next to closed loop: 10 s at 100 in flight, then --rate at 50%
// and 90% of the rate that gave, 10 s each. Open-loop latencies run from each intended start.
log("b2. open loop next to closed loop");
// Exit 75 is a result here (an open loop the server could not keep up with: timeouts, missed calls).
const fullBench = (args: string[]) => {
  const cmd = [
    BIN,
    "bench",
    "--url",
    URL,
    "--queue",
    queues.fibrpc,
    "--duration",
    "10s",
    "--n",
    "1",
    "--json",
    ...args,
  ];
  const r = Bun.spawnSync(cmd, { cwd: "/", stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0 && r.exitCode !== 75)
    throw new Error(`${cmd.join(" ")} exited ${r.exitCode}: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString());
};
const loadBefore = (await import("node:os")).loadavg()[0]!;
const closedLoop = fullBench(["--concurrency", "100"]);
const openLoops = [0.5, 0.9].map((share) => ({
  share,
  result: fullBench(["--rate", String(Math.round(share * closedLoop.callsPerSecond))]),
}));
const loadAfter = (await import("node:os")).loadavg()[0]!;

// c. cold call, process start to exit, next to a minimal compiled program
log("c. cold call");
const minimalBin = `/tmp/fibrpc-bench-minimal-call-${id}`;
Bun.spawnSync(
  [
    BUN,
    "build",
    "--compile",
    "--minify",
    "--bytecode",
    "--format=esm",
    join(ROOT, "scripts/bench/minimal-call.ts"),
    "--outfile",
    minimalBin,
    "--no-compile-autoload-dotenv",
    "--no-compile-autoload-bunfig",
  ],
  { cwd: ROOT, stdout: "ignore" },
);
const coldRuns = 25;
const coldFibrpc: number[] = [];
const coldMinimal: number[] = [];
for (let i = 0; i < coldRuns + 2; i++) {
  const a = run([BIN, "call", "--url", URL, "--queue", queues.fibrpc, "30"]);
  const b = run([minimalBin, URL, queues.fibrpc, "30"]);
  if (a.stdout !== "832040\n" || b.stdout !== "832040\n")
    throw new Error(`cold call answered ${a.stdout} / ${b.stdout}`);
  if (i >= 2) {
    coldFibrpc.push(a.ms);
    coldMinimal.push(b.ms);
  }
}
Bun.spawnSync(["rm", "-f", minimalBin]);

// d. fib(1000000) end to end, next to computing it in-process
log("d. call 1000000");
const inProcess: number[] = [];
for (let i = 0; i < 10; i++) {
  const t = performance.now();
  fibDecimal(1_000_000);
  inProcess.push(performance.now() - t);
}
const endToEnd: number[] = [];
for (let i = 0; i < 10; i++) {
  const r = run([BIN, "call", "--url", URL, "--queue", queues.fibrpc, "1000000"]);
  if (r.stdout.trim().length !== 208_988) throw new Error("fib(1000000) came back with the wrong length");
  endToEnd.push(r.ms);
}
await stop(serve);

// e. CPU-heavy n: --workers 1 vs --workers 2
log("e. heavy n, 1 vs 2 workers");
const heavy: Record<number, Throughput> = {};
for (const workers of [1, 2]) {
  const s = await startProcess(
    [BIN, "serve", "--url", URL, "--queue", queues.heavy, "--workers", String(workers)],
    /(\d+)\/\1 workers serving/,
  );
  heavy[workers] = fibrpcBench(queues.heavy, 8, 1200, "300000-500000");
  await stop(s);
}

// f. resident memory of serve --workers 3, idle and after a load run
log("f. memory");
const memServe = await startProcess(
  [BIN, "serve", "--url", URL, "--queue", queues.memory, "--workers", "3"],
  /3\/3 workers serving/,
);
await Bun.sleep(2000); // settle: the figure is "idle", not "starting"
const idleMb = rssMb(memServe.pid);
fibrpcBench(queues.memory, 100, 30000, "0-1000");
fibrpcBench(queues.memory, 8, 200, "900000-1000000");
const loadedMb = rssMb(memServe.pid);
await stop(memServe);

// g. what tracing costs (issue 21): without its code, off, on at 10% (see the header)
const tracingSection = await tracingPart();

for (const q of Object.values(queues)) await admin.deleteQueue(q);
await conn.close();

// The table
const r = (x: number) => x.toFixed(2);
const ms = (x: number) => `${x.toFixed(1)} ms`;
const pass = (ok: boolean) => (ok ? "met" : "**missed**");
const cold = { fibrpc: median(coldFibrpc), minimal: median(coldMinimal) };
const e2e = { call: median(endToEnd), compute: median(inProcess) };
const confirms = { on: median(confirmRuns[100].on), off: median(confirmRuns[100].off) };
const confirms1 = { on: median(confirmRuns[1].on), off: median(confirmRuns[1].off) };
const rows = [
  [
    "a/b. 1 in flight, calls/s",
    `${Math.round(ceiling1.callsPerSecond)}`,
    `${Math.round(fibrpc1.callsPerSecond)}`,
    `${r(fibrpc1.callsPerSecond / ceiling1.callsPerSecond)}×`,
    "≥ 1.5×",
    pass(fibrpc1.callsPerSecond >= 1.5 * ceiling1.callsPerSecond),
  ],
  [
    "a/b. 1 in flight, calls/s (issue 22's target)",
    `${Math.round(ceiling1.callsPerSecond)}`,
    `${Math.round(fibrpc1.callsPerSecond)}`,
    `${r(fibrpc1.callsPerSecond / ceiling1.callsPerSecond)}×`,
    "≥ 0.95×",
    pass(fibrpc1.callsPerSecond >= 0.95 * ceiling1.callsPerSecond),
  ],
  [
    "a/b. 100 in flight, calls/s",
    `${Math.round(ceiling100.callsPerSecond)}`,
    `${Math.round(fibrpc100.callsPerSecond)}`,
    `${r(fibrpc100.callsPerSecond / ceiling100.callsPerSecond)}×`,
    "≥ 1.0×",
    pass(fibrpc100.callsPerSecond >= ceiling100.callsPerSecond),
  ],
  [
    "a/b. 100 in flight, broker CPU per call (issue 22)",
    `${Math.round(ceiling100.brokerCpuUsPerCall)} µs`,
    `${Math.round(fibrpc100.brokerCpuUsPerCall)} µs`,
    `${r(fibrpc100.brokerCpuUsPerCall / ceiling100.brokerCpuUsPerCall)}×`,
    "≤ 0.85×",
    pass(fibrpc100.brokerCpuUsPerCall <= 0.85 * ceiling100.brokerCpuUsPerCall),
  ],
  [
    "a/b. 100 in flight, calls/s (issue 22's target)",
    `${Math.round(ceiling100.callsPerSecond)}`,
    `${Math.round(fibrpc100.callsPerSecond)}`,
    `${r(fibrpc100.callsPerSecond / ceiling100.callsPerSecond)}×`,
    "≥ 1.1×",
    pass(fibrpc100.callsPerSecond >= 1.1 * ceiling100.callsPerSecond),
  ],
  [
    "b4. calls/s at 100 in flight: bench's closed loop → `seq 1 60000 | fibrpc call - > /dev/null` (median of 3)",
    `${Math.round(median(streamRuns.bench))}`,
    `${Math.round(median(streamRuns.stream))}`,
    `${r(median(streamRuns.stream) / median(streamRuns.bench))}×`,
    "≥ 0.9×",
    pass(median(streamRuns.stream) >= 0.9 * median(streamRuns.bench)),
  ],
  [
    "b3. 100 in flight, calls/s, without → with publisher confirms (median of 3, interleaved)",
    `${Math.round(confirms.off)}`,
    `${Math.round(confirms.on)}`,
    `${r(confirms.on / confirms.off)}×`,
    "≥ 0.95×",
    pass(confirms.on >= 0.95 * confirms.off),
  ],
  [
    "b3. 1 in flight, calls/s, without → with publisher confirms (median of 3, interleaved)",
    `${Math.round(confirms1.off)}`,
    `${Math.round(confirms1.on)}`,
    `${r(confirms1.on / confirms1.off)}×`,
    "— (reported)",
    "",
  ],
  [
    "c. cold `call 30`, median of 25 (process start to exit)",
    ms(cold.minimal),
    ms(cold.fibrpc),
    `${r(cold.fibrpc / cold.minimal)}×`,
    "≤ 1.15×",
    pass(cold.fibrpc <= 1.15 * cold.minimal),
  ],
  [
    "d. `call 1000000` end to end vs fib(1000000) in-process, median of 10",
    ms(e2e.compute),
    ms(e2e.call),
    `+${(e2e.call - e2e.compute).toFixed(1)} ms`,
    "≤ +30 ms",
    pass(e2e.call <= e2e.compute + 30),
  ],
  [
    "e. n 300000–500000, calls/s, --workers 1 → 2",
    `${Math.round(heavy[1]!.callsPerSecond)}`,
    `${Math.round(heavy[2]!.callsPerSecond)}`,
    `${r(heavy[2]!.callsPerSecond / heavy[1]!.callsPerSecond)}×`,
    "≥ 1.7×",
    pass(heavy[2]!.callsPerSecond >= 1.7 * heavy[1]!.callsPerSecond),
  ],
  [
    "f. RSS of `serve --workers 3`, idle → after load",
    `${idleMb.toFixed(1)} MB`,
    `${loadedMb.toFixed(1)} MB`,
    "",
    "idle ≤ 70 MB",
    pass(idleMb <= 70),
  ],
];
const detail = [
  ["ceiling, 1 in flight", ceiling1],
  ["fibrpc, 1 in flight", fibrpc1],
  ["ceiling, 100 in flight", ceiling100],
  ["fibrpc, 100 in flight", fibrpc100],
] as const;
const table = [
  "| measure | plain amqplib / baseline | fibrpc | ratio | target | |",
  "| --- | --- | --- | --- | --- | --- |",
  ...rows.map((row) => `| ${row.join(" | ")} |`),
].join("\n");
const where = [
  "| run | calls/s | p50 | p99 | TCP segments per call (machine-wide) | broker CPU per call |",
  "| --- | --- | --- | --- | --- | --- |",
  ...detail.map(
    ([name, t]) =>
      `| ${name} | ${Math.round(t.callsPerSecond)} | ${ms(t.p50Ms)} | ${ms(t.p99Ms)} | ${t.segmentsPerCall.toFixed(2)} | ${Math.round(t.brokerCpuUsPerCall)} µs |`,
  ),
].join("\n");
const minutes = ((performance.now() - started) / 60_000).toFixed(1);
const section = `## Suite (\`bun run bench\`)

Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC in one run of ${minutes} min on one broker (RabbitMQ at
${URL.replace(/:[^:@/]*@/, ":***@")}). Machine: ${await machineLine()}.
a/b: medians of ${ROUNDS_AB} interleaved rounds. Plain amqplib is \`scripts/bench/ceiling-*.ts\` (responder with prefetch 100, pipelined caller,
Direct Reply-to, TCP_NODELAY); fibrpc is \`serve\` with its defaults and \`fibrpc bench\`, n = 1.

${table}

Where the time goes (the same runs):

${where}`;
const latencyCells = (j: any) =>
  [j.latencyMs.p50, j.latencyMs.p90, j.latencyMs.p99, j.latencyMs.p999, j.latencyMs.max].map(ms);
const failures = (j: any) =>
  Object.entries(j.errors)
    .map(([code, count]) => `${count} ${code}`)
    .join(", ") || "0";
const openRows = [
  `| closed loop, 100 in flight | ${Math.round(closedLoop.callsPerSecond)} | ${latencyCells(closedLoop).join(" | ")} | — | — | ${failures(closedLoop)} |`,
  ...openLoops.map(
    ({ share, result: j }) =>
      `| open loop at ${j.rate} calls/s (${Math.round(share * 100)}% of closed loop) | ${Math.round(j.achievedRate)} | ${latencyCells(j).join(" | ")} | ${ms(j.sendLagMs.p99)} | ${j.missed} | ${failures(j)} |`,
  ),
];
const p99Ratio = (share: number) =>
  openLoops.find((o) => o.share === share)!.result.latencyMs.p99 / closedLoop.latencyMs.p99;
const openSection = `## Open loop next to closed loop (\`bun run bench\`, part b2)

Measured ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC by \`bun run bench\` (its part b2, right after part b, against the same
\`serve\` with its defaults), fib(1), 10 s each, back to back: first closed loop (\`fibrpc bench -c 100 --duration 10s\`), then open
loop at 50% and 90% of the rate that run achieved (\`fibrpc bench --rate R --duration 10s\`).
Closed-loop latency runs from each send; open-loop latency from each call's intended start
(call i is due at i/R), so time a call spent waiting to be sent counts. Send lag is how late the
load generator itself sent calls (in the open-loop latencies). Machine load average (1 min) ${loadBefore.toFixed(1)} before
these three runs and ${loadAfter.toFixed(1)} after, on ${(await import("node:os")).availableParallelism()} cores: the broker, \`serve\` and the load generator share them.

| load | calls/s (open loop: achieved) | p50 | p90 | p99 | p99.9 | max | send lag p99 | missed | errors |
| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |
${openRows.join("\n")}

p99 of open loop against closed loop at 100 in flight: ${r(p99Ratio(0.5))}× at 50% of its rate, ${r(p99Ratio(0.9))}× at 90%.`;
console.log(`\n${section}\n\n${openSection}\n`);
writeSection(join(ROOT, "docs/benchmarks.md"), "suite", section);
writeSection(join(ROOT, "docs/benchmarks.md"), "open-loop", openSection);
console.log(`${tracingSection}\n`);
writeSection(join(ROOT, "docs/benchmarks.md"), "tracing", tracingSection);
log(`written to docs/benchmarks.md (${minutes} min)`);
process.exit(0);
