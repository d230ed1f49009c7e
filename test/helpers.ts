/**
 * Test helpers: the compiled binary started as a user would (from `/`), a raw amqplib connection
 * to the real broker, and cleanup of every process and queue a test made, even when it fails.
 */
import { afterAll } from "bun:test";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { connect, type Channel, type ChannelModel, type ConsumeMessage } from "amqplib";
import type { Subprocess } from "bun";
import { stopPrivateBrokers } from "./broker.ts";
import { ECHO_MS } from "../src/signals.ts";

export const ROOT = resolve(import.meta.dir, "..");
export const BIN = resolve(ROOT, "fibrpc");
/** The test build (`bun run build:test`): the same code plus fault injection (src/serve/faults.ts). */
export const TEST_BIN = resolve(ROOT, "fibrpc-test");
/** The suite's broker: the machine's, or a private node of another release (test/broker.ts). */
export const URL = process.env.FIBRPC_TEST_URL ?? "amqp://guest:guest@127.0.0.1:5672";
/** Its AMQP port on 127.0.0.1 (for proxies in front of it and URLs of other users). */
export const BROKER_PORT = Number(new globalThis.URL(URL).port || 5672);

for (const bin of [BIN, TEST_BIN]) {
  if (!existsSync(bin))
    throw new Error(
      `${bin} is missing: run \`bun run build\` and \`bun run build:test\` (scripts/test.sh does) before the tests`,
    );
}

const processes = new Set<Subprocess>();
/** Everything fibrpc printed in this test file, checked for leaked passwords at the end. */
const outputs: (string | (() => string))[] = [];
/** A URL with a password that is not masked: amqp://user:secret@… */
export const UNMASKED_PASSWORD = /amqps?:\/\/[^:/\s@]+:(?!\*\*\*@)[^@\s/]+@/;
const queues = new Set<string>();
const connections = new Set<ChannelModel>();
const folders = new Set<string>();
const tcpListeners = new Set<{ stop(closeActive?: boolean): void }>();

/**
 * Kills the processes, deletes the queues and checks the outputs of the calling test file.
 * Each test file calls it at its top: bun shares this module between files, so a hook
 * registered here at import would run for the first file only.
 */
export function cleanupAfterFile(): void {
  afterAll(cleanup);
}

async function cleanup(): Promise<void> {
  // Every step runs even when one before it failed (a queue that cannot be deleted must not keep
  // a private broker running); the first failure is reported at the end.
  const failures: unknown[] = [];
  const step = async (what: () => unknown) => {
    try {
      await what();
    } catch (err) {
      failures.push(err);
    }
  };
  for (const proc of processes) proc.kill("SIGKILL");
  processes.clear();
  if (queues.size > 0) {
    await step(async () => {
      const conn = await connect(URL);
      try {
        for (const q of queues) {
          const ch = await conn.createChannel();
          ch.on("error", () => {}); // one queue's failure closes its own channel only
          await ch.deleteQueue(q).catch((err: unknown) => failures.push(err));
          await ch.close().catch(() => {});
        }
      } finally {
        await conn.close().catch(() => {});
      }
    });
    queues.clear();
  }
  for (const conn of connections) await conn.close().catch(() => {});
  connections.clear();
  await step(stopPrivateBrokers);
  for (const listener of tcpListeners) listener.stop(true);
  tcpListeners.clear();
  for (const folder of folders) rmSync(folder, { recursive: true, force: true });
  folders.clear();
  // No log line or error message of fibrpc shows a password given in a URL.
  const leak = outputs.map((o) => (typeof o === "string" ? o : o())).find((text) => UNMASKED_PASSWORD.test(text));
  outputs.length = 0;
  if (leak) throw new Error(`fibrpc printed a password: ${UNMASKED_PASSWORD.exec(leak)?.[0]}`);
  if (failures.length > 0) throw failures[0];
}

/** A TCP port free on 127.0.0.1 at the time of asking (for --http-port and proxies). */
export async function freePort(): Promise<number> {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

/**
 * A port on 127.0.0.1 that accepts connections and never answers (a broker hung in its handshake): `connected`
 * resolves once a client's connection arrives, so a test knows it is connecting. Stopped after the test file.
 */
export function silentPort(): { port: number; connected: Promise<void> } {
  const connected = Promise.withResolvers<void>();
  const listener = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: { open: () => connected.resolve(), data() {} },
  });
  tcpListeners.add(listener);
  return { port: listener.port, connected: connected.promise };
}

/** A new empty folder under the system's temporary folder, removed at the end of the test file. */
export function tempFolder(prefix: string): string {
  const folder = mkdtempSync(join(tmpdir(), prefix));
  folders.add(folder);
  return folder;
}

/**
 * A process's stderr read as it comes: `until` resolves once what was read matches (or the stream ended: the
 * caller's next expectation then fails with what it got), `all` once the process closed it.
 */
export function stderrOf(proc: { stderr: ReadableStream<Uint8Array> }) {
  const reader = proc.stderr.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const readUntil = async (done: () => boolean) => {
    while (!done()) {
      const chunk = await reader.read();
      if (chunk.done) return text;
      text += decoder.decode(chunk.value, { stream: true });
    }
    return text;
  };
  return { until: (pattern: RegExp) => readUntil(() => pattern.test(text)), all: () => readUntil(() => false) };
}

/**
 * A process a test started itself (not through run/startServe): killed at the end of the test
 * file if it is still running, even when the test failed half-way.
 */
export function tracked<T extends Subprocess>(proc: T): T {
  processes.add(proc);
  void proc.exited.then(() => processes.delete(proc));
  return proc;
}

/**
 * Waits out the window in which the same signal again is taken for the first one's echo (src/signals.ts:
 * GNU timeout signals its child and then the child's group): a test's second signal is a second one
 * only after it. Not a wait for an event: the time itself is what the program reads.
 */
export function pastEchoWindow(): Promise<void> {
  return Bun.sleep(ECHO_MS + 20);
}

/** A fresh queue name, deleted after the test file. */
export function uniqueQueue(prefix = "fibrpc_test"): string {
  const name = `${prefix}_${crypto.randomUUID().slice(0, 8)}`;
  queues.add(name);
  return name;
}
/** Deletes this queue too after the test file (one the code under test declares itself). */
export function alsoDelete(queue: string): void {
  queues.add(queue);
}

/**
 * Environment for the binary: no FIBRPC_* or OTEL_* from the developer's shell leaks into a test
 * (an OTEL_EXPORTER_OTLP_ENDPOINT there would send every test's spans to that collector). When the
 * suite runs against another broker than the default one, FIBRPC_URL points the binary at it,
 * unless the test names a broker itself (--url, FIBRPC_URL) or a --config file (which ranks
 * below the environment, so FIBRPC_URL would hide its URL).
 */
function cleanEnv(extra: Record<string, string> = {}, args: readonly string[] = []): Record<string, string> {
  const env: Record<string, string> = {};
  // Neither fibrpc's settings nor OpenTelemetry's (tracing on, off) come from the caller's environment.
  for (const [k, v] of Object.entries(process.env))
    if (!k.startsWith("FIBRPC_") && !k.startsWith("OTEL_") && v !== undefined) env[k] = v;
  const namesBroker =
    args.some((a) => /^--(url|config)(=|$)/.test(a)) || "FIBRPC_URL" in extra || "FIBRPC_CONFIG" in extra;
  const suiteBroker: Record<string, string> = process.env.FIBRPC_TEST_URL && !namesBroker ? { FIBRPC_URL: URL } : {};
  return { ...env, NO_COLOR: "1", ...suiteBroker, ...extra };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs `fibrpc ARGS` from `/` to completion. */
export async function run(args: string[], env: Record<string, string> = {}, input?: string): Promise<RunResult> {
  const started = performance.now();
  const proc = Bun.spawn([BIN, ...args], {
    cwd: "/",
    env: cleanEnv(env, args),
    stdout: "pipe",
    stderr: "pipe",
    stdin: input === undefined ? "ignore" : new Blob([input]),
  });
  processes.add(proc);
  const [stdout, stderr, code] = await Promise.all([
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
    proc.exited,
  ]);
  processes.delete(proc);
  outputs.push(stdout, stderr);
  return { code, stdout, stderr, ms: performance.now() - started };
}

export interface Server {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything the server has written to stderr so far. */
  readonly log: string;
  /** Resolves when the log (from offset `from` on) matches, rejects after `ms`. */
  waitForLog(pattern: RegExp, ms?: number, from?: number): Promise<void>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number>;
}

/**
 * Starts `fibrpc serve ARGS` from `/` and waits until all its workers are serving. With
 * FIBRPC_TEST_FAULTS in `env`, the test build runs by default (the release binary ignores that
 * variable; a test of that gives `bin` BIN).
 */
export async function startServe(
  args: string[],
  env: Record<string, string> = {},
  ready: RegExp | null = /(\d+)\/\1 workers serving/,
  bin = env.FIBRPC_TEST_FAULTS ? TEST_BIN : BIN,
): Promise<Server> {
  const proc = Bun.spawn([bin, "serve", ...args], {
    cwd: "/",
    env: cleanEnv(env, args),
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  processes.add(proc);
  let log = "";
  const listeners = new Set<() => void>();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      log += decoder.decode(chunk, { stream: true });
      for (const l of listeners) l();
    }
  })();
  outputs.push(() => log);
  const server: Server = {
    proc,
    get log() {
      return log;
    },
    waitForLog(pattern, ms = 15_000, from = 0) {
      return new Promise((resolvePromise, reject) => {
        const check = () => {
          if (pattern.test(log.slice(from))) {
            listeners.delete(check);
            clearTimeout(timer);
            resolvePromise();
          }
        };
        const timer = setTimeout(() => {
          listeners.delete(check);
          reject(new Error(`serve did not log ${pattern} within ${ms} ms; its log:\n${log}`));
        }, ms);
        listeners.add(check);
        proc.exited.then(() => setTimeout(check, 50));
        check();
      });
    },
    async stop() {
      proc.kill("SIGTERM");
      const code = await proc.exited;
      processes.delete(proc);
      return code;
    },
  };
  if (ready) await server.waitForLog(ready);
  return server;
}

/** A raw amqplib connection and channel, as any other client of the broker would have. */
export async function rawChannel(): Promise<{ conn: ChannelModel; ch: Channel }> {
  const conn = await connect(URL, { noDelay: true });
  connections.add(conn);
  const ch = await conn.createChannel();
  return { conn, ch };
}

/**
 * A hand-made responder on `queue` (declared here): it holds a call's first attempt, answers nothing, and once the
 * retry comes calls `respond` with both requests. Returns the requests taken, in order.
 */
export async function respondOnRetry(
  queue: string,
  respond: (ch: Channel, requests: [ConsumeMessage, ConsumeMessage]) => void,
): Promise<ConsumeMessage[]> {
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const taken: ConsumeMessage[] = [];
  await ch.consume(queue, (msg) => msg && taken.push(msg) === 2 && respond(ch, [taken[0]!, taken[1]!]), {
    noAck: true,
  });
  return taken;
}

/** Resolves with the value of `probe` once it satisfies `done`, polling; rejects after `ms`. */
export async function eventually<T>(
  probe: () => Promise<T>,
  done: (value: T) => boolean,
  ms = 10_000,
  what = "condition",
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (done(value)) return value;
    if (Date.now() > deadline)
      throw new Error(`${what} not met within ${ms} ms (last value: ${JSON.stringify(value)})`);
    await Bun.sleep(25);
  }
}

/** Message and consumer counts of a queue (passive declare on a throwaway channel). */
export async function queueStats(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
  const conn = await connect(URL);
  try {
    const ch = await conn.createChannel();
    ch.on("error", () => {}); // a missing queue closes the channel: the rejection below says it
    const { messageCount, consumerCount } = await ch.checkQueue(queue);
    return { messageCount, consumerCount };
  } finally {
    await conn.close().catch(() => {});
  }
}

/** The text of a running serve's /metrics on 127.0.0.1:`port` (the request bounded at 5 s). */
export async function scrapeMetrics(port: number): Promise<string> {
  const response = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5000) });
  if (!response.ok) throw new Error(`GET /metrics on port ${port}: HTTP ${response.status}`);
  return response.text();
}

/** Every sample of a /metrics text by series, labels included (`name{a="b"}`), to its value. */
export function metricValues(text: string): Record<string, number> {
  const values: Record<string, number> = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const space = line.lastIndexOf(" ");
    values[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return values;
}
