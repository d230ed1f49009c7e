/**
 * The frame writer (src/rpc/wire.ts) writes into amqplib's private connection internals. These
 * tests fail if the pinned amqplib stops matching what it expects: it must attach to a real
 * connection, and what it publishes and acks must reach the broker. A fallback to amqplib's own
 * methods must be loud: logged, and counted in /metrics.
 */
import { expect, test } from "bun:test";
import { openWire } from "../../src/rpc/wire.ts";
import {
  cleanupAfterFile,
  eventually,
  queueStats,
  rawChannel,
  run,
  startServe,
  uniqueQueue,
  metricValues,
  scrapeMetrics,
  freePort,
} from "../helpers.ts";

cleanupAfterFile();

test("with the pinned amqplib the frame writer attaches, and what it publishes and acks reaches the broker", async () => {
  const queue = uniqueQueue();
  const { conn, ch } = await rawChannel();
  await ch.assertQueue(queue, { durable: true });
  const writer = openWire(conn, ch);
  expect(writer?.kind).toBe("wire");
  const received = new Promise<{ body: string; correlationId: string; headers: unknown }>((resolve) => {
    void ch.consume(queue, (msg) => {
      if (!msg) return;
      writer!.ack(msg);
      resolve({
        body: msg.content.toString(),
        correlationId: msg.properties.correlationId,
        headers: msg.properties.headers,
      });
    });
  });
  writer!.publish(queue, Buffer.from("832040"), {
    correlationId: "c-1",
    headers: { "x-fibrpc-deadline": 1_800_000_000_000, small: 3 },
  });
  expect(await received).toEqual({
    body: "832040",
    correlationId: "c-1",
    headers: { "x-fibrpc-deadline": 1_800_000_000_000, small: 3 },
  });
  // The ack took effect: nothing left, nothing redelivered when the channel closes.
  await ch.close();
  expect(
    await eventually(
      () => queueStats(queue),
      (s) => s.messageCount === 0,
      5_000,
      "queue empty",
    ),
  ).toMatchObject({ messageCount: 0 });
});

const metric = async (port: number, name: string) => metricValues(await scrapeMetrics(port))[name] ?? Number.NaN;

test("serve uses the frame writer: no fallback counted", async () => {
  const queue = uniqueQueue();
  const port = await freePort();
  const server = await startServe(["--workers", "2", "--queue", queue, "--http-port", String(port)]);
  expect(await run(["call", "--queue", queue, "30"])).toMatchObject({ code: 0, stdout: "832040\n" });
  expect(await metric(port, "fibrpc_outlet_fallbacks_total")).toBe(0);
  expect(server.log).not.toContain("frame writer could not attach");
  expect(await server.stop()).toBe(0);
});

test("a fallback to amqplib's own publish and ack is logged and counted, and serving goes on", async () => {
  const queue = uniqueQueue();
  const port = await freePort();
  const server = await startServe(["--workers", "2", "--queue", queue, "--http-port", String(port)], {
    FIBRPC_TEST_FAULTS: "no-frame-writer=1",
  });
  expect(await run(["call", "--queue", queue, "0", "30", "100"])).toMatchObject({
    code: 0,
    stdout: "0\n832040\n354224848179261915075\n",
  });
  expect(await metric(port, "fibrpc_outlet_fallbacks_total")).toBe(2); // one channel per worker
  expect(server.log.match(/frame writer could not attach/g)).toHaveLength(2);
  expect(await server.stop()).toBe(0);
});
