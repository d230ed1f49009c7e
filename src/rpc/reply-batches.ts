/**
 * Results held for callers that read batched replies, during one event-loop turn (docs/protocol.md,
 * "Batched replies"). The deliveries of one socket read are handled in one turn, so a busy caller's
 * results share messages and the broker routes and delivers one message for several calls. At the end
 * of the turn each reply_to's results leave together (serving-channel.ts writes them, then their acks);
 * a result alone goes as a reply of its own, so nothing waits and one call at a time is answered as before.
 */
import type { Address } from "./delivery.ts";
import { encodeBatchEntry, MAX_BATCH_BYTES, MAX_BATCHED_RESULT, type EncodedMessage } from "./protocol.ts";
import type { InFlight } from "./in-flight.ts";

/** A result on its way to a caller, and the delivery it answers. */
export type Reply = { delivery: InFlight; to: Address; reply: EncodedMessage };

/** One reply_to's results of a turn: each its element of the batch's JSON array (encodeBatchEntry). */
export interface Batch {
  readonly replies: Reply[];
  readonly entries: string[];
  /** The JSON array's bytes so far: a batch stops at MAX_BATCH_BYTES, further results start a new one. */
  bytes: number;
}

/** A text result small enough to share a batched reply (an error, or JSON, goes alone: protocol.ts). */
export function isBatchable(reply: EncodedMessage): boolean {
  return reply.type === undefined && reply.contentType === undefined && reply.body.length <= MAX_BATCHED_RESULT;
}

export class ReplyBatches {
  private held = new Map<string, Batch>();
  private holding = false;

  /** `send` writes one reply_to's batch; it is called at the end of the turn, or when a batch is full. */
  constructor(private readonly send: (replyTo: string, batch: Batch) => void) {}

  /** Holds `reply` until the end of this event-loop turn (its ack is written with the batch). */
  hold(reply: Reply): void {
    const { delivery, to } = reply;
    const entry = encodeBatchEntry(to.correlationId!, reply.reply.body, delivery.span?.headers);
    let batch = this.held.get(to.replyTo);
    if (batch && batch.bytes + entry.length + 1 > MAX_BATCH_BYTES) {
      this.held.delete(to.replyTo);
      this.send(to.replyTo, batch);
      batch = undefined;
    }
    if (!batch) {
      batch = { replies: [], entries: [], bytes: 2 };
      this.held.set(to.replyTo, batch);
    }
    batch.replies.push(reply);
    batch.entries.push(entry);
    batch.bytes += entry.length + 1;
    if (!this.holding) {
      this.holding = true;
      queueMicrotask(this.flush);
    }
  }

  /** Sends what is held now, each reply_to's batch once (at the end of the turn, or before a drain). */
  readonly flush = (): void => {
    this.holding = false;
    const held = this.held;
    if (held.size === 0) return;
    this.held = new Map();
    for (const [replyTo, batch] of held) this.send(replyTo, batch);
  };
}
