/**
 * fibrpc as a library: `import { connect } from "fibrpc"`.
 *
 *   const client = await connect({ url: "amqp://guest:guest@127.0.0.1:5672" });
 *   await client.fib(30); // 832040n
 *   await client.close();
 *
 * The client is rpc/client.ts's RpcClient, the one `fibrpc call` uses (Direct Reply-to, publisher
 * confirms, plain decimal bodies), wrapped so that a call resolves to a bigint or rejects with an
 * error class instead of returning an outcome. It runs on Node.js ≥ 20 and on Bun: scripts/npm.ts
 * builds it for Node, with amqplib bundled in, so the package has no dependencies to install.
 * Nothing here reads the environment or a file: every setting is an option.
 */
import { MAX_TIMER_MS, parseBrokerUrls } from "./broker-url.ts";
import { DEFAULT_QUEUE, DEFAULT_TIMEOUT_MS, DEFAULT_URL } from "./config.ts";
import { EXIT_CODES, FibrpcError, usageError } from "./errors.ts";
import { RpcClient, type CallOutcome, type ClientOptions } from "./rpc/client.ts";
import { MAX_PROTOCOL_N } from "./rpc/protocol.ts";
import { ServerWatch } from "./rpc/server-gone.ts";
import { queueNameProblem } from "./rpc/queue.ts";

export { FibrpcError, type ClientErrorCode, type ErrorDetails, type ErrorReason } from "./errors.ts";
export { ErrorCode as ServerErrorCode } from "./rpc/error-codes.ts";

export interface ConnectOptions {
  /**
   * The broker: an amqp:// or amqps:// URL, or several, tried in order until one answers.
   * Default amqp://guest:guest@127.0.0.1:5672.
   */
  url?: string | readonly string[];
  /** The request queue the servers consume. Default rpc_queue. */
  queue?: string;
  /** Each call's budget in milliseconds, end to end, unless the call gives its own. Default 30000. */
  timeout?: number;
  /** For amqps:// URLs: the CA that signed the broker's certificate, and a client certificate and key (PEM). */
  tls?: { ca?: string | Uint8Array; cert?: string | Uint8Array; key?: string | Uint8Array };
}

export interface CallOptions {
  /** This call's budget in milliseconds (default: the client's timeout). */
  timeout?: number;
  /**
   * Aborting it rejects the call with the signal's reason (an AbortError from AbortController's
   * abort()); its reply, if one comes, is ignored.
   */
  signal?: AbortSignalLike;
}

/**
 * What a call needs of an AbortSignal: the DOM's, Node's and Bun's all fit. Named here so that the
 * package's types need neither the DOM library nor @types/node.
 */
export interface AbortSignalLike {
  readonly aborted: boolean;
  readonly reason?: unknown;
  addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }): void;
  removeEventListener(type: "abort", listener: () => void): void;
}

/**
 * The server answered with an error reply: `code` is the server's (N_TOO_LARGE, NEGATIVE_N,
 * DEADLINE_EXCEEDED, POISON_REQUEST, INTERNAL, …), as `fibrpc call` prints it.
 */
export class ServerError extends Error {
  override readonly name = "ServerError";
  /** The exit code `fibrpc call` gives the same outcome (76, EX_PROTOCOL). */
  readonly exitCode = EXIT_CODES.REMOTE_ERROR.code;
  constructor(
    readonly code: string,
    message: string,
    /** The n that was asked for. */
    readonly n: number,
  ) {
    super(message);
  }
}

const noLog = { debug() {}, info() {}, warn() {} };

/** What kind of value it is (`a number`, `an array`, `a URL object`), for a value of the wrong type. */
function kindOf(value: unknown): string {
  if (value === null || value === undefined) return String(value);
  if (Array.isArray(value)) return "an array";
  if (value instanceof URL) return "a URL object";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

/**
 * A value as a message quotes it: a string in quotes ("5000" is not 5000), a bigint with its n (30n is not
 * 30), a number as it is, anything else by its kind. Never for a URL or a value that may hold a password.
 */
function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  return typeof value === "number" || typeof value === "boolean" ? String(value) : kindOf(value);
}

function timeoutOf(ms: unknown, what: string): number {
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_TIMER_MS)
    throw usageError(`${what} must be a whole number of milliseconds from 1 to ${MAX_TIMER_MS}, got ${shown(ms)}`);
  return ms;
}

function bytesOf(pem: unknown, what: string): Uint8Array | undefined {
  if (pem === undefined || pem instanceof Uint8Array) return pem;
  if (typeof pem === "string") return new TextEncoder().encode(pem);
  // Not the value: it may be a private key.
  throw usageError(`${what} must be PEM text (a string or a Uint8Array), got ${kindOf(pem)}`);
}

/**
 * connect()'s options, checked as the CLI checks its flags: a caller in plain JavaScript gets a USAGE error
 * naming the option, not a TypeError from deep inside, nor a broker's refusal at the first call. A URL of the
 * wrong type is named by its kind and place, never written out: it may hold a password.
 */
function checked(options: unknown): ConnectOptions {
  if (options === undefined) return {};
  if (typeof options !== "object" || options === null || Array.isArray(options))
    throw usageError(`connect() takes an options object ({ url, queue, timeout, tls }), got ${kindOf(options)}`);
  const { url, queue, tls } = options as Record<string, unknown>;
  if (url !== undefined && typeof url !== "string") {
    if (!Array.isArray(url)) throw usageError(`url must be a string or an array of strings, got ${kindOf(url)}`);
    const at = url.findIndex((u) => typeof u !== "string");
    if (at !== -1) throw usageError(`url[${at}] must be a string (an amqp:// or amqps:// URL), got ${kindOf(url[at])}`);
  }
  if (queue !== undefined && typeof queue !== "string")
    throw usageError(`queue must be a string, got ${kindOf(queue)}`);
  if (queue === "") throw usageError("queue must not be empty: name the queue the servers consume");
  const problem = queue === undefined ? undefined : queueNameProblem(queue);
  if (problem !== undefined) throw usageError(`queue ${problem}`);
  if (tls !== undefined && (typeof tls !== "object" || tls === null || Array.isArray(tls)))
    throw usageError(`tls must be an object ({ ca, cert, key }), got ${kindOf(tls)}`);
  return options as ConnectOptions;
}

/** What a call's outcome means to a caller of fib(): the number, or the error it throws. */
function resultOf(outcome: CallOutcome): bigint {
  if (outcome.ok) return BigInt(outcome.result);
  if (outcome.error) throw outcome.error;
  throw new ServerError(outcome.code, outcome.message, outcome.n);
}

/** Connects to the broker and returns a client; rejects with a FibrpcError (BROKER_UNREACHABLE, ACCESS_REFUSED, …). */
export async function connect(given?: ConnectOptions): Promise<FibClient> {
  const options = checked(given);
  const urls = typeof options.url === "string" ? [options.url] : (options.url ?? [DEFAULT_URL]);
  if (urls.length === 0) throw usageError("url names no broker: give an amqp:// or amqps:// URL, or a list of them");
  const tls = options.tls;
  const clientOptions: ClientOptions = {
    broker: {
      urls: parseBrokerUrls(urls.map((text) => ({ text, source: "url" }))),
      tls: { ca: bytesOf(tls?.ca, "tls.ca"), cert: bytesOf(tls?.cert, "tls.cert"), key: bytesOf(tls?.key, "tls.key") },
    },
    queue: options.queue ?? DEFAULT_QUEUE,
    replyQueue: "direct",
    timeoutMs: timeoutOf(options.timeout ?? DEFAULT_TIMEOUT_MS, "timeout"),
    log: noLog,
    connectionName: "fibrpc library",
  };
  return new Client(clientOptions, await RpcClient.connect(clientOptions));
}

/**
 * A connection to the broker and the calls in flight on it: as many at once as you like. If the
 * connection is lost, the calls in flight reject with CONNECTION_LOST and the next call connects again.
 */
export interface FibClient {
  /**
   * fib(n) as computed by a server: resolves to a bigint, or rejects with a FibrpcError, a ServerError
   * or the signal's reason.
   */
  fib(n: number, options?: CallOptions): Promise<bigint>;
  /** Closes the connection; calls still in flight reject with CONNECTION_LOST, and later calls too. */
  close(): Promise<void>;
}

function closedError(): FibrpcError {
  return new FibrpcError("CONNECTION_LOST", "the client is closed: connect() again", { reason: "client-closed" });
}

/** FibClient; not exported, so that the package's types name none of the internals it holds. */
class Client implements FibClient {
  readonly #options: ClientOptions;
  /** The connection, or the attempt to make one again (which may have failed). */
  #client: Promise<RpcClient>;
  /** The connected client, once #client has resolved: the fast path of a call needs no await. */
  #ready: RpcClient | undefined;
  /** An attempt to connect again is under way. */
  #connecting = false;
  readonly #aborts = new AbortWatch();
  #closed = false;
  /** The client of the latest call: where a call that timed out looks for a consumer (one look for them all). */
  #latest: RpcClient;
  /**
   * A call that timed out on a queue with no consumer is NO_CONSUMER (exit 69), as `fibrpc call` says it, not a slow
   * server's TIMEOUT. (call also looks before sending; a library call does not, to cost nothing per call.)
   */
  readonly #watch = new ServerWatch(() => this.#latest, { unlooked: true });

  constructor(options: ClientOptions, client: RpcClient) {
    this.#options = options;
    this.#client = Promise.resolve(client);
    this.#ready = client;
    this.#latest = client;
  }

  async fib(n: number, options: CallOptions = {}): Promise<bigint> {
    if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0)
      throw usageError(`invalid n ${shown(n)}: n must be a whole number from 0 to ${MAX_PROTOCOL_N}`);
    const budget = timeoutOf(options.timeout ?? this.#options.timeoutMs, "timeout");
    const { signal } = options;
    if (signal?.aborted) throw signal.reason;
    if (this.#closed) throw closedError();
    const deadline = Date.now() + budget;
    const client = this.#ready?.usable ? this.#ready : await this.#usable(deadline, budget, signal);
    this.#latest = client;
    const id = client.newCorrelationId();
    const watch = this.#watch;
    const outcome = client
      .call(n, deadline, id)
      .then((settled) => (ServerWatch.concerns(settled) ? watch.explain(settled) : settled));
    if (!signal) return resultOf(await outcome);
    return new Promise<bigint>((resolve, reject) => {
      const onAbort = () => {
        client.abandon(id);
        reject(signal.reason);
      };
      const stopWatching = this.#aborts.on(signal, onAbort);
      outcome.then((settled) => {
        stopWatching();
        try {
          resolve(resultOf(settled));
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#ready = undefined;
    // An attempt to connect again may be under way: close whatever connection #client ends up as.
    for (;;) {
      const current = this.#client;
      const client = await current.catch(() => undefined);
      await client?.close();
      if (this.#client === current) return;
    }
  }

  /**
   * The client, connected again if its connection was lost: one attempt at a time, shared by the
   * calls that find the connection gone, with the client's own timeout. Each call waits for it
   * within its own deadline and signal; a call that waited on an attempt that failed gets its error.
   */
  async #usable(deadline: number, budget: number, signal: AbortSignalLike | undefined): Promise<RpcClient> {
    for (;;) {
      const current = this.#client;
      const joined = this.#connecting;
      const settled = await within(
        current.then(
          (client) => ({ client }),
          (error: unknown) => ({ error }),
        ),
        deadline,
        signal && { signal, watch: this.#aborts },
        () =>
          new FibrpcError(
            "TIMEOUT",
            "no reply within the timeout: the connection to the broker was lost, and it is not back yet",
            { reason: "connection-lost", timeoutMs: budget },
          ),
      );
      if (this.#closed) throw closedError();
      if ("client" in settled && settled.client.usable) return settled.client;
      if ("error" in settled && joined) throw settled.error;
      if (this.#client === current) this.#reconnect("client" in settled ? settled.client : undefined);
    }
  }

  #reconnect(lost: RpcClient | undefined): void {
    lost?.close().catch(() => {});
    this.#ready = undefined;
    this.#connecting = true;
    const attempt = RpcClient.connect(this.#options);
    this.#client = attempt;
    attempt.then(
      (client) => {
        if (this.#client === attempt) this.#ready = client;
      },
      () => {},
    );
    attempt
      .finally(() => {
        if (this.#client === attempt) this.#connecting = false;
      })
      .catch(() => {});
  }
}

/**
 * `promise`, or a rejection with `timedOut()` at `deadline` or with the signal's reason when it
 * aborts, whichever comes first; nothing is left behind (timer, listener).
 */
function within<T>(
  promise: Promise<T>,
  deadline: number,
  abort: { signal: AbortSignalLike; watch: AbortWatch } | undefined,
  timedOut: () => Error,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = (settle: () => void) => {
      clearTimeout(timer);
      stopWatching?.();
      settle();
    };
    const timer = setTimeout(() => done(() => reject(timedOut())), Math.max(0, deadline - Date.now()));
    const stopWatching = abort?.watch.on(abort.signal, () => done(() => reject(abort.signal.reason)));
    promise.then(
      (value) => done(() => resolve(value)),
      (err: unknown) => done(() => reject(err)),
    );
  });
}

/**
 * The calls of one client waiting on each signal: one listener per signal, not one per call.
 * Node.js warns of a leak at an eleventh listener on one signal, and one signal for a batch of
 * calls is the common way to cancel them. Each client holds its own (no state at module level).
 */
class AbortWatch {
  readonly #watched = new WeakMap<AbortSignalLike, { callbacks: Set<() => void>; unlisten: () => void }>();

  /** Runs `callback` when `signal` aborts; returns what stops that. */
  on(signal: AbortSignalLike, callback: () => void): () => void {
    let watch = this.#watched.get(signal);
    if (!watch) {
      const callbacks = new Set<() => void>();
      const onAbort = () => {
        this.#watched.delete(signal);
        for (const run of callbacks) run();
      };
      signal.addEventListener("abort", onAbort, { once: true });
      watch = { callbacks, unlisten: () => signal.removeEventListener("abort", onAbort) };
      this.#watched.set(signal, watch);
    }
    const mine = watch;
    mine.callbacks.add(callback);
    return () => {
      mine.callbacks.delete(callback);
      if (mine.callbacks.size === 0 && this.#watched.get(signal) === mine) {
        this.#watched.delete(signal);
        mine.unlisten();
      }
    };
  }
}
