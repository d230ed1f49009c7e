/**
 * One channel a server consumes on, made by each connection's set-up (server.ts), and the one
 * write each of its deliveries ends with (settle): at most one publish and exactly one ack,
 * through the channel's outlet; for a caller that reads batched replies, held to the end of the
 * event-loop turn and shared with its other results (reply-batches.ts); for a request seen before
 * that replies to Direct Reply-to, the reply apart and the ack once it is done (isolated-replies.ts).
 * When the channel closes, `open` turns false and the server drops the object whole: the broker
 * has put the channel's unacked deliveries back in the queue, so nothing more is written for them,
 * and nothing else has to be cleared.
 */
import type { Channel, ChannelModel } from "amqplib";
import type { Logger } from "../log.ts";
import type { Address } from "./delivery.ts";
import { isDirectReplyTo } from "./direct-reply-to.ts";
import type { Ending, InFlight } from "./in-flight.ts";
import type { IsolatedReplies } from "./isolated-replies.ts";
import type { Outlet, PublishProperties } from "./outlet.ts";
import { BATCH_REPLY_TYPE, encodeBatchOf, JSON_CONTENT_TYPE, preview, type EncodedMessage } from "./protocol.ts";
import type { QueueType } from "./queue.ts";
import { isBatchable, ReplyBatches, type Batch } from "./reply-batches.ts";
import { onReturnedReply } from "./returned-replies.ts";
import { CopyChannel, copyOf } from "./requeue-copy.ts";
import type { Peer } from "../tracing/tracer.ts";

/** What a channel needs from the server that made it. */
export interface ChannelHost {
  readonly queue: string;
  readonly prefetch: number;
  readonly log: Logger;
  /** Where replies of requests seen before go to Direct Reply-to addresses (see settle). */
  readonly isolated: IsolatedReplies;
  /** The broker closed the channel with an error while it was consuming. */
  failed(err: Error): void;
  /** The channel closed (its `open` is false already). */
  closed(via: ServingChannel): void;
}

export class ServingChannel {
  /** False once the channel has closed. */
  open = true;
  /** True once the consumer runs (scheduler.ts): errors before that, set-up reports (server.ts). */
  consuming = false;
  /** Set once, before the first consumer (see create). */
  private outlet!: Outlet;
  /** This turn's results for callers that read batched replies, sent by sendBatch (reply-batches.ts). */
  private readonly batches = new ReplyBatches((replyTo, batch) => this.sendBatch(replyTo, batch));
  /** Copies put back in a quorum queue, each original acked once its copy is confirmed (requeue-copy.ts). */
  private readonly copies: CopyChannel;
  /** Replies under way on the server's isolated connection (see settle), each acked here once sent. */
  private readonly apart = new Set<Promise<void>>();

  /**
   * A new channel on `model`, its prefetch set and its outlet chosen (`outletFor`, outlet.ts).
   * `countAs`: how redeliveries are counted on this connection (server.ts, declareAndConsume);
   * `peer`: the broker it is on (for tracing's server.address and server.port).
   */
  static async create(
    model: ChannelModel,
    host: ChannelHost,
    countAs: QueueType,
    outletFor: (channel: Channel) => Outlet,
    peer?: Peer,
  ): Promise<ServingChannel> {
    const serving = new ServingChannel(model, await model.createChannel(), host, countAs, peer);
    // Per consumer (global=false): RabbitMQ 4.3 refuses a channel-wide limit by default.
    await serving.channel.prefetch(host.prefetch);
    serving.outlet = outletFor(serving.channel);
    return serving;
  }

  private constructor(
    readonly model: ChannelModel,
    /** amqplib's channel: its consumers are the scheduler's (scheduler.ts). */
    readonly channel: Channel,
    private readonly host: ChannelHost,
    readonly countAs: QueueType,
    readonly peer: Peer | undefined,
  ) {
    this.copies = new CopyChannel(model, host.log);
    channel.on("error", (err: Error) => {
      host.log.debug(`channel error: ${err.message}`);
      // During set-up, the failed operation says what went wrong (connection.ts, setup).
      if (this.consuming) host.failed(err);
    });
    channel.on("close", () => {
      this.open = false;
      host.closed(this);
    });
    channel.on("return", onReturnedReply(host.log));
  }

  /**
   * Writes how `delivery` ends, at most one publish and exactly one ack, in one socket write with
   * the frame writer; a result for a caller that reads batched replies is held with its ack and
   * written at the end of this event-loop turn (reply-batches.ts), and a reply apart's ack once the
   * reply is done (below), unless the channel closes first. Returns what it did: `ending`, or the ack
   * alone for a caller known to be gone; undefined if
   * its channel is gone (the broker has put the request back for another try): nothing is
   * written. A copy that cannot be encoded throws, with nothing written; a reply that cannot be
   * sent is logged, never thrown: it must not cost the channel. The ack goes only on the channel
   * the delivery came on, and only once: an unknown or repeated delivery tag would make the broker
   * close the channel (406 PRECONDITION_FAILED).
   *
   * The reply goes first, so a server dying in between leaves the request to be redelivered
   * (RabbitMQ docs, "Consumer Acknowledgements and Publisher Confirms"; callers ignore the
   * duplicate reply that may follow). A request seen before whose reply goes to a Direct Reply-to
   * address is answered on a connection of its own, and acked here once that is done: RabbitMQ 3.x
   * closes the connection that replies to a caller whose node has died (isolated-replies.ts). A reply
   * to an address found so is not sent at all: the request is acked.
   */
  settle(delivery: InFlight, ending: Ending): Ending | undefined {
    if (!this.open) return undefined;
    const { outlet, host } = this;
    const { msg } = delivery;
    if (ending.kind === "requeue") {
      const copy = copyOf(msg, ending);
      if (this.countAs === "quorum") {
        delivery.acked = true; // once its copy is confirmed, if the channel is open (else the broker has it back)
        this.copies.putBack(host.queue, msg, copy, { outlet, open: () => this.open });
        return ending;
      }
      outlet.publish(host.queue, msg.content, copy);
    } else if (ending.kind === "reply" && ending.to) {
      const { to, reply } = ending;
      if (isDirectReplyTo(to.replyTo) && !delivery.acked) {
        // A caller whose node is gone, as a reply apart found: nobody to answer, and a reply would close this.
        if (host.isolated.isGone(to.replyTo)) {
          delivery.acked = true;
          outlet.ack(msg);
          return { kind: "ack" };
        }
        if (!delivery.firstDelivery) {
          delivery.acked = true;
          this.replyApart(delivery, to, reply);
          return ending;
        }
      }
      // Redelivered requests and errors are never held.
      if (to.batch && delivery.firstDelivery && isBatchable(reply)) {
        delivery.acked = true;
        this.batches.hold({ delivery, to, reply });
        return ending;
      }
      this.publishReply(delivery, to, reply);
    }
    if (!delivery.acked) {
      delivery.acked = true;
      outlet.ack(msg);
    }
    return ending;
  }

  /**
   * A reply on the server's isolated connection, then the ack here; a reply that could not be sent there is sent
   * here, acked first: the broker handles the ack before the publish that follows it in the same write.
   */
  private replyApart(delivery: InFlight, to: Address, reply: EncodedMessage): void {
    const sent = this.host.isolated.send(to.replyTo, reply.body, propertiesOf(delivery, to, reply)).then((outcome) => {
      // Closed meanwhile: the broker has put the request back in the queue; nothing is written. Stopped (a drain):
      // left unacked for the broker to put back, not sent here (a dead caller's reply would close this connection).
      if (!this.open || outcome === "stopped") return;
      if (outcome !== "failed") return this.outlet.ack(delivery.msg);
      this.outlet.ackFirst(delivery.msg);
      this.publishReply(delivery, to, reply);
    });
    const settled = sent.catch((err) => this.host.log.debug(`could not ack a request answered apart: ${err}`));
    this.apart.add(settled);
    void settled.finally(() => this.apart.delete(settled));
  }

  /** One reply, as the tutorial's server sends it (plus the process span's context, with tracing on). */
  private publishReply(delivery: InFlight, to: Address, reply: EncodedMessage): void {
    try {
      this.outlet.publish(to.replyTo, reply.body, propertiesOf(delivery, to, reply), mandatoryFor(to));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.host.log.warn(`could not send a reply to ${preview(to.replyTo)}: ${message}`, delivery.span?.ids);
    }
  }

  /**
   * One reply_to's held results and then their acks. Never throws: it runs in a microtask, where a throw
   * would end the worker (an ack on a connection closing under it throws, with amqplib's own outlet).
   */
  private sendBatch(replyTo: string, { replies, entries }: Batch): void {
    // Closed meanwhile: the broker has put these requests back in the queue; nothing is written.
    if (!this.open) return;
    const [first] = replies;
    if (replies.length === 1) this.publishReply(first!.delivery, first!.to, first!.reply);
    else {
      try {
        const deliveryMode = replies.some((r) => r.to.persistent) ? 2 : undefined;
        const properties = { type: BATCH_REPLY_TYPE, contentType: JSON_CONTENT_TYPE, deliveryMode } as const;
        this.outlet.publish(
          replyTo,
          encodeBatchOf(entries),
          properties,
          replies.some((r) => mandatoryFor(r.to)),
        );
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        this.host.log.warn(`could not send ${replies.length} replies to ${preview(replyTo)}: ${message}`);
      }
    }
    try {
      for (const { delivery } of replies) this.outlet.ack(delivery.msg);
    } catch (err) {
      // The channel is going: the broker puts back whatever was not acked.
      this.host.log.debug(`could not ack ${replies.length} requests: ${err instanceof Error ? err.message : err}`);
    }
  }

  /**
   * Resolves once the replies and acks held this turn, or while the socket was full, are written, and the copies
   * put back are confirmed and their originals acked.
   */
  async flushed(): Promise<void> {
    this.batches.flush();
    await Promise.all(this.apart);
    await this.copies.settled();
    return this.outlet.flushed();
  }

  close(): Promise<void> {
    return this.channel.close().catch(() => {});
  }
}

/** A reply's properties: the tutorial's, plus the process span's context with tracing on (tracing/tracer.ts). */
function propertiesOf(delivery: InFlight, to: Address, reply: EncodedMessage): PublishProperties {
  const { contentType, type } = reply;
  const properties: PublishProperties = { correlationId: to.correlationId, contentType, type };
  // For a durable reply queue (a pipeline's, call --no-wait), the answer of a persistent request is persistent.
  if (to.persistent) properties.deliveryMode = 2;
  if (delivery.span) properties.headers = { ...delivery.span.headers };
  return properties;
}

/**
 * A persistent request's reply (a pipeline's: call --no-wait) is mandatory: if its queue was deleted meanwhile the
 * broker sends it back (returned-replies.ts) instead of dropping it unsaid. Not a waiting caller's (its caller may
 * have left, as the tutorial allows), nor a Direct Reply-to address (the broker returns every mandatory one).
 */
function mandatoryFor(to: Address): boolean {
  return to.persistent === true && !isDirectReplyTo(to.replyTo);
}
