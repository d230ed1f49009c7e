/** How the request queue is declared, by broker version and queue type. */
import { expect, test } from "bun:test";
import { joinedNotice, requestQueueOptions, typeTold, wantsClassicStorageV2 } from "../../src/rpc/queue.ts";

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
  expect(requestQueueOptions("q", "classic", true)).toEqual({
    durable: true,
    exclusive: false,
    autoDelete: false,
    arguments: { "x-queue-version": 2 },
  });
});

test("quorum: durable, with a delivery limit above fibrpc's own backstop and a dead-letter queue", () => {
  expect(requestQueueOptions("q", "quorum")).toMatchObject({
    durable: true,
    arguments: { "x-queue-type": "quorum", "x-delivery-limit": 25, "x-dead-letter-routing-key": "q.dead-letter" },
  });
});

/** A channel error as amqplib reports RabbitMQ's refusal of a declaration. */
const refusal = (reason: string) =>
  Object.assign(
    new Error(
      `Operation failed: QueueDeclare; 406 (PRECONDITION-FAILED) with message "PRECONDITION_FAILED - ${reason}"`,
    ),
    { code: 406 },
  );

test.each([
  // RabbitMQ 3.10's words, seen on a real broker.
  [
    "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none",
    "classic",
  ],
  [
    "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'classic' of type 'longstr' but current is the value 'quorum' of type 'longstr'",
    "quorum",
  ],
  [
    "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is the value 'stream' of type 'longstr'",
    "stream",
  ],
  // RabbitMQ 4.3's, as a black-box test on a 4.3.6 node quoted them: no "the value".
  ["inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'stream'", "stream"],
  ["inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received 'classic' but current is 'quorum'", "quorum"],
  ["inequivalent arg 'durable' for queue 'q' in vhost '/': received 'true' but current is 'false'", "classic"],
  ["inequivalent arg 'durable' for queue 'q' in vhost '/': received 'false' but current is 'true'", undefined],
  [
    "inequivalent arg 'x-dead-letter-exchange' for queue 'q' in vhost '/': received the value '' of type 'longstr' but current is none",
    undefined,
  ],
])("the existing queue's type from the refusal %p: %p", (reason, type) => {
  expect(typeTold(refusal(reason))).toBe(type);
});

test("a refusal that is not an inequivalence tells no type", () => {
  expect(
    typeTold(
      new Error(
        "Operation failed: QueueDeclare; 403 (ACCESS-REFUSED) with message \"ACCESS_REFUSED - x-queue-type 'classic' but current is none\"",
      ),
    ),
  ).toBeUndefined();
});

test("joined as it is: the notice names the existing queue's type when it is not the one asked for", () => {
  const differences =
    "inequivalent arg 'x-queue-type' for queue 'q' in vhost '/': received the value 'quorum' of type 'longstr' but current is none";
  expect(joinedNotice("q", "quorum", { declared: false, differences, existingType: "classic" })).toBe(
    `queue "q" already exists as a classic queue, not the quorum queue asked for (${differences}); serving it as it is`,
  );
  expect(
    joinedNotice("q", "classic", {
      declared: false,
      differences: "inequivalent arg 'x-max-length'",
      existingType: "classic",
    }),
  ).toBe(`queue "q" already exists with other settings (inequivalent arg 'x-max-length'); serving it as it is`);
  expect(joinedNotice("q", "classic", { declared: false, differences: "inequivalent arg 'x-max-length'" })).toBe(
    `queue "q" already exists with other settings (inequivalent arg 'x-max-length'); serving it as it is`,
  );
});
