/**
 * What changed between the RabbitMQ releases users run, tested on the release the suite runs
 * against (FIBRPC_TEST_BROKER), with the broker's behaviour stated per release and fibrpc's the
 * same on all:
 * - Quorum queues count deliveries for their delivery limit. Up to 4.0 every return counts
 *   (x-delivery-count); from 4.3 on only failed deliveries do (a nack with requeue does not, a
 *   consumer's connection closing does), and x-acquired-count counts every delivery. fibrpc's
 *   backstop against a request that kills whole serve processes reads x-delivery-count, which
 *   a lost connection moves on every release.
 * - Direct Reply-to from 4.2 on treats a reply address as a queue for routing: a mandatory
 *   reply to a caller that has gone is not returned (before, basic.return NO_ROUTE). fibrpc does
 *   not depend on either: its replies are not mandatory, and a reply to a caller that has gone
 *   is dropped by the broker while the request is acked once.
 */
import { describe, expect, test } from "bun:test";
import { connect, type ConsumeMessage } from "amqplib";
import { deadLetterQueueName, QUORUM_DELIVERY_LIMIT } from "../../src/rpc/queue.ts";
import { REDELIVERY_LIMIT } from "../../src/rpc/protocol.ts";
import { BROKER_RELEASE, rabbitmqctlJson, releaseAtLeast } from "../broker.ts";
import { addressOfACallerWhoseNodeIsGone, REPLY_TO_A_GONE_NODE_CLOSES } from "../gone-caller.ts";
import {
  URL,
  alsoDelete,
  eventually,
  queueStats,
  rawChannel,
  run,
  startServe,
  uniqueQueue,
  cleanupAfterFile,
} from "../helpers.ts";

cleanupAfterFile();

/** Whether a requeueing nack counts as a failed delivery (before 4.3 every return counts; from 4.3 on x-acquired-count counts every delivery). */
const NACK_COUNTS = !releaseAtLeast(4, 3);
/** Whether a mandatory publish to a Direct Reply-to address whose caller has gone comes back (before 4.2). */
const DEAD_REPLY_ADDRESS_RETURNED = !releaseAtLeast(4, 2);

const header = (msg: ConsumeMessage, name: string) => msg.properties.headers?.[name] as number | undefined;

/** A quorum request queue declared by serve (with its delivery limit and dead-letter queue), and no server on it. */
async function quorumQueueWithoutServer(): Promise<string> {
  const queue = uniqueQueue();
  alsoDelete(deadLetterQueueName(queue));
  const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum"]);
  expect(await server.stop()).toBe(0);
  return queue;
}

/** A caller's exclusive reply queue and a promise of the first reply's body. */
async function caller() {
  const { ch } = await rawChannel();
  const { queue: replyTo } = await ch.assertQueue("", { exclusive: true });
  const reply = new Promise<string>(
    (resolve) => void ch.consume(replyTo, (msg) => msg && resolve(msg.content.toString()), { noAck: true }),
  );
  return { ch, replyTo, reply };
}

describe(`quorum queues' delivery count on RabbitMQ ${BROKER_RELEASE}`, () => {
  test(
    NACK_COUNTS
      ? `a requeueing nack counts: past the delivery limit (${QUORUM_DELIVERY_LIMIT}) the broker dead-letters the request`
      : "a requeueing nack does not count (x-delivery-count stays unset, x-acquired-count counts): the request stays, and serve answers it",
    async () => {
      const queue = await quorumQueueWithoutServer();
      const { ch, replyTo, reply } = await caller();
      ch.sendToQueue(queue, Buffer.from("25"), { replyTo, correlationId: "nacked" });

      // A consumer that gives the request back with a requeueing nack, again and again.
      const nacks = NACK_COUNTS ? QUORUM_DELIVERY_LIMIT + 5 : 30;
      const { ch: returner } = await rawChannel();
      await returner.prefetch(1);
      const seen: { deliveryCount?: number; acquiredCount?: number; redelivered: boolean }[] = [];
      let enough: () => void = () => {};
      const nackedEnough = new Promise<void>((resolve) => (enough = resolve));
      const { consumerTag } = await returner.consume(queue, (msg) => {
        if (!msg) return;
        seen.push({
          deliveryCount: header(msg, "x-delivery-count"),
          acquiredCount: header(msg, "x-acquired-count"),
          redelivered: msg.fields.redelivered,
        });
        if (seen.length >= nacks) {
          enough();
          returner.ack(msg); // taken: nothing more to see
          return;
        }
        returner.nack(msg, false, true);
      });

      if (NACK_COUNTS) {
        // The broker stops delivering it once its count passes the limit, and dead-letters it.
        await eventually(
          () => queueStats(deadLetterQueueName(queue)),
          (s) => s.messageCount === 1,
          30_000,
          "the request in the dead-letter queue",
        );
        await returner.cancel(consumerTag);
        expect(seen).toHaveLength(QUORUM_DELIVERY_LIMIT + 1); // the first delivery and one per count up to the limit
        expect(seen.map((s) => s.deliveryCount)).toEqual([
          undefined,
          ...Array.from({ length: QUORUM_DELIVERY_LIMIT }, (_, i) => i + 1),
        ]);
        expect(seen.every((s) => s.acquiredCount === undefined)).toBe(true);
        expect((await queueStats(queue)).messageCount).toBe(0);
        return;
      }
      await nackedEnough;
      await returner.cancel(consumerTag);
      expect(seen).toHaveLength(nacks);
      // Never counted as failed; every delivery counted as acquired; the broker kept it.
      expect(seen.every((s) => s.deliveryCount === undefined || s.deliveryCount === 0)).toBe(true);
      expect(seen.slice(1).map((s) => s.acquiredCount)).toEqual(Array.from({ length: nacks - 1 }, (_, i) => i + 1));
      expect((await queueStats(deadLetterQueueName(queue))).messageCount).toBe(0);
      // The last delivery was acked by the returner; send another and let serve answer it.
      ch.sendToQueue(queue, Buffer.from("25"), { replyTo, correlationId: "served" });
      const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum"]);
      expect(await reply).toBe("75025");
      expect(await server.stop()).toBe(0);
    },
  );

  test(`a request that takes every consumer's connection down is answered POISON_REQUEST after ${REDELIVERY_LIMIT} redeliveries (a lost connection counts on every release)`, async () => {
    const queue = await quorumQueueWithoutServer();
    const { ch, replyTo, reply } = await caller();
    ch.sendToQueue(queue, Buffer.from("25"), { replyTo, correlationId: "poison" });
    // What a serve process killed while computing it looks like to the broker: the delivery's
    // connection goes away without an ack.
    const counts: (number | undefined)[] = [];
    for (let i = 0; i < REDELIVERY_LIMIT; i++) {
      const conn = await connect(URL);
      const consumer = await conn.createChannel();
      await consumer.prefetch(1);
      const msg = await new Promise<ConsumeMessage>((resolve) => void consumer.consume(queue, (m) => m && resolve(m)));
      counts.push(header(msg, "x-delivery-count"));
      await conn.close();
    }
    expect(counts).toEqual([undefined, ...Array.from({ length: REDELIVERY_LIMIT - 1 }, (_, i) => i + 1)]);
    const server = await startServe(["--workers", "1", "--queue", queue, "--queue-type", "quorum"]);
    const answer = await reply;
    expect(answer).toContain("POISON_REQUEST");
    expect(answer).toContain(`redelivered ${REDELIVERY_LIMIT} times`);
    await eventually(
      () => queueStats(queue),
      (s) => s.messageCount === 0,
      10_000,
      "the request acked",
    );
    expect((await queueStats(deadLetterQueueName(queue))).messageCount).toBe(0);
    expect(await server.stop()).toBe(0);
  });
});

describe(`Direct Reply-to on RabbitMQ ${BROKER_RELEASE}`, () => {
  test(
    DEAD_REPLY_ADDRESS_RETURNED
      ? "a mandatory publish to a caller that has gone comes back NO_ROUTE; serve's reply to it is dropped, its request acked once"
      : "a mandatory publish to a caller that has gone is routed and not returned (4.2+); serve's reply to it is dropped, its request acked once",
    async () => {
      const queue = uniqueQueue();
      const { ch: admin } = await rawChannel();
      await admin.assertQueue(queue, { durable: true });
      // A Direct Reply-to caller sends a request, then goes away before any server runs.
      const conn = await connect(URL);
      const gone = await conn.createChannel();
      await gone.consume("amq.rabbitmq.reply-to", () => {}, { noAck: true });
      gone.sendToQueue(queue, Buffer.from("30"), { replyTo: "amq.rabbitmq.reply-to", correlationId: "gone" });
      const { messageCount } = await eventually(
        () => queueStats(queue),
        (s) => s.messageCount === 1,
        10_000,
        "the request queued",
      );
      expect(messageCount).toBe(1);
      const peek = await admin.get(queue, { noAck: false });
      if (!peek) throw new Error("the request is not in the queue");
      const address = peek.properties.replyTo as string;
      expect(address.startsWith("amq.rabbitmq.reply-to.")).toBe(true);
      admin.nack(peek, false, true);
      await conn.close();

      // The broker, per release: a mandatory publish to that address.
      const confirmConn = await connect(URL);
      const confirms = await confirmConn.createConfirmChannel();
      const returned: string[] = [];
      confirms.on("return", (msg: ConsumeMessage) =>
        returned.push(String((msg.fields as unknown as { replyText: string }).replyText)),
      );
      confirms.publish("", address, Buffer.from("a reply"), { mandatory: true });
      // basic.return comes before the publisher confirm of the same message.
      await confirms.waitForConfirms();
      await confirmConn.close();
      expect(returned).toEqual(DEAD_REPLY_ADDRESS_RETURNED ? ["NO_ROUTE"] : []);

      // fibrpc, on every release: the reply is dropped, the request acked once, the connection kept.
      const server = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"]);
      await eventually(
        () => queueStats(queue),
        (s) => s.messageCount === 0,
        10_000,
        "the request taken and acked",
      );
      const call = await run(["call", "--queue", queue, "30"]);
      expect(call.stdout).toBe("832040\n");
      expect(call.code).toBe(0);
      expect(server.log).not.toMatch(/lost|returned|unexpected/);
      expect(await server.stop()).toBe(0);
      expect((await queueStats(queue)).messageCount).toBe(0);
    },
  );

  // RabbitMQ 3.10 closes the connection that publishes to such an address with 541 INTERNAL_ERROR (its channel
  // crashes: rabbit_channel, deliver_reply, case_clause): a caller on a cluster node that has just died. The
  // request's first reply costs serve that connection; it comes back redelivered, and its reply then goes on a
  // connection of its own (src/rpc/isolated-replies.ts), so it is acked and closes no other. On a quorum queue
  // it used to come back again and again (the ack written ahead of its reply lost with the connection), closing
  // each new connection, until the poison backstop refused it.
  /**
   * serve answers a request to `replyTo` (then a second one, once the first is acked), and a call; its log once
   * stopped, and how often a reply closed its connection.
   */
  async function serveTwoRequestsTo(replyTo: string, args: string[], env: Record<string, string> = {}) {
    const queue = uniqueQueue();
    alsoDelete(deadLetterQueueName(queue)); // a quorum request queue's, declared by serve
    const server = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug", ...args], env);
    const { ch: admin } = await rawChannel();
    // Acked, not merely taken: no message of the queue's is left, ready or unacknowledged.
    const acked = () =>
      eventually(
        async () => (await rabbitmqctlJson(["list_queues", "name", "messages"])).find((q) => q.name === queue),
        (row) => row?.messages === 0,
        10_000,
        "the request acked",
      );
    for (const id of ["gone-node-1", "gone-node-2"]) {
      admin.sendToQueue(queue, Buffer.from("30"), { replyTo, correlationId: id, deliveryMode: 2 });
      await eventually(
        () => queueStats(queue),
        (stats) => stats.messageCount === 0,
        10_000,
        "the request taken",
      );
      await acked();
    }
    const call = await run(["call", "--queue", queue, "--timeout", "20s", "--wait-for-server", "8"]);
    expect(call.stdout).toBe("21\n");
    expect(server.log).not.toMatch(/refused a request|died/);
    expect(await server.stop()).toBe(0);
    // Each close of serve's connection by a reply (the connection apart closes are logged at debug only).
    const closes = server.log.match(/ lost \(closed by the broker: [^\n]*541 INTERNAL_ERROR/g)?.length ?? 0;
    return { log: server.log, closes };
  }

  for (const queueType of ["classic", "quorum"] as const)
    test(`a reply to a caller whose node is gone (${queueType} queue): on RabbitMQ 3.x only its first reply closes serve's connection, and the request is acked`, async () => {
      const { log, closes } = await serveTwoRequestsTo(await addressOfACallerWhoseNodeIsGone(), [
        "--queue-type",
        queueType,
      ]);
      console.log(`[direct reply-to] ${queueType}: serve's connection closed ${closes} time(s) by the reply`);
      if (closes > 1) console.log(log);
      // The first reply's close (3.x), and no other: the redelivered request's reply went apart, and closed that;
      // the second request to that address was acked without a reply (nobody to answer).
      expect(closes).toBe(REPLY_TO_A_GONE_NODE_CLOSES ? 1 : 0);
      if (REPLY_TO_A_GONE_NODE_CLOSES) expect(log).toContain("closed its connection (541): its caller's node is gone");
      // Replies written: 3.x the first (lost with its connection), the redelivery's apart, and the call; 4.3 the
      // two requests' (dropped by the broker) and the call. The second request on 3.x is acked without one: not
      // counted as answered (it was, before).
      expect(log).toContain(", 3 requests answered");
    });

  // The fallback, where the connection apart cannot be opened (a connection limit): the reply of the request
  // seen before goes on the serving channel, its ack written ahead of it, which on a classic queue holds.
  test("the same where serve cannot open a connection apart (classic queue): the reply goes on the serving connection, acked first: on 3.x two closes per request, then acked", async () => {
    const { log, closes } = await serveTwoRequestsTo(
      await addressOfACallerWhoseNodeIsGone(),
      ["--queue-type", "classic"],
      { FIBRPC_TEST_FAULTS: "no-isolated-connection=1" },
    );
    // On 4.3 the first reply goes through and no request is seen twice: nothing is sent apart.
    if (REPLY_TO_A_GONE_NODE_CLOSES)
      expect(log).toContain("could not open a connection for replies to callers seen before: injected");
    // 3.x: each request's first reply closes it, then its redelivery's (acked ahead of it: it does not come back).
    expect(closes).toBe(REPLY_TO_A_GONE_NODE_CLOSES ? 4 : 0);
  });
});
