/**
 * CPU per call of each process, for builds or tracing settings side by side: `fibrpc bench` (its
 * rusage), `fibrpc serve` (/proc/<pid>/stat, all its threads) and RabbitMQ (the beam.smp process,
 * from /proc too, so run it on a machine whose broker is local). Each way has a serve and a queue
 * of its own, all serving throughout; rounds interleaved, the order turned each round; medians.
 * Used for the hand-written parts of docs/benchmarks.md ("Properties encoded into one buffer",
 * "CPU per call, and where a recorded span's cost comes from").
 *
 *   bun scripts/bench/cpu-per-call.ts [--rounds 5] [--calls 60000] [--warmup CALLS] WAY...
 *
 * A WAY is `off` (tracing off) or a sampling ratio for bench (`0`, `0.1`, `1`: tracing on, exported
 * to a sink in this process, serve following the caller's decision), optionally `@/path/to/fibrpc`
 * for a binary other than ./fibrpc; or `plain`: the plain amqplib pair of the suite
 * (ceiling-caller.ts → ceiling-responder.ts, prefetch 100), its caller and responder in the bench
 * and serve columns; or `plain-confirms`: the same pair, its caller publishing on a confirm channel
 * as fibrpc's does (like for like with fibrpc's publisher confirms). Example: `plain off@/tmp/before/fibrpc
 * off 0.1`. FIBRPC_URL: another broker, e.g. a RabbitMQ 4.3 node of scripts/broker-node.sh (its CPU is
 * that of the beam.smp listening on the URL's port).
 */
import { join, resolve } from "node:path";
import { connect } from "amqplib";
import {
  amqpPortOf,
  brokerPid,
  cpuSeconds,
  type FibrpcWay,
  interleaved,
  runBench,
  runLoad,
  tracingOn,
  withoutOtel,
} from "../lib/fibrpc-bench-runs.ts";
import { startOtlpSink } from "../lib/otlp-sink.ts";
import { startProcess, stop } from "../lib/processes.ts";

const URL = process.env.FIBRPC_URL ?? "amqp://guest:guest@127.0.0.1:5672";
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args.splice(at, 2)[1]);
};
const rounds = flag("--rounds", 5);
const calls = flag("--calls", 60_000);
// Calls at 100 in flight before the rounds, each way (one run's worth unless given): a serve's workers are
// JavaScript engines of their own, each compiling its hot path as it warms (docs/benchmarks.md, "Warm-up").
const warmup = flag("--warmup", calls);
if (args.length === 0)
  throw new Error("name at least one way: off, plain, plain-confirms, or a sampling ratio such as 0.1");
const broker = brokerPid(URL);
if (!broker)
  throw new Error(
    `no beam.smp on this machine listens on port ${amqpPortOf(URL)} (or, not root, more than one runs): ` +
      "the broker's CPU cannot be read",
  );

const sink = startOtlpSink();

interface Run {
  rate: number;
  bench: number;
  serve: number;
  broker: number;
}
interface Way extends FibrpcWay {
  /** The plain amqplib pair instead of fibrpc; `confirms`: its caller on a confirm channel. */
  plain?: { confirms: boolean };
  serve?: Awaited<ReturnType<typeof startProcess>>;
  runs: Run[];
}
const ways: Way[] = args.map((arg, i) => {
  const [setting, bin = "./fibrpc"] = arg.split("@") as [string, string?];
  const queue = `cpu_per_call_${process.pid}_${i}`;
  const plain = setting === "plain" || setting === "plain-confirms" ? { confirms: setting !== "plain" } : undefined;
  if (plain && arg !== setting) throw new Error(`"${setting}" takes no binary: ${arg}`);
  const env =
    setting === "off" || plain ? { serve: withoutOtel(), bench: withoutOtel() } : tracingOn(sink.endpoint, setting);
  return { label: arg, plain, bin: resolve(bin), queue, serveEnv: env.serve, benchEnv: env.bench, runs: [] };
});

const CEILING = join(import.meta.dir, "ceiling");

/** The plain caller (it prints the same JSON fields bench's rates are read from). */
const runPlainCaller = (queue: string, concurrency: number, requests: number, confirms: boolean) =>
  runLoad(
    [process.execPath, `${CEILING}-caller.ts`, URL, queue, String(concurrency), String(requests)].concat(
      confirms ? ["confirms"] : [],
    ),
    withoutOtel(),
    true,
  );

async function run(way: Way, concurrency: number, requests: number): Promise<Run> {
  const serve0 = cpuSeconds(way.serve!.pid);
  const broker0 = cpuSeconds(broker!);
  const bench = way.plain
    ? await runPlainCaller(way.queue, concurrency, requests, way.plain.confirms)
    : await runBench(way.bin, URL, way.queue, concurrency, requests, way.benchEnv);
  const perCall = (seconds: number) => (seconds * 1e6) / requests;
  return {
    rate: bench.json.callsPerSecond,
    bench: perCall(bench.cpuSeconds),
    serve: perCall(cpuSeconds(way.serve!.pid) - serve0),
    broker: perCall(cpuSeconds(broker!) - broker0),
  };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const amqp = await connect(URL);
const channel = await amqp.createChannel();
try {
  for (const way of ways)
    way.serve = way.plain
      ? await startProcess([process.execPath, `${CEILING}-responder.ts`, URL, way.queue, "100"], /ready/, way.serveEnv)
      : await startProcess(
          [way.bin, "serve", "--url", URL, "--queue", way.queue],
          /(\d+)\/\1 workers serving/,
          way.serveEnv,
        );
  for (const way of ways) await run(way, 100, warmup);
  await interleaved(ways, rounds, async (way) => {
    way.runs.push(await run(way, 100, calls));
  });
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
    if (way.serve) await stop(way.serve);
    await channel.deleteQueue(way.queue);
  }
  await sink.stop();
  await amqp.close();
}
