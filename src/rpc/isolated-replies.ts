/**
 * Replies that may cost the connection they go on, sent on a connection of their own.
 *
 * RabbitMQ 3.x closes a connection with 541 INTERNAL_ERROR when it publishes to the Direct Reply-to
 * address of a caller whose node has just died (docs/operations.md, "Callers on a cluster"). The
 * request whose reply did that comes back, redelivered. Answered on the serving connection again, it
 * would close that one too, and on a quorum queue even an ack written ahead of the reply is lost with
 * the connection (the settle reaches the queue after the channel's crash): the request came back over
 * and over, each time closing the connection with every request in flight on it, until the poison
 * backstop answered it POISON_REQUEST. So the server sends the reply of a request seen before to a
 * Direct Reply-to address here (serving-channel.ts, settle), one at a time on a confirm channel of a
 * connection opened when first needed and closed when idle, and acks the request on its own channel
 * only once the broker has confirmed the reply, or has closed this connection with 541 (the caller's
 * node is gone: there is nobody to answer). Any other failure hands the reply back to the serving
 * channel, which sends it there as before.
 */
import type { ChannelModel, ConfirmChannel } from "amqplib";
import type { Logger } from "../log.ts";
import { brokerClose, lostReason } from "./broker-errors.ts";
import type { PublishProperties } from "./outlet.ts";
import { preview } from "./protocol.ts";

/**
 * How a reply sent here ended: "confirmed" and "caller-gone" let the request be acked; "failed" (not sent, or
 * not known to be) leaves it to the serving channel.
 */
export type IsolatedOutcome = "confirmed" | "caller-gone" | "failed";

/** How long a reply may wait for the broker's confirm before the serving channel sends it instead. */
const CONFIRM_MS = 10_000;
/** A connection unused this long is closed: a redelivery is rare, and each server would keep one more. */
const IDLE_MS = 30_000;
/** Addresses whose reply closed the connection: their other requests are acked without trying again. */
const GONE_KEPT = 256;

interface Opened {
  model: ChannelModel;
  channel: ConfirmChannel;
  /** Set by the connection's close: why it closed (undefined: closed by this side). */
  closedBy?: Error;
  closed: boolean;
}

export class IsolatedReplies {
  /** The connection open now, if any. */
  private current: Opened | undefined;
  /** The reply being sent: one at a time, so a connection closed by a reply names that reply. */
  private last: Promise<unknown> = Promise.resolve();
  private readonly gone = new Set<string>();
  private idle: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;

  /** `open`: a new connection to the broker the server is on (connection.ts, openBeside). */
  constructor(
    private readonly open: () => Promise<ChannelModel>,
    private readonly log: Logger,
  ) {}

  /** Sends one reply, after those sent before it; never rejects. */
  send(replyTo: string, body: Uint8Array, properties: PublishProperties): Promise<IsolatedOutcome> {
    const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const outcome = this.last.then(() => this.sendNow(replyTo, content, properties));
    this.last = outcome;
    return outcome;
  }

  /** Closes the connection, if open, once the replies under way are sent; later ones fail (see send). */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idle);
    await this.last;
    await this.current?.model.close().catch(() => {});
    this.current = undefined;
  }

  private async sendNow(replyTo: string, body: Buffer, properties: PublishProperties): Promise<IsolatedOutcome> {
    if (this.gone.has(replyTo)) return "caller-gone";
    if (this.stopped) return "failed";
    clearTimeout(this.idle);
    if (!this.current || this.current.closed) this.current = await this.connect();
    const opened = this.current;
    if (!opened) return "failed";
    const outcome = await new Promise<IsolatedOutcome>((resolve) => {
      const timer = setTimeout(() => resolve("failed"), CONFIRM_MS);
      const ended = (outcome: IsolatedOutcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      try {
        opened.channel.publish("", replyTo, body, properties, (err) => {
          if (!err) return ended("confirmed");
          // A closed connection rejects its unconfirmed publishes first, then says why it closed, in the same
          // turn (node_modules/amqplib/lib/connection.js, toClosed): look at the reason once that has run.
          setImmediate(() => ended(brokerClose(opened.closedBy)?.code === 541 ? "caller-gone" : "failed"));
        });
      } catch {
        ended("failed");
      }
    });
    if (outcome === "caller-gone") {
      if (this.gone.size >= GONE_KEPT) this.gone.delete(this.gone.values().next().value!);
      this.gone.add(replyTo);
      this.log.debug(`a reply to ${preview(replyTo)} closed its connection (541): its caller's node is gone`);
    }
    if (!this.stopped && !opened.closed) this.idle = setTimeout(() => this.closeIdle(opened), IDLE_MS).unref();
    return outcome;
  }

  private async connect(): Promise<Opened | undefined> {
    try {
      const model = await this.open();
      const opened: Opened = { model, channel: await model.createConfirmChannel(), closed: false };
      // Listened to: an error event without a listener would end the worker.
      model.on("error", (err: Error) => this.log.debug(`reply connection: ${lostReason(err)}`));
      opened.channel.on("error", () => {});
      model.on("close", (err?: Error) => {
        opened.closed = true;
        opened.closedBy = err;
      });
      return opened;
    } catch (err) {
      this.log.debug(`could not open a connection for replies to callers seen before: ${lostReason(err)}`);
      return undefined;
    }
  }

  private closeIdle(opened: Opened): void {
    if (this.current === opened) this.current = undefined;
    opened.model.close().catch(() => {});
  }
}
