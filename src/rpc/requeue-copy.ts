/**
 * The copy of a delivered request that serve puts back in the queue (a heavy request waiting its turn at a drain,
 * a request past its redelivery count): serving-channel.ts publishes it in place of a nack.
 */
import type { ChannelModel, ConfirmChannel, ConsumeMessage } from "amqplib";
import type { Logger } from "../log.ts";
import { MAX_EXPIRATION_MS } from "./delivery.ts";
import type { Outlet, PublishProperties } from "./outlet.ts";
import type { Requeue } from "./in-flight.ts";
import { ATTEMPTS_HEADER, DEADLINE_HEADER, REPLY_FORMAT_HEADER } from "./protocol.ts";
import { TRACEPARENT, TRACESTATE } from "../tracing/tracer.ts";

/**
 * A delivered request as a new message, to put back in the queue: same properties (a pipeline's request
 * stays persistent, to outlive a broker restart as its answer does), fibrpc's own headers only (the
 * caller's `deadline`, whose remainder is also its expiration, the count `attempts`, when there are:
 * delivery.ts read them, and the reply format a pipeline's request asked for), and the caller's W3C trace
 * context, unchanged (the message's creation context: the copy's process span belongs to the caller's trace
 * too), when delivery.ts found it printable and short. Unlike a nack, this does not count as a failed
 * delivery. The copy carries nothing else: nothing else in the request is read by a server, and a client's
 * headers could come back larger than they went in (bytes that were not UTF-8 re-encode as U+FFFD) and no
 * longer fit one frame.
 */
export function copyOf(msg: ConsumeMessage, { deadline, attempts, trace, replyFormat }: Requeue): PublishProperties {
  const { properties } = msg;
  const headers: Record<string, string | number> = {};
  if (replyFormat === "json") headers[REPLY_FORMAT_HEADER] = "json";
  if (deadline !== undefined) headers[DEADLINE_HEADER] = clampToSafeInteger(deadline);
  if (attempts !== undefined) headers[ATTEMPTS_HEADER] = attempts;
  if (trace?.traceparent !== undefined) headers[TRACEPARENT] = trace.traceparent;
  if (trace?.tracestate !== undefined) headers[TRACESTATE] = trace.tracestate;
  const copy: PublishProperties = {
    replyTo: properties.replyTo as string,
    correlationId: properties.correlationId as string | undefined,
    contentType: properties.contentType as string | undefined,
    headers,
    deliveryMode: properties.deliveryMode === 2 ? 2 : undefined,
  };
  if (deadline !== undefined) {
    copy.expiration = String(Math.min(MAX_EXPIRATION_MS, Math.max(1, Math.ceil(deadline - Date.now()))));
  }
  return copy;
}

/** A deadline as an integer header value (a client may have sent 1e300 or a fraction). */
function clampToSafeInteger(value: number): number {
  return Math.max(Number.MIN_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Math.round(value)));
}

/**
 * Where copies go back to a quorum queue (those of a drain): a confirm channel of their own, on the serving
 * channel's connection, each original acked only once the broker has confirmed its copy. On one channel, the acks
 * waited behind the copies' enqueues: past 32 of them in flight, RabbitMQ holds a channel's settles back, and the
 * channel a drain closes right after loses them, so that each original came back beside its copy and was answered
 * twice. A classic queue's copies (a drain's, and a redelivery's that carries its count) go on the serving channel,
 * in one write with the ack: a copy of a request that crashes its worker must not leave its original unacked
 * while it does, or each crash would double it.
 */
export class CopyChannel {
  private channel: Promise<ConfirmChannel | undefined> | undefined;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly model: ChannelModel,
    private readonly log: Logger,
  ) {}

  /**
   * Puts `copy` of `msg` in `queue`, then acks the original on the serving channel (`via`, while it is open); on a
   * refusal, or without a channel of its own (a connection of one channel, channel_max=1: on the serving channel
   * the acks would be lost again), leaves the original to the broker, which puts it back when the channel closes
   * (counted as a delivery). Never throws.
   */
  putBack(
    queue: string,
    msg: ConsumeMessage,
    copy: PublishProperties,
    via: { outlet: Pick<Outlet, "ack">; open: () => boolean },
  ): void {
    const why = (err: unknown) => (err instanceof Error ? err.message : String(err));
    const done = this.publish(queue, msg, copy).then(
      (confirmed) => {
        try {
          if (confirmed && via.open()) via.outlet.ack(msg);
        } catch (err) {
          // The channel is going: the broker puts the original back too (a duplicate, as after any lost ack).
          this.log.debug(`could not settle a request put back as a copy: ${why(err)}`);
        }
      },
      (err: unknown) =>
        this.log.warn(
          `could not put a request back in the queue as a copy (${why(err)}); the broker puts it back instead`,
        ),
    );
    this.pending.add(done);
    void done.finally(() => this.pending.delete(done));
  }

  /** Resolves once every copy put back so far is confirmed and its original acked (or left to the broker). */
  async settled(): Promise<void> {
    await Promise.all(this.pending);
  }

  /** True once the copy is confirmed; false if there is no channel to publish it on (said once). */
  private async publish(queue: string, msg: ConsumeMessage, copy: PublishProperties): Promise<boolean> {
    this.channel ??= this.model.createConfirmChannel().then(
      (channel) => {
        // Its failures are each copy's (below); the connection's are the serving channel's to report.
        channel.on("error", () => {});
        return channel;
      },
      (err: unknown) => {
        const why = err instanceof Error ? err.message : String(err);
        this.log.warn(
          `no channel to put requests back on (${why}): the broker puts them back when this one closes, ` +
            "each counted as a delivery",
        );
        return undefined;
      },
    );
    const channel = await this.channel;
    if (channel === undefined) return false;
    await new Promise<void>((resolve, reject) =>
      channel.publish("", queue, msg.content, copy, (err: unknown) => (err ? reject(err) : resolve())),
    );
    return true;
  }
}
