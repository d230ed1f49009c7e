/** How the request queue is declared, by broker version and queue type. */
import { expect, test } from "bun:test";
import { requestQueueOptions, wantsClassicStorageV2 } from "../../src/rpc/queue.ts";

test.each([
  ["3.10.8", true],
  ["3.11.28", true],
  ["3.12.0", false],
  ["3.13.7", false],
  ["4.0.5", false],
  ["4.3.0", false],
  [undefined, false],
  ["garbage", false],
])("broker %p: ask for classic storage v2 → %p", (version, wanted) => {
  expect(wantsClassicStorageV2(version)).toBe(wanted);
});

test("classic: durable, never transient-non-exclusive, no argument RabbitMQ 4.3 refuses", () => {
  expect(requestQueueOptions("q", "classic")).toEqual({ durable: true, exclusive: false, autoDelete: false });
  expect(requestQueueOptions("q", "classic", true)).toEqual({ durable: true, exclusive: false, autoDelete: false, arguments: { "x-queue-version": 2 } });
});

test("quorum: durable, with a delivery limit above fibrpc's own backstop and a dead-letter queue", () => {
  expect(requestQueueOptions("q", "quorum")).toMatchObject({ durable: true, arguments: { "x-queue-type": "quorum", "x-delivery-limit": 25, "x-dead-letter-routing-key": "q.dead-letter" } });
});
