/**
 * Replies the broker sends back. serve publishes a pipeline's replies (persistent: call --reply-to --no-wait)
 * mandatory, so that one to a queue deleted meanwhile comes back here instead of vanishing unsaid: its result
 * is lost, and the operator must know which queue to declare again. Said once per queue and channel (a deleted
 * queue sends back every reply after it), the others at debug level.
 */
import type { Message } from "amqplib";
import type { Logger } from "../log.ts";
import { preview } from "./protocol.ts";

/** The channel's "return" listener. */
export function onReturnedReply(log: Logger): (msg: Message) => void {
  const said = new Set<string>();
  return (msg) => {
    const queue = msg.fields.routingKey;
    const why = (msg.fields as { replyText?: string }).replyText ?? "unroutable";
    const what =
      `a persistent reply to queue ${preview(queue)} came back from the broker (${why}): ` +
      "the queue is gone, so its result is lost";
    // At most a few hundred queues remembered: a channel that sees more says the others at debug level.
    if (said.has(queue) || said.size >= 256) {
      log.debug(what);
      return;
    }
    said.add(queue);
    log.warn(`${what}; declare it again (call --reply-to declares it) and send those requests again`);
  };
}
