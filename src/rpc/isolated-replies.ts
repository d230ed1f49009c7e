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
 * not known to be) leaves it to the serving channel; "stopped" (closed: the server drains or stops) leaves it
 * unacked, for the broker to put back when the channel closes.
 */
export type IsolatedOutcome = "confirmed" | "caller-gone" | "failed" | "stopped";

/**
 * How long one reply may take here, connecting included, before the serving channel sends it instead (a broker
 * that neither confirms nor closes: a resource alarm holds the publish). The connection is then given up, so
 * that a confirm or close still to come cannot be taken for the next reply's.
 */
const REPLY_MS = 5_000;
/** After a connection could not be opened (a connection limit), none is tried for this long: replies fail at once. */
const RETRY_OPEN_MS = 30_000;
/** A connection unused this long is closed: a redelivery is rare, and each server would keep one more. */
const IDLE_MS = 30_000;
/** Addresses whose reply closed the connection: their other requests are acked without trying again. */
const GONE_KEPT = 256;
/**
 * For this long: a caller whose node died sends nothing new, and a 541 from a passing partition must not
 * silence a caller that is still there for good.
 */
const GONE_MS = 5 * 60_000;

interface Opened {
  model: ChannelModel;
  channel?: ConfirmChannel;
  /** Set by the connection's close: why it closed (undefined: closed by this side). */
  closedBy?: Error;
  /** The connection or its channel closed: not to be used again. */
  closed: boolean;
}

export class IsolatedReplies {
  /** The connection open now, if any. */
  private current: Opened | undefined;
  /** The reply being sent: one at a time, so a connection closed by a reply names that reply. */
  private last: Promise<unknown> = Promise.resolve();
  /** Address → when its reply closed the connection (performance.now()). */
  private readonly gone = new Map<string, number>();
  /** Ends the reply under way as late, if it has not been published yet (see close). */
  private giveUpConnecting: (() => void) | undefined;
  private idle: ReturnType<typeof setTimeout> | undefined;
  /** performance.now() before which no connection is tried (see RETRY_OPEN_MS). */
  private noOpenUntil = 0;
  private stopped = false;

  /** `open`: a new connection to the broker the server is on (connection.ts, openBeside). */
  constructor(
    private readonly open: () => Promise<ChannelModel>,
    private readonly log: Logger,
  ) {}

  /** Whether a reply to `replyTo` closed the connection lately: its caller's node is gone, nobody to answer. */
  isGone(replyTo: string): boolean {
    const at = this.gone.get(replyTo);
    if (at === undefined) return false;
    if (performance.now() - at < GONE_MS) return true;
    this.gone.delete(replyTo);
    return false;
  }

  /** Sends one reply, after those sent before it; never rejects. */
  send(replyTo: string, body: Uint8Array, properties: PublishProperties): Promise<IsolatedOutcome> {
    const content = Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    const outcome = this.last.then(() => this.sendWithin(replyTo, content, properties));
    this.last = outcome;
    return outcome;
  }

  /**
   * Takes no more replies (those still queued end "stopped" at once), and closes the connection once the reply
   * under way is done.
   */
  async close(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.idle);
    // A reply still connecting would hold the drain up to REPLY_MS for nothing: it ends now, stopped.
    this.giveUpConnecting?.();
    await this.last;
    if (this.current) this.retire(this.current);
  }

  /** sendNow, bounded by REPLY_MS: past it, the reply fails and its connection is given up. */
  private async sendWithin(replyTo: string, body: Buffer, properties: PublishProperties): Promise<IsolatedOutcome> {
    if (this.isGone(replyTo)) return "caller-gone";
    if (this.stopped) return "stopped";
    if (performance.now() < this.noOpenUntil) return "failed";
    clearTimeout(this.idle);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const attempt = { late: false, published: false };
    const late = new Promise<"late" | "stopped">((resolve) => {
      const giveUp = (why: "late" | "stopped") => {
        attempt.late = true;
        resolve(why);
      };
      timer = setTimeout(() => giveUp("late"), REPLY_MS);
      this.giveUpConnecting = () => {
        if (!attempt.published) giveUp("stopped");
      };
    });
    const outcome = await Promise.race([this.sendNow(replyTo, body, properties, attempt), late]);
    clearTimeout(timer);
    this.giveUpConnecting = undefined;
    const opened = this.current;
    if (outcome === "late") {
      this.log.debug(`a reply to ${preview(replyTo)} took over ${REPLY_MS} ms on its connection apart: given up there`);
      if (opened) this.retire(opened);
    }
    // Stopped meanwhile (a drain): not for the serving channel to send either.
    if ((outcome === "late" || outcome === "failed") && this.stopped) return "stopped";
    if (outcome === "late") return "failed";
    if (outcome === "caller-gone") {
      if (this.gone.size >= GONE_KEPT) this.gone.delete(this.gone.keys().next().value!);
      this.gone.set(replyTo, performance.now());
      this.log.debug(`a reply to ${preview(replyTo)} closed its connection (541): its caller's node is gone`);
    }
    if (opened && !opened.closed && !this.stopped) {
      this.idle = setTimeout(() => this.retire(opened), IDLE_MS).unref();
    }
    return outcome;
  }

  private async sendNow(
    replyTo: string,
    body: Buffer,
    properties: PublishProperties,
    attempt: { late: boolean; published: boolean },
  ): Promise<IsolatedOutcome> {
    if (!this.current || this.current.closed) {
      const fresh = await this.connect();
      // Given up while connecting: the serving channel has sent it, and the next reply may be connecting already.
      if (attempt.late) {
        if (fresh) this.retire(fresh);
        return "failed";
      }
      this.current = fresh;
    }
    const opened = this.current;
    const channel = opened?.channel;
    if (!opened || !channel) return "failed";
    return new Promise<IsolatedOutcome>((resolve) => {
      try {
        attempt.published = true;
        channel.publish("", replyTo, body, properties, (err) => {
          if (!err) return resolve("confirmed");
          // A closed connection rejects its unconfirmed publishes first, then says why it closed, in the same
          // turn (node_modules/amqplib/lib/connection.js, toClosed): look at the reason once that has run. This
          // reply is the connection's only unconfirmed one (one at a time; a late one retires its connection).
          setImmediate(() => resolve(brokerClose(opened.closedBy)?.code === 541 ? "caller-gone" : "failed"));
        });
      } catch {
        resolve("failed");
      }
    });
  }

  private async connect(): Promise<Opened | undefined> {
    let opened: Opened | undefined;
    try {
      const model = await this.open();
      opened = { model, closed: false };
      const it = opened;
      // Listened to from the start: an error event without a listener would end the worker.
      model.on("error", (err: Error) => this.log.debug(`connection for replies apart: ${lostReason(err)}`));
      model.on("close", (err?: Error) => {
        it.closed = true;
        it.closedBy = err;
      });
      const channel = await model.createConfirmChannel();
      channel.on("error", (err: Error) => this.log.debug(`channel for replies apart: ${err.message}`));
      // The broker closed the channel alone (the connection lives on): give the connection up with it.
      channel.on("close", () => {
        if (!it.closed) this.retire(it);
      });
      opened.channel = channel;
      return opened;
    } catch (err) {
      // Said each time (at most once in RETRY_OPEN_MS): the fallback can bring the quorum queue's loop back.
      this.log.warn(
        `could not open a connection for replies to callers seen before: ${lostReason(err)}; for ` +
          `${RETRY_OPEN_MS / 1000} s their replies go on the serving connection, acked ahead of them ` +
          '(docs/operations.md, "Callers on a cluster")',
      );
      this.noOpenUntil = performance.now() + RETRY_OPEN_MS;
      if (opened) this.retire(opened);
      return undefined;
    }
  }

  /** Closes `opened` and forgets it; a reply still waiting on it is told (its confirm rejected). */
  private retire(opened: Opened): void {
    opened.closed = true;
    if (this.current === opened) this.current = undefined;
    opened.model.close().catch(() => {});
  }
}
