/**
 * rpc/returned-replies.ts: a persistent reply the broker sends back is said once per queue (a deleted
 * queue sends back every reply after it), and a channel remembers at most 256 queues, the others said
 * at debug level, so that a stream of returns to ever-new queues cannot grow its memory.
 */
import { expect, test } from "bun:test";
import type { Message } from "amqplib";
import type { Logger } from "../../src/log.ts";
import { onReturnedReply } from "../../src/rpc/returned-replies.ts";

function returned(queue: string): Message {
  return {
    content: Buffer.from("{}"),
    fields: { routingKey: queue, replyText: "NO_ROUTE" },
    properties: {},
  } as unknown as Message;
}

function recorder() {
  const lines = { warn: [] as string[], debug: [] as string[] };
  const log = {
    warn: (text: string) => lines.warn.push(text),
    debug: (text: string) => lines.debug.push(text),
  } as unknown as Logger;
  return { lines, log };
}

test("one warning per queue, with the broker's reason and what to do; the same queue again at debug level", () => {
  const { lines, log } = recorder();
  const onReturn = onReturnedReply(log);
  for (let i = 0; i < 3; i++) onReturn(returned("results"));
  onReturn(returned("other"));
  expect(lines.warn).toEqual([
    'a persistent reply to queue "results" came back from the broker (NO_ROUTE): the queue is gone, so its result ' +
      "is lost; declare it again (call --reply-to declares it) and send those requests again",
    'a persistent reply to queue "other" came back from the broker (NO_ROUTE): the queue is gone, so its result ' +
      "is lost; declare it again (call --reply-to declares it) and send those requests again",
  ]);
  expect(lines.debug).toHaveLength(2);
});

test("past 256 queues on a channel, the rest are said at debug level", () => {
  const { lines, log } = recorder();
  const onReturn = onReturnedReply(log);
  for (let i = 0; i < 300; i++) onReturn(returned(`q${i}`));
  expect(lines.warn).toHaveLength(256);
  expect(lines.debug).toHaveLength(44);
  expect(lines.debug[0]).toContain('queue "q256" came back');
  // Each listener has its own memory: another channel warns again.
  const other = recorder();
  onReturnedReply(other.log)(returned("q0"));
  expect(other.lines.warn).toHaveLength(1);
});
