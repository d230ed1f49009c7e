/**
 * Fair dispatch with the default prefetch (50): while a worker computes a heavy request it takes
 * no new requests (its consumer swapped for a standby one, src/rpc/scheduler.ts), so they go to the
 * idle worker. The heavy computation is held (the test build's hold fault, test/hold.ts) until
 * the light requests are all answered: they are surely sent while it is under way, however fast
 * this machine computes fib(1000000).
 */
import { expect, test } from "bun:test";
import { Hold } from "../hold.ts";
import {
  cleanupAfterFile,
  eventually,
  queueStats,
  rawChannel,
  run,
  startServe,
  uniqueQueue,
  type Server,
} from "../helpers.ts";

cleanupAfterFile();

test("requests sent while one worker computes a heavy request all go to the other worker", async () => {
  const queue = uniqueQueue();
  const hold = new Hold(1_000_000);
  const env = { FIBRPC_TEST_FAULTS: hold.faults() };
  const a = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"], env);
  const b = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"], env);
  const { ch } = await rawChannel();
  const { queue: callback } = await ch.assertQueue("", { exclusive: true });
  const replies = new Set<string>();
  let light = 0;
  let onReply = () => {};
  await ch.consume(
    callback,
    (msg) => {
      if (!msg) return;
      replies.add(msg.properties.correlationId);
      if (msg.properties.correlationId.startsWith("light-")) light++;
      onReply();
    },
    { noAck: true },
  );
  /** Resolves once `done()` holds; rejects after `ms` saying what came. */
  const repliesUntil = (done: () => boolean, ms: number, what: string) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${what}: not within ${ms} ms; replies so far: ${[...replies].join(", ")}`)),
        ms,
      );
      onReply = () => {
        if (!done()) return;
        clearTimeout(timer);
        resolve();
      };
      onReply();
    });

  ch.sendToQueue(queue, Buffer.from("1000000"), { replyTo: callback, correlationId: "heavy" });
  // One of the two servers has started computing it, and is held there until released below.
  const held = await hold.next();
  const busy = held.pid === a.proc.pid ? a : b;
  const idle = busy === a ? b : a;
  expect([a.proc.pid, b.proc.pid]).toContain(held.pid);
  const busyBefore = busy.log.length;
  for (let i = 0; i < 40; i++)
    ch.sendToQueue(queue, Buffer.from(String(200 + i)), { replyTo: callback, correlationId: `light-${i}` });
  // All 40 answered while the heavy one is still held: none can have gone to the busy worker.
  await repliesUntil(() => light === 40, 15_000, "40 light replies while the heavy request is held");
  expect(replies.has("heavy")).toBe(false);
  hold.release(held);
  await repliesUntil(() => replies.has("heavy"), 15_000, "the heavy reply once released");
  await idle.waitForLog(/fib\(239\)/, 5000);
  const servedByBusy = busy.log.slice(busyBefore).match(/fib\(2[0-3]\d\) →/g) ?? [];
  const servedByIdle = idle.log.match(/fib\(2[0-3]\d\) →/g) ?? [];
  expect(servedByBusy).toHaveLength(0);
  expect(servedByIdle).toHaveLength(40);
  expect(await a.stop()).toBe(0);
  expect(await b.stop()).toBe(0);
});

/** The workers that logged answering fib(n) (serve at debug level, JSON lines), in order, from `from` on. */
function answeredBy(server: Server, n: number, from: number): string[] {
  const workers: string[] = [];
  for (const line of server.log.slice(from).split("\n")) {
    if (!line.startsWith("{")) continue;
    const entry = JSON.parse(line) as { worker?: string; message?: string };
    if (entry.message?.startsWith(`fib(${n}) →`)) workers.push(entry.worker ?? "?");
  }
  return workers;
}

test("one call at a time is served by the first worker (its lead consumer), before and after it computed a heavy request", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "3", "--queue", queue, "--log-level", "debug", "--log-format", "json"]);
  // Three workers' consumers and the first worker's lead consumer (rpc/scheduler.ts).
  const allConsumers = () =>
    eventually(
      () => queueStats(queue),
      (s) => s.consumerCount === 4,
      10_000,
      "4 consumers",
    );
  const oneAtATime = async (n: number) => {
    const from = server.log.length;
    const bench = await run(["bench", "--queue", queue, "--concurrency", "1", "--requests", "40", "--n", String(n)]);
    expect(bench.code).toBe(0);
    // Each worker logs its answer after writing it: the last lines may come after bench's exit.
    await eventually(
      async () => answeredBy(server, n, from),
      (workers) => workers.length === 40,
      10_000,
      `40 answers of fib(${n}) logged`,
    );
    return answeredBy(server, n, from);
  };
  const byLead = (workers: string[]) => workers.filter((w) => w === "worker-1").length;

  await allConsumers();
  // Without the lead consumer the broker hands them to each worker in turn (~13 each); a request
  // may still reach another worker if it overtakes the lead's ack inside the broker: hence ≥ 36.
  expect(byLead(await oneAtATime(5))).toBeGreaterThanOrEqual(36);
  // A heavy request, which the lead takes: the worker swaps its consumers for the standby one while
  // computing it, and both back after.
  const heavy = await run(["call", "--queue", queue, "100000"]);
  expect(heavy.code).toBe(0);
  expect(
    await eventually(
      async () => answeredBy(server, 100_000, 0),
      (workers) => workers.length === 1,
      10_000,
      "fib(100000)'s answer logged",
    ),
  ).toEqual(["worker-1"]);
  await allConsumers();
  expect(byLead(await oneAtATime(6))).toBeGreaterThanOrEqual(36);
  expect(await server.stop()).toBe(0);
});

test("with --prefetch 1 the first worker's lead consumer is its only one: every worker holds at most one request", async () => {
  const queue = uniqueQueue();
  const server = await startServe(["--workers", "2", "--prefetch", "1", "--queue", queue]);
  // Two, not three: a normal consumer beside the lead would let the first worker hold two requests
  // (test/integration/serve-flow-control.test.ts holds one fib(25) in each worker on that).
  const stats = await eventually(
    () => queueStats(queue),
    (s) => s.consumerCount >= 2,
    10_000,
    "2 consumers",
  );
  expect(stats.consumerCount).toBe(2);
  expect((await run(["bench", "--queue", queue, "--concurrency", "1", "--requests", "20"])).code).toBe(0);
  expect(await server.stop()).toBe(0);
});
