/**
 * CPU per call of each process, for builds or tracing settings side by side: `fibrpc bench` (its
 * rusage), `fibrpc serve` (/proc/<pid>/stat, all its threads) and RabbitMQ (the beam.smp process,
 * from /proc too, so run it on a machine whose broker is local). Each way has a serve and a queue
 * of its own, all serving throughout; rounds interleaved, the order turned each round; medians.
 * Used for the hand-written parts of docs/benchmarks.md ("Properties encoded into one buffer",
 * "CPU per call, and where a recorded span's cost comes from").
 *
 *   bun scripts/bench/cpu-per-call.ts [--rounds 5] [--calls 60000] WAY...
 *
 * A WAY is `off` (tracing off) or a sampling ratio for bench (`0`, `0.1`, `1`: tracing on, exported
 * to a sink in this process, serve following the caller's decision), optionally `@/path/to/fibrpc`
 * for a binary other than ./fibrpc. Example: `off@/tmp/before/fibrpc off 0.1`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { connect } from "amqplib";
import { startOtlpSink } from "../lib/otlp-sink.ts";

const URL = process.env.FIBRPC_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args.splice(at, 2)[1]);
};
const rounds = flag("--rounds", 5);
const calls = flag("--calls", 60_000);
if (args.length === 0) throw new Error("name at least one way: off, or a sampling ratio such as 0.1");

const TICKS_PER_SECOND = 100; // USER_HZ: /proc/<pid>/stat's unit on Linux
const cpuSeconds = (pid: number) => {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND; // utime, stime
};
const comm = (pid: string) => {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "";
  }
};
const broker = Number(readdirSync("/proc").find((p) => /^\d+$/.test(p) && comm(p) === "beam.smp"));
if (!broker) throw new Error("no beam.smp process on this machine: the broker's CPU cannot be read");

const sink = startOtlpSink();
const plain: Record<string, string> = {};
for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("OTEL_") && v !== undefined) plain[k] = v;
const exporting = { ...plain, OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint };

interface Run {
  rate: number;
  bench: number;
  serve: number;
  broker: number;
}
interface Way {
  label: string;
  bin: string;
  queue: string;
  serveEnv: Record<string, string>;
  benchEnv: Record<string, string>;
  serve?: Bun.Subprocess<"ignore", "ignore", "pipe">;
  runs: Run[];
}
const ways: Way[] = args.map((arg, i) => {
  const [setting, bin = "./fibrpc"] = arg.split("@") as [string, string?];
  const queue = `cpu_per_call_${process.pid}_${i}`;
  if (setting === "off") return { label: arg, bin: resolve(bin), queue, serveEnv: plain, benchEnv: plain, runs: [] };
  const sampled = { OTEL_TRACES_SAMPLER: "parentbased_traceidratio", OTEL_TRACES_SAMPLER_ARG: setting };
  return {
    label: arg,
    bin: resolve(bin),
    queue,
    serveEnv: exporting,
    benchEnv: { ...exporting, ...sampled },
    runs: [],
  };
});

async function startServe(way: Way): Promise<void> {
  const serve = Bun.spawn([way.bin, "serve", "--url", URL, "--queue", way.queue], {
    cwd: "/",
    env: way.serveEnv,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  way.serve = serve;
  const reader = serve.stderr.getReader();
  let said = "";
  while (!/(\d+)\/\1 workers serving/.test(said)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${way.bin} serve ended before serving: ${said}`);
    said += new TextDecoder().decode(value);
  }
  void (async () => {
    while (!(await reader.read()).done);
  })();
}

async function run(way: Way, concurrency: number, requests: number): Promise<Run> {
  const cmd = [way.bin, "bench", "--url", URL, "--queue", way.queue, "--concurrency", String(concurrency)];
  cmd.push("--requests", String(requests), "--n", "1", "--json");
  const bench = Bun.spawn(cmd, { cwd: "/", env: way.benchEnv, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const serve0 = cpuSeconds(way.serve!.pid);
  const broker0 = cpuSeconds(broker);
  const [out, err, code] = await Promise.all([
    new Response(bench.stdout).text(),
    new Response(bench.stderr).text(),
    bench.exited,
  ]);
  const serve1 = cpuSeconds(way.serve!.pid);
  const broker1 = cpuSeconds(broker);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err}`);
  const usage = bench.resourceUsage()!;
  const benchSeconds = Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6;
  const perCall = (seconds: number) => (seconds * 1e6) / requests;
  return {
    rate: JSON.parse(out).callsPerSecond,
    bench: perCall(benchSeconds),
    serve: perCall(serve1 - serve0),
    broker: perCall(broker1 - broker0),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const amqp = await connect(URL);
const channel = await amqp.createChannel();
try {
  for (const way of ways) await startServe(way);
  for (const way of ways) await run(way, 10, 3_000); // warm-up
  for (let round = 0; round < rounds; round++)
    for (let i = 0; i < ways.length; i++) {
      const way = ways[(round + i) % ways.length]!;
      way.runs.push(await run(way, 100, calls));
    }
  const base = median(ways[0]!.runs.map((r) => r.rate));
  console.log(`${calls} calls at 100 in flight, ${rounds} rounds; CPU per call, medians`);
  console.log(
    "| way | calls/s | ratio | bench | serve | RabbitMQ | all |\n| --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const way of ways) {
    const m = (key: keyof Run) => median(way.runs.map((r) => r[key]));
    const us = (x: number) => `${x.toFixed(1)} µs`;
    const all = m("bench") + m("serve") + m("broker");
    const rate = m("rate");
    const cells = [way.label, Math.round(rate), `${(rate / base).toFixed(2)}×`, us(m("bench")), us(m("serve"))];
    console.log(`| ${[...cells, us(m("broker")), us(all)].join(" | ")} |`);
  }
} finally {
  for (const way of ways) {
    way.serve?.kill("SIGTERM");
    await way.serve?.exited;
    await channel.deleteQueue(way.queue);
  }
  await sink.stop();
  await amqp.close();
}
