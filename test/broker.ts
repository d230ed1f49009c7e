/**
 * The brokers the tests talk to, in one place: which RabbitMQ release the suite runs against
 * (FIBRPC_TEST_BROKER), rabbitmqctl against the suite's broker, and private nodes and clusters of
 * a test's own (scripts/broker-node.sh, scripts/cluster.sh) of that same release.
 *
 * - FIBRPC_TEST_BROKER=3.10 (default): the machine's broker at 127.0.0.1:5672.
 * - FIBRPC_TEST_BROKER=4.0|4.3: scripts/test.sh starts a private node of that release and passes
 *   its URL (FIBRPC_TEST_URL) and node name (FIBRPC_TEST_NODE).
 */
import { resolve } from "node:path";
import { freeNodePorts } from "./ports.ts";

const ROOT = resolve(import.meta.dir, "..");
const BROKER_NODE = resolve(ROOT, "scripts/broker-node.sh");
const CLUSTER = resolve(ROOT, "scripts/cluster.sh");

export const BROKER_RELEASES = ["3.10", "4.0", "4.3"] as const;
export type BrokerRelease = (typeof BROKER_RELEASES)[number];

function release(): BrokerRelease {
  const asked = process.env.FIBRPC_TEST_BROKER ?? "3.10";
  if (!(BROKER_RELEASES as readonly string[]).includes(asked))
    throw new Error(`FIBRPC_TEST_BROKER=${asked}: expected one of ${BROKER_RELEASES.join(", ")}`);
  return asked as BrokerRelease;
}
/** The RabbitMQ release (major.minor) the suite runs against. */
export const BROKER_RELEASE = release();
/** The suite's broker is a private node of scripts/broker-node.sh (its name), or the machine's own. */
export const SUITE_NODE = process.env.FIBRPC_TEST_NODE;
// Another release's expectations against the machine's 3.10 would test nothing: scripts/test.sh
// starts the release's node and says where it is.
if (BROKER_RELEASE !== "3.10" && (!process.env.FIBRPC_TEST_URL || !SUITE_NODE)) {
  throw new Error(
    `FIBRPC_TEST_BROKER=${BROKER_RELEASE} needs its broker: run the tests through scripts/test.sh (which starts a ${BROKER_RELEASE} node and sets FIBRPC_TEST_URL and FIBRPC_TEST_NODE)`,
  );
}
/** Whether the release is at least major.minor, for expectations that differ by release. */
export function releaseAtLeast(major: number, minor: number): boolean {
  const [a, b] = BROKER_RELEASE.split(".").map(Number) as [number, number];
  return a > major || (a === major && b >= minor);
}

export interface Ctl {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command with a bound: after `ms` its whole process group is killed (and reported). It
 * runs in a session of its own (setsid), so that rabbitmqctl's children, which hold its output
 * pipes, go with it.
 */
async function spawnBounded(cmd: string[], env: Record<string, string | undefined>, ms: number): Promise<Ctl> {
  const proc = Bun.spawn(["setsid", ...cmd], {
    env: env as Record<string, string>,
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const timer = setTimeout(() => {
    try {
      process.kill(-proc.pid, "SIGKILL");
    } catch {
      proc.kill("SIGKILL");
    }
  }, ms);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  clearTimeout(timer);
  return { code, stdout, stderr: code === 137 ? `${stderr}\n(killed after ${ms} ms)` : stderr };
}

/**
 * rabbitmqctl against the suite's broker (or the private node `node`). Never skipped: a missing
 * rabbitmqctl is an error that says what to install.
 */
export async function rabbitmqctl(
  args: string[],
  { node = SUITE_NODE, ms = 60_000 }: { node?: string; ms?: number } = {},
): Promise<Ctl> {
  if (node) return spawnBounded(["bash", BROKER_NODE, "ctl", node, ...args], process.env, ms);
  const ctl = Bun.which("rabbitmqctl") ?? Bun.which("rabbitmqctl", { PATH: "/usr/sbin:/usr/bin" });
  if (!ctl)
    throw new Error(
      "rabbitmqctl is not installed: it comes with rabbitmq-server (scripts/ensure-broker.sh installs it)",
    );
  return spawnBounded([ctl, ...args], process.env, ms);
}

/** rabbitmqctl that must succeed: its stdout, or an error with its stderr. */
export async function rabbitmqctlOk(args: string[], options?: { node?: string; ms?: number }): Promise<string> {
  const r = await rabbitmqctl(args, options);
  if (r.code !== 0)
    throw new Error(`rabbitmqctl ${args.join(" ")} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

/** rabbitmqctl's JSON output (`--formatter json`): one object per row. */
export async function rabbitmqctlJson(
  args: string[],
  options?: { node?: string; ms?: number },
): Promise<Record<string, unknown>[]> {
  return JSON.parse(await rabbitmqctlOk(["-q", ...args, "--formatter", "json"], options)) as Record<string, unknown>[];
}

export interface PrivateNode {
  name: string;
  port: number;
  url: string;
  /** rabbitmqctl against this node. */
  ctl(args: string[], ms?: number): Promise<Ctl>;
  /** Stops the node, keeping its data (start it again with start()). */
  halt(): Promise<void>;
  /** Starts it (again). */
  start(): Promise<void>;
  /** Stops it and deletes its data. */
  stop(): Promise<void>;
}

const nodeEnv = (extra: Record<string, string | undefined> = {}) => ({
  ...process.env,
  FIBRPC_BROKER_VERSION: BROKER_RELEASE,
  ...extra,
});

async function script(args: string[], env: Record<string, string | undefined>, ms = 180_000): Promise<void> {
  const r = await spawnBounded(["bash", ...args], env, ms);
  if (r.code !== 0) throw new Error(`${args.slice(0, 3).join(" ")} failed (exit ${r.code}): ${r.stderr.trim()}`);
}

/**
 * A private RabbitMQ node of the suite's release, on free ports, started; stop() it in afterAll
 * (or let `stopAll` below do it).
 * extraConf: more rabbitmq.conf lines (e.g. a TLS listener).
 */
export async function startPrivateNode(
  prefix: string,
  { extraConf }: { extraConf?: string } = {},
): Promise<PrivateNode> {
  const name = `${prefix}-${crypto.randomUUID().slice(0, 6)}`;
  const port = (await freeNodePorts(1)) + 1;
  const env = nodeEnv({ FIBRPC_BROKER_EXTRA_CONF: extraConf });
  const node: PrivateNode = {
    name,
    port,
    url: `amqp://guest:guest@127.0.0.1:${port}`,
    ctl: (args, ms) => rabbitmqctl(args, { node: name, ms }),
    halt: () => script([BROKER_NODE, "halt", name], env),
    start: () => script([BROKER_NODE, "start", name, String(port)], env),
    stop: () => script([BROKER_NODE, "stop", name], env),
  };
  nodes.add(node);
  await node.start();
  return node;
}

export interface PrivateCluster {
  /** Node names, 1 to 3. */
  names: string[];
  ports: number[];
  urls: string[];
  /** Stops node i (0-based), keeping its data and membership. */
  halt(i: number): Promise<void>;
  /** Kills node i's VM (SIGKILL), as when its machine dies; its data and membership stay. */
  kill(i: number): Promise<void>;
  /** Starts node i (0-based) again; it rejoins the cluster. */
  start(i: number): Promise<void>;
  /** rabbitmqctl against node i (0-based). */
  ctl(i: number, args: string[], ms?: number): Promise<Ctl>;
  stop(): Promise<void>;
}

/** A 3-node cluster of the suite's release (scripts/cluster.sh), on free ports, started. */
export async function startPrivateCluster(prefix: string): Promise<PrivateCluster> {
  const base = await freeNodePorts(3);
  const clusterPrefix = `${prefix}${crypto.randomUUID().slice(0, 4)}-`;
  const env = nodeEnv({ FIBRPC_CLUSTER_PREFIX: clusterPrefix });
  const ports = [1, 2, 3].map((i) => base + i);
  const cluster: PrivateCluster = {
    names: [1, 2, 3].map((i) => `${clusterPrefix}${i}`),
    ports,
    urls: ports.map((p) => `amqp://guest:guest@127.0.0.1:${p}`),
    halt: (i) => script([BROKER_NODE, "halt", `${clusterPrefix}${i + 1}`], env),
    kill: (i) => script([BROKER_NODE, "kill", `${clusterPrefix}${i + 1}`], env),
    start: (i) => script([BROKER_NODE, "start", `${clusterPrefix}${i + 1}`, String(ports[i])], env),
    ctl: (i, args, ms) => rabbitmqctl(args, { node: `${clusterPrefix}${i + 1}`, ms }),
    // The three nodes stop at once, each bounded by broker-node.sh (under 2 minutes).
    stop: () => script([CLUSTER, "stop", String(base)], env, 240_000),
  };
  clusters.add(cluster);
  await script([CLUSTER, "start", String(base)], env, 300_000);
  return cluster;
}

const nodes = new Set<PrivateNode>();
const clusters = new Set<PrivateCluster>();

/** Stops every private node and cluster this test file started (helpers' cleanup calls it). */
export async function stopPrivateBrokers(): Promise<void> {
  const stopping = [...nodes].map((n) => n.stop().catch(() => {}));
  stopping.push(...[...clusters].map((c) => c.stop().catch(() => {})));
  nodes.clear();
  clusters.clear();
  await Promise.all(stopping);
}

/**
 * Whether the suite's broker refuses non-durable, non-exclusive queues (the tutorial's
 * `queue_declare(queue='rpc_queue')`): 4.3 nodes of scripts/broker-node.sh deny the deprecated
 * feature transient_nonexcl_queues, as RabbitMQ 4.3's release notes announce for a later release;
 * 3.10 and 4.0 permit it. The broker then closes the declaring *connection* (541), not a channel.
 */
export const TRANSIENT_QUEUES_DENIED = releaseAtLeast(4, 3);
