/**
 * The library (src/index.ts, the npm package's `import { connect } from "fibrpc"`), in-process
 * against a real broker and a `fibrpc serve`: what a call resolves to and rejects with, an abort
 * after the request was sent and its late reply, a connection lost (a TCP proxy cut, test/proxy.ts)
 * and connected again by the next call, a broker still gone, and close(). The package itself,
 * built, installed from a registry and run under node and bun: test/release/release.test.ts.
 */
import { afterAll, beforeAll, beforeEach, describe, expect, test } from "bun:test";
import { type ConnectOptions, connect, type FibClient, FibrpcError, ServerError } from "../../src/index.ts";
import {
  BROKER_PORT,
  cleanupAfterFile,
  eventually,
  queueStats,
  rawChannel,
  type Server,
  startServe,
  uniqueQueue,
  URL,
} from "../helpers.ts";
import { type Proxy as TcpProxy, startProxy } from "../proxy.ts";

cleanupAfterFile();

const served = uniqueQueue("fibrpc_library");
/** A queue with no server: a call to it waits until its timeout, abort or a lost connection. */
const idle = uniqueQueue("fibrpc_library_idle");
let serve: Server;
let proxy: TcpProxy;
const clients: FibClient[] = [];
/** The proxy's URL: the broker's, with the proxy's port. */
let proxied: string;

async function client(options: Parameters<typeof connect>[0]): Promise<FibClient> {
  const made = await connect(options);
  clients.push(made);
  return made;
}

/** A controller's signal that counts the listeners added to it and still there. */
function countedSignal(controller: AbortController) {
  const { signal } = controller;
  let added = 0;
  let removed = 0;
  return {
    signal: {
      get aborted() {
        return signal.aborted;
      },
      get reason() {
        return signal.reason;
      },
      addEventListener(type: "abort", listener: () => void, options?: { once?: boolean }) {
        added++;
        signal.addEventListener(type, listener, options);
      },
      removeEventListener(type: "abort", listener: () => void) {
        removed++;
        signal.removeEventListener(type, listener);
      },
    },
    added: () => added,
    listening: () => added - removed,
  };
}

/** What a promise rejects with (fails the test if it resolves). */
async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** Resolves once one request waits in the idle queue (the broker took it). */
async function requestWaiting(): Promise<void> {
  await eventually(
    () => queueStats(idle),
    (stats) => stats.messageCount === 1,
    10_000,
    "a request in the queue",
  );
}

/** Takes the request waiting in the idle queue and answers it with `body`, as a server would. */
async function answerWaiting(body: string): Promise<void> {
  await requestWaiting();
  const { ch } = await rawChannel();
  const request = await ch.get(idle, { noAck: true });
  if (!request) throw new Error("the request is not in the queue");
  ch.publish("", request.properties.replyTo, Buffer.from(body), { correlationId: request.properties.correlationId });
}

async function purgeIdle(): Promise<void> {
  const { ch } = await rawChannel();
  await ch.purgeQueue(idle);
}

// Each test starts with an empty idle queue (a call that timed out leaves its request there until it expires).
beforeEach(purgeIdle);

beforeAll(async () => {
  serve = await startServe(["--workers", "1", "--queue", served, "--url", URL]);
  const { ch } = await rawChannel();
  await ch.assertQueue(idle, { durable: true });
  proxy = await startProxy(BROKER_PORT);
  const url = new globalThis.URL(URL);
  url.port = String(proxy.port);
  proxied = url.href;
});

afterAll(async () => {
  for (const made of clients) await made.close();
  await proxy?.close();
  await serve?.stop();
});

describe("fib()", () => {
  test("resolves to a bigint; many calls in flight on one connection", async () => {
    const c = await client({ url: URL, queue: served });
    expect(await c.fib(30)).toBe(832040n);
    const all = await Promise.all(Array.from({ length: 1000 }, (_, i) => c.fib(i % 100)));
    expect(all[99]).toBe(218922995834555169026n);
    expect(all.length).toBe(1000);
  });

  test("a server's error reply is a ServerError with the code `fibrpc call` prints", async () => {
    const c = await client({ url: URL, queue: served });
    const err = await rejection(c.fib(2_000_000));
    expect(err).toBeInstanceOf(ServerError);
    expect({ ...(err as ServerError), message: (err as Error).message }).toMatchObject({
      code: "N_TOO_LARGE",
      exitCode: 76,
      n: 2_000_000,
      message: "n must be at most 1000000, got 2000000",
    });
  });

  test("no reply within the call's timeout from a server that took it: FibrpcError TIMEOUT, exit code 75", async () => {
    // A consumer that takes requests and never answers: a server too slow for the timeout.
    const silent = uniqueQueue("fibrpc_library_silent");
    const { ch } = await rawChannel();
    await ch.assertQueue(silent, { durable: true });
    await ch.consume(silent, () => {}, { noAck: true });
    const c = await client({ url: URL, queue: silent });
    const err = await rejection(c.fib(5, { timeout: 200 }));
    expect(err).toBeInstanceOf(FibrpcError);
    expect([(err as FibrpcError).code, (err as FibrpcError).exitCode]).toEqual(["TIMEOUT", 75]);
  });

  test("no reply within the timeout on a queue with no consumer: NO_CONSUMER, exit code 69, as `fibrpc call` says", async () => {
    const c = await client({ url: URL, queue: idle });
    const err = (await rejection(c.fib(5, { timeout: 200 }))) as FibrpcError;
    expect([err.code, err.exitCode]).toEqual(["NO_CONSUMER", 69]);
    expect(err.message).toMatch(
      new RegExp(
        `^no reply within the timeout, and queue "${idle}" on amqp://guest:\\*\\*\\*@127\\.0\\.0\\.1:\\d+ has no consumer ` +
          "now: no server consumes it$",
      ),
    );
  });

  test("a queue nobody declared: QUEUE_NOT_FOUND at once", async () => {
    const c = await client({ url: URL, queue: uniqueQueue("fibrpc_library_none") });
    expect(((await rejection(c.fib(5))) as FibrpcError).code).toBe("QUEUE_NOT_FOUND");
  });

  test("what cannot be sent is refused as USAGE before anything is sent", async () => {
    const c = await client({ url: URL, queue: served });
    for (const n of [-1, 1.5, 2 ** 53, Number.NaN, "30" as unknown as number]) {
      const err = (await rejection(c.fib(n))) as FibrpcError;
      expect([err.code, err.exitCode, err.message]).toEqual([
        "USAGE",
        64,
        // A string is quoted: "30" is not the number 30.
        `invalid n ${typeof n === "string" ? '"30"' : String(n)}: n must be a whole number from 0 to ${Number.MAX_SAFE_INTEGER}`,
      ]);
    }
    expect(((await rejection(c.fib(1, { timeout: 0 }))) as FibrpcError).code).toBe("USAGE");
    expect(((await rejection(connect({ url: [] }))) as FibrpcError).code).toBe("USAGE");
    expect(((await rejection(connect({ url: "http://x" }))) as FibrpcError).code).toBe("USAGE");
  });

  test("connect()'s options are checked as the CLI checks its flags: USAGE naming the option, nothing sent", async () => {
    // As plain JavaScript may pass them: the types would not let TypeScript.
    const bad = (options: unknown) => rejection(connect(options as ConnectOptions)) as Promise<FibrpcError>;
    for (const [options, message] of [
      [{ url: URL, queue: "x".repeat(300) }, "queue must be at most 255 bytes long (UTF-8)"],
      [{ url: URL, queue: "" }, "queue must not be empty: name the queue the servers consume"],
      [{ url: URL, queue: 5 }, "queue must be a string, got a number"],
      [{ url: 5 }, "url must be a string or an array of strings, got a number"],
      // A URL of the wrong type is never written out: it may hold a password.
      [
        { url: new globalThis.URL("amqp://app:s3cret@h") },
        "url must be a string or an array of strings, got a URL object",
      ],
      [{ url: ["amqp://app:s3cret@h", 5] }, "url[1] must be a string (an amqp:// or amqps:// URL), got a number"],
      [null, "connect() takes an options object ({ url, queue, timeout, tls }), got null"],
      ["amqp://app:s3cret@h", "connect() takes an options object ({ url, queue, timeout, tls }), got a string"],
      [
        { url: URL, timeout: "5000" },
        'timeout must be a whole number of milliseconds from 1 to 2147483647, got "5000"',
      ],
      [{ url: URL, timeout: 5000n }, "timeout must be a whole number of milliseconds from 1 to 2147483647, got 5000n"],
      [{ url: URL, tls: "x" }, "tls must be an object ({ ca, cert, key }), got a string"],
      [{ url: URL, tls: { ca: 5 } }, "tls.ca must be PEM text (a string or a Uint8Array), got a number"],
    ] as const) {
      const err = await bad(options);
      expect([err.code, err.exitCode, err.message]).toEqual(["USAGE", 64, message]);
      expect(err.message).not.toContain("s3cret");
    }
  });

  test("an unreachable broker: connect() rejects with BROKER_UNREACHABLE, its password masked", async () => {
    const err = (await rejection(connect({ url: "amqp://u:secret@127.0.0.1:1", timeout: 2000 }))) as FibrpcError;
    expect(err.code).toBe("BROKER_UNREACHABLE");
    expect(err.message).not.toContain("secret");
  });
});

describe("AbortSignal", () => {
  test("aborted once the request waits in the queue: rejects with the signal's reason; the late reply is ignored", async () => {
    const c = await client({ url: URL, queue: idle });
    const controller = new AbortController();
    const call = c.fib(7, { signal: controller.signal, timeout: 20_000 });
    await requestWaiting();
    controller.abort();
    const err = await rejection(call);
    expect((err as Error).name).toBe("AbortError");
    expect(err).toBe(controller.signal.reason);

    // The reply comes anyway, late, as a server would send it: it is ignored, and the next call
    // gets its own answer, not that one.
    await answerWaiting("999");
    const next = c.fib(8, { timeout: 20_000 });
    await answerWaiting("21");
    expect(await next).toBe(21n);
  });

  test("one signal for many calls: one listener on it while they wait, none after; aborting it rejects them all", async () => {
    const answering = await client({ url: URL, queue: served });
    const first = countedSignal(new AbortController());
    expect(
      await Promise.all(Array.from({ length: 50 }, (_, i) => answering.fib(i, { signal: first.signal }))),
    ).toHaveLength(50);
    expect([first.added(), first.listening()]).toEqual([1, 0]);

    const waiting = await client({ url: URL, queue: idle });
    const controller = new AbortController();
    const second = countedSignal(controller);
    const calls = Array.from({ length: 100 }, (_, i) =>
      rejection(waiting.fib(i, { signal: second.signal, timeout: 20_000 })),
    );
    expect(second.listening()).toBe(1);
    controller.abort();
    expect(new Set(await Promise.all(calls))).toEqual(new Set([controller.signal.reason]));
    // The 100 requests were sent before the abort: wait until the broker has put them all in the queue, so
    // that none lands there after the next test's purge.
    await eventually(
      () => queueStats(idle),
      (stats) => stats.messageCount === 100,
      10_000,
      "the 100 requests in the queue",
    );
  });

  test("an already aborted signal: nothing is sent", async () => {
    const c = await client({ url: URL, queue: idle });
    const controller = new AbortController();
    controller.abort();
    expect(await rejection(c.fib(7, { signal: controller.signal }))).toBe(controller.signal.reason);
    // A call sent after it on the same channel reaches the queue after it would have: the first request
    // taken from the queue is that call's, not n 7.
    const next = c.fib(6, { timeout: 20_000 });
    await requestWaiting();
    const { ch } = await rawChannel();
    const first = await ch.get(idle, { noAck: true });
    if (!first) throw new Error("the request is not in the queue");
    expect(first.content.toString()).toBe("6");
    ch.publish("", first.properties.replyTo, Buffer.from("8"), { correlationId: first.properties.correlationId });
    expect(await next).toBe(8n);
  });
});

describe("the connection", () => {
  test("lost: calls in flight reject with CONNECTION_LOST, and the next call connects again", async () => {
    const c = await client({ url: proxied, queue: idle });
    const inFlight = c.fib(5, { timeout: 20_000 });
    await requestWaiting();
    expect(proxy.cut()).toBeGreaterThanOrEqual(1);
    expect(((await rejection(inFlight)) as FibrpcError).code).toBe("CONNECTION_LOST");
    await purgeIdle();
    // Sent on a new connection: it reaches the queue, and its answer comes back.
    const next = c.fib(6, { timeout: 20_000 });
    await answerWaiting("8");
    expect(await next).toBe(8n);
  });

  test("the broker still gone: the next call rejects with BROKER_UNREACHABLE, and the one after it is answered", async () => {
    const c = await client({ url: proxied, queue: idle, timeout: 5000 });
    const inFlight = c.fib(5, { timeout: 20_000 });
    await requestWaiting();
    proxy.refuse(true);
    try {
      proxy.cut();
      expect(((await rejection(inFlight)) as FibrpcError).code).toBe("CONNECTION_LOST");
      expect(((await rejection(c.fib(5))) as FibrpcError).code).toBe("BROKER_UNREACHABLE");
    } finally {
      proxy.refuse(false);
    }
    await purgeIdle();
    const next = c.fib(6, { timeout: 20_000 });
    await answerWaiting("8");
    expect(await next).toBe(8n);
  });

  test("close(): calls in flight reject with CONNECTION_LOST, and so does any call after it", async () => {
    const c = await connect({ url: URL, queue: idle });
    const inFlight = rejection(c.fib(5, { timeout: 20_000 }));
    await c.close();
    expect(((await inFlight) as FibrpcError).code).toBe("CONNECTION_LOST");
    const after = (await rejection(c.fib(5))) as FibrpcError;
    expect([after.code, after.message]).toEqual(["CONNECTION_LOST", "the client is closed: connect() again"]);
  });
});
