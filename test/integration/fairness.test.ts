/**
 * Fair dispatch with the default prefetch (50): while a worker computes a heavy request it takes
 * no new requests (a channel-wide basic.qos limit), so they go to the idle worker.
 */
import { expect, test } from "bun:test";
import { rawChannel, startServe, uniqueQueue, cleanupAfterFile } from "../helpers.ts";

cleanupAfterFile();

test("requests sent while one worker computes a heavy request all go to the other worker", async () => {
  const queue = uniqueQueue();
  const a = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"]);
  const b = await startServe(["--workers", "1", "--queue", queue, "--log-level", "debug"]);
  const { ch } = await rawChannel();
  const { queue: callback } = await ch.assertQueue("", { exclusive: true });
  const replies = new Set<string>();
  let allIn: () => void = () => {};
  const done = new Promise<void>((resolve) => (allIn = resolve));
  await ch.consume(callback, (msg) => msg && replies.add(msg.properties.correlationId) && replies.size === 41 && allIn(), { noAck: true });

  ch.sendToQueue(queue, Buffer.from("1000000"), { replyTo: callback, correlationId: "heavy" });
  // Wait until one of the two servers has started computing it (~25 ms of CPU).
  const busy = await Promise.race([a.waitForLog(/computing heavy fib\(1000000\)/).then(() => a), b.waitForLog(/computing heavy fib\(1000000\)/).then(() => b)]);
  const idle = busy === a ? b : a;
  const busyBefore = busy.log.length;
  for (let i = 0; i < 40; i++) ch.sendToQueue(queue, Buffer.from(String(200 + i)), { replyTo: callback, correlationId: `light-${i}` });
  await done;
  await idle.waitForLog(/fib\(239\)/, 5000);
  const servedByBusy = busy.log.slice(busyBefore).match(/fib\(2[0-3]\d\) →/g) ?? [];
  const servedByIdle = idle.log.match(/fib\(2[0-3]\d\) →/g) ?? [];
  expect(servedByBusy).toHaveLength(0);
  expect(servedByIdle).toHaveLength(40);
  expect(await a.stop()).toBe(0);
  expect(await b.stop()).toBe(0);
});
