/**
 * The Node RPC client and server of test/interop/otel-node/: the RabbitMQ tutorial's request/reply
 * in Node with amqplib, under OpenTelemetry's Node SDK and @opentelemetry/instrumentation-amqplib,
 * exporting OTLP where `env` says (an OtlpReceiver's env(protocol)). They are what a Node user's
 * traced services are, for fibrpc's tracing to meet: their traceparent headers go to fibrpc serve,
 * fibrpc call's go to them. Both run with Node (not Bun): the instrumentation patches amqplib
 * through Node's require hook.
 */
import { resolve } from "node:path";
import type { Subprocess } from "bun";
import { tracked, URL } from "./helpers.ts";

const FIXTURES = resolve(import.meta.dir, "interop/otel-node");

/** Node itself: `node` on PATH (the fixtures check their runtime in the spans' resource). */
export const NODE = Bun.which("node");

/**
 * The environment of a fixture: the machine's, less any OTEL_* of the developer's shell, with spans
 * exported every 50 ms (OTEL_BSP_SCHEDULE_DELAY) rather than 5 s, traces only, then `env`.
 */
function fixtureEnv(env: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("OTEL_") && v !== undefined) out[k] = v;
  return {
    ...out,
    OTEL_TRACES_EXPORTER: "otlp",
    OTEL_METRICS_EXPORTER: "none",
    OTEL_LOGS_EXPORTER: "none",
    OTEL_BSP_SCHEDULE_DELAY: "50",
    ...env,
  };
}

function node(script: string, args: string[], env: Record<string, string>) {
  if (!NODE) throw new Error("node is not installed: the OpenTelemetry interop fixtures run with Node (20 or later)");
  return tracked(
    Bun.spawn([NODE, resolve(FIXTURES, script), ...args], {
      cwd: "/",
      env: fixtureEnv(env),
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
    }),
  );
}

export interface NodeRpcServer {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Its stdout and stderr so far. */
  readonly output: string;
  /** SIGTERM (it flushes its spans), then the exit code. */
  stop(): Promise<number>;
}

/**
 * Starts the Node RPC server on `queue` (it declares it, durable: give it a uniqueQueue) and waits,
 * at most `ms`, until it consumes.
 */
export async function startNodeRpcServer(
  queue: string,
  env: Record<string, string>,
  { url = URL, ms = 20_000 }: { url?: string; ms?: number } = {},
): Promise<NodeRpcServer> {
  const proc = node("rpc_server.cjs", [queue], { AMQP_URL: url, ...env });
  let output = "";
  const decoder = new TextDecoder();
  let ready: () => void = () => {};
  const consuming = new Promise<void>((r) => {
    ready = r;
  });
  const read = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream) {
      output += decoder.decode(chunk, { stream: true });
      if (output.includes("Awaiting RPC requests")) ready();
    }
  };
  void read(proc.stdout);
  void read(proc.stderr);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const failed = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the Node RPC server did not consume within ${ms} ms:\n${output}`)), ms);
    void proc.exited.then((code) =>
      setTimeout(() => reject(new Error(`the Node RPC server exited (${code}) before consuming:\n${output}`)), 50),
    );
  });
  try {
    await Promise.race([consuming, failed]);
  } catch (err) {
    proc.kill("SIGKILL");
    throw err;
  } finally {
    clearTimeout(timer);
  }
  failed.catch(() => {}); // settled later by the exit, with no one waiting
  return {
    proc,
    get output() {
      return output;
    },
    async stop() {
      proc.kill("SIGTERM");
      return proc.exited;
    },
  };
}

export interface NodeClientResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The results it printed (" [.] Got R"), in order. */
  results: string[];
}

/** Runs the Node RPC client: fib(n) for each of `ns` on `queue`, then it flushes its spans and exits. */
export async function runNodeRpcClient(
  queue: string,
  ns: (number | string)[],
  env: Record<string, string>,
  { url = URL }: { url?: string } = {},
): Promise<NodeClientResult> {
  const proc = node("rpc_client.cjs", [queue, ...ns.map(String)], { AMQP_URL: url, ...env });
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  const results = [...stdout.matchAll(/^ \[\.\] Got (\S+)$/gm)].map((m) => m[1]!);
  return { code, stdout, stderr, results };
}
