/**
 * rpc/isolated-replies.ts against the suite's broker: a reply apart to a caller that is there is confirmed and
 * delivered; to a caller whose node is gone (test/gone-caller.ts) it closes its connection on RabbitMQ 3.x
 * ("caller-gone", remembered: the next reply there opens nothing) and is dropped on 4.3; a connection that cannot
 * be opened fails the reply at once, and no other is tried for a while; after close() replies fail at once.
 */
import { expect, test } from "bun:test";
import { type ChannelModel, connect } from "amqplib";
import type { Logger } from "../../src/log.ts";
import { IsolatedReplies } from "../../src/rpc/isolated-replies.ts";
import {
  addressOfACallerWhoseNodeIsGone,
  directReplyToAddressOf,
  REPLY_TO_A_GONE_NODE_CLOSES,
} from "../gone-caller.ts";
import { cleanupAfterFile, URL } from "../helpers.ts";

cleanupAfterFile();

function recorder() {
  const debug: string[] = [];
  const warn: string[] = [];
  const log = {
    debug: (text: string) => debug.push(text),
    warn: (text: string) => warn.push(text),
  } as unknown as Logger;
  return { debug, warn, log };
}

/** IsolatedReplies on connections to the suite's broker, counting those opened. */
function isolated(open: () => Promise<ChannelModel> = () => connect(URL)) {
  const { debug, warn, log } = recorder();
  let opened = 0;
  const replies = new IsolatedReplies(() => {
    opened++;
    return open();
  }, log);
  return { replies, debug, warn, opened: () => opened };
}

test("a caller that is there: the reply is confirmed and delivered, on one connection for several", async () => {
  const conn = await connect(URL);
  try {
    const caller = await conn.createChannel();
    const received: string[] = [];
    const both = Promise.withResolvers<void>();
    await caller.consume(
      "amq.rabbitmq.reply-to",
      (msg) => {
        if (msg) received.push(msg.content.toString());
        if (received.length === 2) both.resolve();
      },
      { noAck: true },
    );
    const address = await directReplyToAddressOf(caller);
    expect(address).toStartWith("amq.rabbitmq.reply-to.");
    const { replies, opened } = isolated();
    try {
      expect(await replies.send(address, Buffer.from("832040"), { correlationId: "a" })).toBe("confirmed");
      expect(await replies.send(address, Buffer.from("21"), { correlationId: "b" })).toBe("confirmed");
      expect(opened()).toBe(1);
      const timeout = setTimeout(() => both.reject(new Error(`replies received: ${received.join(", ")}`)), 10_000);
      await both.promise.finally(() => clearTimeout(timeout));
      expect(received).toEqual(["832040", "21"]);
    } finally {
      await replies.close();
    }
  } finally {
    await conn.close();
  }
});

test(`a caller whose node is gone: ${REPLY_TO_A_GONE_NODE_CLOSES ? "caller-gone, remembered (the next reply there opens nothing)" : "dropped and confirmed (RabbitMQ 4.3)"}`, async () => {
  const gone = await addressOfACallerWhoseNodeIsGone();
  const { replies, debug, opened } = isolated();
  try {
    const first = await replies.send(gone, Buffer.from("832040"), { correlationId: "a" });
    if (!REPLY_TO_A_GONE_NODE_CLOSES) {
      expect(first).toBe("confirmed");
      expect(replies.isGone(gone)).toBe(false);
      return;
    }
    expect(first).toBe("caller-gone");
    expect(replies.isGone(gone)).toBe(true);
    expect(debug.join("\n")).toContain("closed its connection (541): its caller's node is gone");
    expect(await replies.send(gone, Buffer.from("21"), { correlationId: "b" })).toBe("caller-gone");
    expect(opened()).toBe(1);
  } finally {
    await replies.close();
  }
});

test("a connection that cannot be opened: the reply fails at once, and none is tried again for a while", async () => {
  const { replies, warn, opened } = isolated(() => Promise.reject(new Error("connection limit reached")));
  const address = await addressOfACallerWhoseNodeIsGone();
  expect(await replies.send(address, Buffer.from("1"), {})).toBe("failed");
  expect(await replies.send(address, Buffer.from("1"), {})).toBe("failed");
  expect(opened()).toBe(1);
  // Said once, as a warning: the fallback can bring back what the connection apart is for.
  expect(warn).toEqual([
    "could not open a connection for replies to callers seen before: connection limit reached; for 30 s their " +
      'replies go on the serving connection, acked ahead of them (docs/operations.md, "Callers on a cluster")',
  ]);
  await replies.close();
});

test("after close(), replies end stopped at once without connecting (a drain leaves their requests unacked)", async () => {
  const { replies, opened } = isolated();
  await replies.close();
  expect(await replies.send("amq.rabbitmq.reply-to.x.y", Buffer.from("1"), {})).toBe("stopped");
  expect(opened()).toBe(0);
});

test("close() while a reply is still connecting and another waits: both end stopped at once", async () => {
  const connecting = Promise.withResolvers<void>();
  // A connection that never opens: the first reply is under way (connecting) once it is asked for.
  const { replies, debug, opened } = isolated(() => {
    connecting.resolve();
    return new Promise(() => {});
  });
  const first = replies.send("amq.rabbitmq.reply-to.x.y", Buffer.from("1"), {});
  const second = replies.send("amq.rabbitmq.reply-to.x.y", Buffer.from("2"), {});
  await connecting.promise;
  await replies.close();
  expect(opened()).toBe(1);
  expect(debug.join("\n")).not.toContain("took over"); // ended by close(), not by its 5 s running out
  expect(await first).toBe("stopped");
  expect(await second).toBe("stopped");
}, 20_000);

test("a connection that opens too late: the reply fails after 5 s, and the connection is closed once it comes", async () => {
  let connected: ((model: ChannelModel) => void) | undefined;
  const { replies, debug } = isolated(() => new Promise((resolve) => (connected = resolve)));
  const started = performance.now();
  expect(await replies.send("amq.rabbitmq.reply-to.x.y", Buffer.from("1"), {})).toBe("failed");
  expect(performance.now() - started).toBeGreaterThanOrEqual(4_900);
  expect(debug.join("\n")).toContain("took over 5000 ms on its connection apart: given up there");
  const model = await connect(URL);
  const closed = new Promise<void>((resolve) => model.once("close", () => resolve()));
  connected!(model);
  await closed; // not kept, nor used for the next reply: closed (the test's timeout bounds the wait)
  await replies.close();
}, 20_000);
