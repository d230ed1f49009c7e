/**
 * Batched replies (docs/protocol.md, "Batched replies"): a caller that sends x-fibrpc-reply-batch = 1
 * may get the results a server has for it in one event-loop turn as one message; every other caller,
 * the tutorial's among them, gets one reply per request, as before. And fibrpc's own caller reads a
 * batch a server sends it, whatever it holds.
 */
import { expect, test } from "bun:test";
import type { ConsumeMessage } from "amqplib";
import { cleanupAfterFile, eventually, rawChannel, run, startServe, uniqueQueue } from "../helpers.ts";

cleanupAfterFile();

const fib = (n: number) => {
  let [a, b] = [0n, 1n];
  for (let i = 0; i < n; i++) [a, b] = [b, a + b];
  return String(a);
};

test("a caller that asks gets its results batched, each call once and right; every other caller one reply per request", async () => {
  const queue = uniqueQueue("fibrpc_batch");
  const { ch } = await rawChannel();
  // The requests wait in the queue before serve starts: its worker then gets a prefetch's worth at once.
  await ch.assertQueue(queue, { durable: true });
  const replies: ConsumeMessage[] = [];
  await ch.consume("amq.rabbitmq.reply-to", (msg) => msg && replies.push(msg), { noAck: true });
  const calls = 300;
  // Every third caller asks for batches; the others send what the tutorial's client sends, or a value
  // of the header other than 1 (ignored).
  const asks = (i: number) => i % 3 === 0;
  const others: unknown[] = [undefined, "1", 2, true];
  for (let i = 0; i < calls; i++) {
    const value = asks(i) ? 1 : others[i % others.length];
    const headers = value === undefined ? undefined : { "x-fibrpc-reply-batch": value };
    ch.sendToQueue(queue, Buffer.from(String(i % 40)), {
      replyTo: "amq.rabbitmq.reply-to",
      correlationId: `c${i}`,
      headers,
    });
  }
  const server = await startServe(["--workers", "1", "--queue", queue]);
  const answered = new Map<string, string[]>();
  const count = () => {
    answered.clear();
    for (const msg of replies) {
      if (msg.properties.type === "batch") {
        expect(msg.properties.correlationId).toBeUndefined();
        expect(msg.properties.contentType).toBe("application/json");
        for (const [id, result] of JSON.parse(msg.content.toString()) as [string, string][])
          answered.set(id, [...(answered.get(id) ?? []), `batch:${result}`]);
      } else {
        const id = msg.properties.correlationId as string;
        answered.set(id, [...(answered.get(id) ?? []), `alone:${msg.content.toString()}`]);
      }
    }
    return answered.size;
  };
  await eventually(
    async () => count(),
    (n) => n === calls,
    20_000,
    "every call answered",
  );
  expect(await server.stop()).toBe(0);
  count();
  for (let i = 0; i < calls; i++) {
    const got = answered.get(`c${i}`)!;
    expect(got).toHaveLength(1);
    // A batch only for those who asked; one who asked may still get a reply alone (the only one of its turn).
    if (asks(i)) expect(got[0]).toMatch(new RegExp(`^(batch|alone):${fib(i % 40)}$`));
    else expect(got[0]).toBe(`alone:${fib(i % 40)}`);
  }
  const batches = replies.filter((m) => m.properties.type === "batch");
  expect(batches.length).toBeGreaterThan(0);
  expect(replies.length).toBeLessThan(calls);
});

test("fibrpc's caller reads a batch: each entry answers its call, a bad result is INVALID_REPLY, a bad batch is ignored", async () => {
  const queue = uniqueQueue("fibrpc_batch_fake");
  const { ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  // A server of the test's own: it waits for the four requests, then answers in batches of its making.
  const requests: ConsumeMessage[] = [];
  const all = Promise.withResolvers<void>();
  await ch.consume(queue, (msg) => {
    if (!msg) return;
    expect(msg.properties.headers?.["x-fibrpc-reply-batch"]).toBe(1);
    requests.push(msg);
    ch.ack(msg);
    if (requests.length === 4) all.resolve();
  });
  const call = run(["call", "--json", "--timeout", "3s", "--queue", queue, "1", "2", "3", "4"]);
  await all.promise;
  const id = (n: number) => requests.find((m) => m.content.toString() === String(n))!.properties.correlationId;
  const replyTo = requests[0]!.properties.replyTo as string;
  const batch = (body: string) => ch.publish("", replyTo, Buffer.from(body), { type: "batch" });
  batch("not json");
  batch(JSON.stringify({ [id(1)]: "1" }));
  batch(JSON.stringify([[id(1), "1"], [id(2), "x"], "junk", [42, "7"], ["unknown-call", "5"]]));
  // A duplicate of an answered call is ignored; a plain reply still answers its call.
  batch(JSON.stringify([[id(1), "999"]]));
  ch.publish("", replyTo, Buffer.from("2"), { correlationId: id(3) });
  const result = await call;
  const lines = result.stdout
    .trim()
    .split("\n")
    .map((l) => JSON.parse(l));
  expect(lines.map((l) => [l.n, l.result ?? l.error?.code])).toEqual([
    [1, "1"],
    [2, "INVALID_REPLY"],
    [3, "2"],
    [4, "TIMEOUT"],
  ]);
  expect(result.code).not.toBe(0);
  expect(result.stderr).toContain("ignored a batched reply that is not a JSON array");
  expect(result.stderr).not.toMatch(/\n\s+at /);
});
