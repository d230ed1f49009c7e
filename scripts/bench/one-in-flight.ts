/**
 * One call at a time (issue 22, point 3): calls/s of caller → server pairs in one run, rounds
 * interleaved (the order turned each round), medians:
 * - fibrpc: `fibrpc bench -c 1 --n 1` → `fibrpc serve --workers 3`, and the same caller with
 *   FIBRPC_PUBLISHER_CONFIRMS=off (the seam env-settings.ts names), to the same serve;
 * - plain amqplib: scripts/bench/ceiling-caller.ts → ceiling-responder.ts (prefetch 100), and the
 *   same caller with publisher confirms on, to the same responder: what confirms alone cost any
 *   caller that uses them, beside what fibrpc's with them reaches; the same caller sending what
 *   fibrpc's requests carry (confirms, `mandatory`, deadline, timestamp: its `fibrpc-request` mode),
 *   and `fibrpc bench` itself, to the same responder: fibrpc's protocol and fibrpc's caller apart;
 * - the tutorial: its own Python client class (test/interop/tutorial/rpc_client.py, run as-is but
 *   for its demo lines, calling fib(1) in a loop) → three of its own rpc_server.py, on `rpc_queue`
 *   (the tutorial names no other), with Debian's python3-pika.
 *
 *   bun scripts/bench/one-in-flight.ts [--rounds 5] [--calls 5000]
 *
 * FIBRPC_URL names another broker (e.g. a RabbitMQ 4.3 node of scripts/broker-node.sh); the
 * tutorial's pair then stays out (its code connects to localhost).
 *
 * With the tutorial's pair, `rpc_queue` must have no consumer of anyone else's; it is deleted afterwards if
 * this made it.
 */
import { resolve } from "node:path";
import { connect } from "amqplib";
import { withoutOtel } from "../lib/fibrpc-bench-runs.ts";

const ROOT = resolve(import.meta.dir, "../..");
const MACHINE_BROKER = "amqp://guest:guest@127.0.0.1:5672";
// FIBRPC_URL: another broker (a node of another release, scripts/broker-node.sh); fibrpc reads it too.
const URL = process.env.FIBRPC_URL ?? MACHINE_BROKER;
// The tutorial's code names its broker, localhost, and declares a transient queue, which RabbitMQ 4.3 may
// deny: its pair runs on the machine's broker only, FIBRPC_URL unset or written as above.
const withTutorial = URL === MACHINE_BROKER;
const args = process.argv.slice(2);
const flag = (name: string, fallback: number) => {
  const at = args.indexOf(name);
  return at === -1 ? fallback : Number(args[at + 1]);
};
const rounds = flag("--rounds", 5);
const calls = flag("--calls", 5_000);
const PYTHON = "/usr/bin/python3"; // Debian's, where python3-pika is
const TUTORIAL = `${ROOT}/test/interop/tutorial`;

/** The tutorial's client class, defined by its own code, timed over `n` calls of fib(1). */
const TUTORIAL_CALLER = `
import sys, time, json
src = open(sys.argv[1], encoding="utf-8").read()
src = src[: src.index("fibonacci_rpc = FibonacciRpcClient()")]
scope = {}
exec(compile(src, "rpc_client.py", "exec"), scope)
client = scope["FibonacciRpcClient"]()
n = int(sys.argv[2])
for _ in range(100): client.call(1)
started = time.perf_counter()
for _ in range(n): assert client.call(1) == 1
print(json.dumps({"callsPerSecond": n / (time.perf_counter() - started)}))
`;

interface Pair {
  label: string;
  queue: string;
  /** Started once, before the rounds; a pair that shares an earlier pair's queue and servers has none. */
  servers: string[][];
  /** How many consumers the servers make on the queue, once ready. */
  consumers: number;
  /** The caller's command line for `calls` calls. */
  caller: (calls: number) => string[];
  env?: Record<string, string>;
  runs: number[];
}
const id = process.pid;
/** The shell's environment, without what would change a pair: tracing, or confirms turned off for every fibrpc pair. */
const baseEnv = withoutOtel();
delete baseEnv.FIBRPC_PUBLISHER_CONFIRMS;
const FIBRPC_QUEUE = `one_in_flight_fibrpc_${id}`;
const PLAIN_QUEUE = `one_in_flight_plain_${id}`;
const fibrpcBench = (queue: string) => (calls: number) => [
  `${ROOT}/fibrpc`,
  "bench",
  "--queue",
  queue,
  "-c",
  "1",
  "--n",
  "1",
  "--json",
  "--requests",
  String(calls),
];
const plainCaller = (mode: string[]) => (calls: number) => [
  process.execPath,
  `${ROOT}/scripts/bench/ceiling-caller.ts`,
  URL,
  PLAIN_QUEUE,
  "1",
  String(calls),
  ...mode,
];
const pairs: Pair[] = [
  {
    label: "fibrpc: `bench -c 1` → `serve --workers 3`",
    queue: FIBRPC_QUEUE,
    servers: [[`${ROOT}/fibrpc`, "serve", "--workers", "3", "--queue", FIBRPC_QUEUE]],
    consumers: 4, // a consumer per worker, and the first worker's lead consumer (rpc/scheduler.ts)
    caller: fibrpcBench(FIBRPC_QUEUE),
    runs: [],
  },
  {
    label: "fibrpc, publisher confirms off (`FIBRPC_PUBLISHER_CONFIRMS=off`): the same",
    queue: FIBRPC_QUEUE,
    servers: [],
    consumers: 4,
    caller: fibrpcBench(FIBRPC_QUEUE),
    env: { FIBRPC_PUBLISHER_CONFIRMS: "off" },
    runs: [],
  },
  {
    label: "plain amqplib: caller → responder",
    queue: PLAIN_QUEUE,
    servers: [[process.execPath, `${ROOT}/scripts/bench/ceiling-responder.ts`, URL, PLAIN_QUEUE, "100"]],
    consumers: 1,
    caller: plainCaller([]),
    runs: [],
  },
  {
    label: "plain amqplib, the caller with publisher confirms: the same",
    queue: PLAIN_QUEUE,
    servers: [],
    consumers: 1,
    caller: plainCaller(["confirms"]),
    runs: [],
  },
  {
    label: "plain amqplib, the caller with confirms and fibrpc's request properties (`fibrpc-request`): the same",
    queue: PLAIN_QUEUE,
    servers: [],
    consumers: 1,
    caller: plainCaller(["fibrpc-request"]),
    runs: [],
  },
  {
    label: "fibrpc's caller alone: `bench -c 1` → the plain responder",
    queue: PLAIN_QUEUE,
    servers: [],
    consumers: 1,
    caller: fibrpcBench(PLAIN_QUEUE),
    runs: [],
  },
  ...(withTutorial ? [tutorialPair()] : []),
];

function tutorialPair(): Pair {
  return {
    label: "the tutorial: its Python client → 3 of its servers",
    queue: "rpc_queue",
    servers: [1, 2, 3].map(() => [PYTHON, `${TUTORIAL}/rpc_server.py`]),
    consumers: 3,
    caller: (calls) => [PYTHON, "-c", TUTORIAL_CALLER, `${TUTORIAL}/rpc_client.py`, String(calls)],
    runs: [],
  };
}

async function callsPerSecond(pair: Pair, n: number): Promise<number> {
  const cmd = pair.caller(n);
  const env = { ...baseEnv, ...pair.env };
  const proc = Bun.spawn(cmd, { cwd: "/", env, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  if (code !== 0) throw new Error(`${cmd.slice(0, 3).join(" ")} … exited ${code}: ${err}`);
  return JSON.parse(out).callsPerSecond;
}

/** Resolves once `queue` has `count` consumers (polled: the servers say so in different ways). */
async function consumers(queue: string, count: number): Promise<void> {
  const amqp = await connect(URL);
  try {
    for (let i = 0; i < 300; i++) {
      // A channel per poll: checkQueue on a queue not declared yet closes its channel.
      const channel = await amqp.createChannel();
      channel.on("error", () => {});
      const found = await channel.checkQueue(queue).then(
        (q) => q.consumerCount,
        () => 0,
      );
      await channel.close().catch(() => {});
      if (found >= count) return;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`queue ${queue}: not ${count} consumers within 30 s`);
  } finally {
    await amqp.close();
  }
}

const amqp = await connect(URL);
const probe = await amqp.createChannel();
probe.on("error", () => {});
const rpcQueueBefore = await probe.checkQueue("rpc_queue").then(
  (q) => q,
  () => undefined,
);
if (withTutorial && rpcQueueBefore && rpcQueueBefore.consumerCount > 0)
  throw new Error("rpc_queue has consumers: stop them first");
const processes: Bun.Subprocess[] = [];
try {
  for (const pair of pairs) {
    for (const cmd of pair.servers) processes.push(Bun.spawn(cmd, { cwd: "/", stdout: "ignore", stderr: "ignore" }));
    await consumers(pair.queue, pair.consumers);
  }
  for (const pair of pairs) await callsPerSecond(pair, 500); // warm-up
  for (let round = 0; round < rounds; round++)
    for (let i = 0; i < pairs.length; i++) {
      const pair = pairs[(round + i) % pairs.length]!;
      pair.runs.push(await callsPerSecond(pair, calls));
    }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const fibrpc = median(pairs[0]!.runs);
  console.log(`${calls} calls of fib(1), 1 in flight, ${rounds} interleaved rounds, medians`);
  console.log("| pair | calls/s | each round | fibrpc's ratio to it |\n| --- | --- | --- | --- |");
  for (const pair of pairs) {
    const rate = median(pair.runs);
    const each = pair.runs.map((r) => Math.round(r)).join(", ");
    console.log(`| ${pair.label} | ${Math.round(rate)} | ${each} | ${(fibrpc / rate).toFixed(2)}× |`);
  }
  const [, fibrpcOff, plain, plainConfirms, plainAsFibrpc, fibrpcCaller] = pairs.map((pair) =>
    median(pair.runs),
  ) as number[];
  const x = (a: number | undefined, b: number | undefined) => `${(a! / b!).toFixed(2)}×`;
  console.log(
    `publisher confirms, with → without: plain amqplib ${x(plainConfirms, plain)}, fibrpc ${x(fibrpc, fibrpcOff)}`,
  );
  // Where fibrpc's gap to the plain pair lies: what its requests carry, its caller's code, its server.
  console.log(
    `to the plain pair: the plain caller sending what fibrpc's requests carry ${x(plainAsFibrpc, plain)}; ` +
      `fibrpc's caller ${x(fibrpcCaller, plain)} (${x(fibrpcCaller, plainAsFibrpc)} that caller); ` +
      `fibrpc's serve, for fibrpc's caller, ${x(fibrpc, fibrpcCaller)} the plain responder`,
  );
} finally {
  for (const p of processes) p.kill("SIGTERM");
  await Promise.all(processes.map((p) => p.exited));
  const channel = await amqp.createChannel();
  channel.on("error", () => {});
  for (const queue of [FIBRPC_QUEUE, PLAIN_QUEUE]) await channel.deleteQueue(queue).catch(() => {});
  if (withTutorial && !rpcQueueBefore) await channel.deleteQueue("rpc_queue").catch(() => {});
  await amqp.close();
}
