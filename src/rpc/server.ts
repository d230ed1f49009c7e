/**
 * The serving side, as one worker runs it: one connection, one channel, one consumer on the
 * request queue. Per delivery: decode → compute → publish the reply → ack. The ack comes after
 * the reply is published, so a worker that dies in between leaves the request to be redelivered
 * (RabbitMQ docs, "Consumer Acknowledgements and Publisher Confirms"); callers ignore the
 * duplicate reply that may follow.
 */
import { connect, type Channel, type ChannelModel, type ConsumeMessage, type RecoveringChannelModel } from "amqplib";
import { FibrpcError } from "../errors.ts";
import { fibDecimal } from "../fib.ts";
import type { Logger } from "../log.ts";
import { brokerReason, connectError, isPreconditionFailed } from "./broker-errors.ts";
import { FailoverUrl, socketOptions, type BrokerTarget } from "./broker.ts";
import { injectFault, InjectedCrash, killAfterReply, type Faults } from "./faults.ts";
import {
  ATTEMPTS_HEADER,
  CLOCK_SKEW_ALLOWANCE_MS,
  DEADLINE_HEADER,
  decodeRequest,
  encodeError,
  encodeResult,
  POISON_AFTER_FAILED_DELIVERIES,
  QUORUM_DELIVERY_COUNT_HEADER,
  type DecodedRequest,
  type EncodedMessage,
} from "./protocol.ts";
import { declareRequestQueue, type QueueType } from "./queue.ts";
import { StatsRecorder, type WorkerStats } from "../serve/stats.ts";
import { openWire, type Wire } from "./wire.ts";

/** From this n on, a request takes a millisecond or more of CPU (fib(100000): ~1 ms here). */
export const HEAVY_N = 100_000;

export interface ServerOptions {
  broker: BrokerTarget;
  queue: string;
  queueType: QueueType;
  prefetch: number;
  maxN: number;
  log: Logger;
  /** Test-only fault injection (see faults.ts). */
  faults?: Faults;
}

export interface ServerEvents {
  /** Consuming (again): after the first connection and after every recovery. */
  onServing(): void;
  /** Not consuming any more: the connection or channel was lost; recovery is under way. */
  onInterrupted(reason: string): void;
  /** A problem that waiting will not fix (queue declared with other arguments, login refused). */
  onFatal(error: FibrpcError): void;
}

export class RpcServer {
  private connection: RecoveringChannelModel | undefined;
  private readonly target: FailoverUrl;
  private channel: Channel | undefined;
  /** Fast path for replies and acks (see wire.ts); undefined means amqplib's own. */
  private wire: Wire | undefined;
  private consumerTag: string | undefined;
  private draining = false;
  private served = 0;
  /** Heavy requests waiting for their turn (see answerHeavy), and who waits for them to finish. */
  private heavyInProgress = 0;
  private heavyDone: (() => void) | undefined;
  /** The channel-wide limit of 1 in force while heavy requests are computed (classic queues). */
  private heavyGate: Promise<void> | undefined;
  private readonly stats = new StatsRecorder();
  /** When the delivery being handled arrived (performance.now()), for the latency histogram. */
  private deliveredAt = 0;
  private connectedOnce = false;

  constructor(
    private readonly options: ServerOptions,
    private readonly events: ServerEvents,
  ) {
    this.target = new FailoverUrl(options.broker.urls);
  }

  /** Starts connecting; returns at once. Connection loss is recovered with backoff and jitter. */
  async start(): Promise<void> {
    const { options, target } = this;
    this.connection = await connect(target.target(), {
      ...socketOptions(options.broker.tls),
      clientProperties: { connection_name: "fibrpc serve" },
      recovery: {
        waitForConnect: false,
        initialDelay: 250,
        maxDelay: 5_000,
        jitter: 0.5,
        setup: (model: ChannelModel) => this.setup(model),
      },
    });
    const conn = this.connection;
    conn.on("connect", () => {
      options.log.debug(`connected to ${target.current}`);
      if (this.connectedOnce) this.stats.reconnected();
      this.connectedOnce = true;
      this.events.onServing();
    });
    conn.on("disconnect", (err: Error) => {
      const lost = target.current;
      // With several brokers, the next attempt goes to the next one (failover).
      target.advance();
      if (!this.draining) this.events.onInterrupted(`connection to ${lost} lost (${err.message})`);
    });
    conn.on("connect-failed", (err: Error) => this.onConnectFailed(err));
    conn.on("reconnect-scheduled", ({ attempt, delay }: { attempt: number; delay: number }) => {
      options.log.info(`reconnecting to ${target.current} in ${delay} ms (attempt ${attempt})`);
    });
    conn.on("error", (err: Error) => options.log.debug(`connection error: ${err.message}`));
  }

  /** Runs on every (re)connection: channel, prefetch, queue, consumer. */
  private async setup(model: ChannelModel): Promise<void> {
    const { options } = this;
    const channel = await model.createChannel();
    channel.on("error", (err: Error) => options.log.debug(`channel error: ${err.message}`));
    channel.on("close", () => {
      // A channel closed by the broker while the connection lives on (e.g. an ack the broker
      // did not expect): close the connection too, so recovery rebuilds everything in one path.
      if (this.channel === channel && !this.draining) model.close().catch(() => {});
    });
    await channel.prefetch(options.prefetch);
    await declareRequestQueue(channel, options.queue, options.queueType);
    this.wire = openWire(model, channel);
    const { consumerTag } = await channel.consume(options.queue, (msg) => this.onDelivery(channel, model, msg));
    this.channel = channel;
    this.consumerTag = consumerTag;
  }

  private onConnectFailed(err: Error): void {
    const { options } = this;
    if (isPreconditionFailed(err)) {
      this.fatal(
        new FibrpcError(
          "QUEUE_MISMATCH",
          `queue ${JSON.stringify(options.queue)} already exists with other settings (${brokerReason(err)}); serve it with the matching --queue-type, or delete it (rabbitmqctl delete_queue ${options.queue}) and start again`,
        ),
      );
      return;
    }
    const error = connectError(err, this.target.currentUrl);
    this.target.advance();
    // Waiting will not fix a refused login or an unverifiable certificate at start-up: say so and
    // stop. Once serving, the same errors may be passing (a broker restarting): keep trying.
    if (!this.connectedOnce && (error.code === "ACCESS_REFUSED" || error.code === "TLS_REFUSED")) {
      this.fatal(error);
      return;
    }
    // The broker is down or restarting: serve waits for it, it never gives up on an outage.
    options.log.warn(error.message);
  }

  private fatal(error: FibrpcError): void {
    this.draining = true;
    this.connection?.close().catch(() => {});
    this.events.onFatal(error);
  }

  private onDelivery(channel: Channel, model: ChannelModel, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // The broker cancelled our consumer (queue deleted, or a node of the cluster went away):
      // reconnect, which declares the queue and consumes again.
      if (!this.draining) {
        this.options.log.warn(`the broker cancelled the consumer on queue ${JSON.stringify(this.options.queue)}; re-subscribing`);
        model.close().catch(() => {});
      }
      return;
    }
    this.deliveredAt = performance.now();
    if (msg.fields.redelivered) this.stats.redelivered();
    try {
      this.handle(channel, msg);
    } catch (err) {
      if (err instanceof InjectedCrash) return;
      // Nothing thrown in here may end the worker: answer with INTERNAL and move on.
      this.options.log.error(`unexpected error serving a request: ${err instanceof Error ? err.message : String(err)}`);
      this.reply(channel, msg, encodeError("text", "INTERNAL", "the server failed while handling the request"));
    }
  }

  private handle(channel: Channel, msg: ConsumeMessage): void {
    const { options } = this;
    const { replyTo, correlationId, contentType } = msg.properties;
    if (!replyTo) {
      // Nobody to answer: requeueing would loop forever, so ack and say so.
      options.log.warn(`dropped a request without reply_to (correlation id ${JSON.stringify(correlationId ?? null)}): a caller must say where to reply`);
      channel.ack(msg);
      return;
    }
    const request = decodeRequest(msg.content, contentType, options.maxN);
    const headers = msg.properties.headers;
    const deadline = headers?.[DEADLINE_HEADER];
    if (typeof deadline === "number" && Date.now() > deadline + CLOCK_SKEW_ALLOWANCE_MS) {
      // The caller has given up: do not compute. The reply costs nothing and explains itself if
      // anyone still listens.
      options.log.debug(`skipped a request whose caller gave up ${Date.now() - deadline} ms ago (by this server's clock)`);
      this.reply(channel, msg, encodeError(request.format, "DEADLINE_EXCEEDED", "the caller's deadline passed before a server picked the request up", request.ok ? request.n : undefined));
      return;
    }
    // Only a valid request can crash a worker; an invalid one is simply refused again below.
    if (request.ok && msg.fields.redelivered && this.isPoison(channel, msg)) return;
    if (request.ok && request.n >= HEAVY_N && options.prefetch > 1) {
      void this.answerHeavy(channel, msg, request.n, request.format);
      return;
    }
    this.answer(channel, msg, request);
  }

  /** Computes (or refuses) and replies; the one place a result is produced. */
  private answer(channel: Channel, msg: ConsumeMessage, request: DecodedRequest): void {
    const { options } = this;
    const { replyTo, correlationId } = msg.properties;
    let reply: EncodedMessage;
    if (request.ok) {
      try {
        if (options.faults) injectFault(options.faults, request.n, !msg.fields.redelivered && msg.properties.headers?.[ATTEMPTS_HEADER] === undefined);
        reply = encodeResult(request.format, request.n, fibDecimal(request.n));
      } catch (err) {
        if (err instanceof InjectedCrash) throw err;
        options.log.error(`computing fib(${request.n}) failed: ${err instanceof Error ? err.message : String(err)}`);
        reply = encodeError(request.format, "INTERNAL", `computing fib(${request.n}) failed on the server`, request.n);
      }
      options.log.debug(`fib(${request.n}) → ${reply.body.length} bytes to ${replyTo}`);
    } else {
      options.log.debug(`refused a request: ${request.code}: ${request.message}`);
      reply = encodeError(request.format, request.code, request.message, request.n);
    }
    if (request.ok && options.faults && killAfterReply(options.faults, request.n)) {
      this.publishReply(channel, replyTo as string, correlationId, reply);
      throw new InjectedCrash();
    }
    this.reply(channel, msg, reply);
  }

  /**
   * Fair dispatch with prefetch > 1. A heavy request (milliseconds of CPU) would keep drawing
   * requests to this worker while it computes, though other workers are idle. So, on a classic
   * queue, before computing one the worker sets a channel-wide limit of 1 unacked request
   * (basic.qos global=true, which RabbitMQ applies at once to the existing consumer, unlike the
   * per-consumer prefetch) and waits for the broker to confirm it; after the last heavy request
   * it lifts the limit again (0 = none). Requests the broker had already sent before the limit
   * wait for at most that one computation. Quorum queues do not support a channel-wide limit:
   * there, heavy requests are computed in turn like light ones.
   */
  private async answerHeavy(channel: Channel, msg: ConsumeMessage, n: number, format: DecodedRequest["format"]): Promise<void> {
    const deliveredAt = this.deliveredAt;
    this.heavyInProgress++;
    try {
      if (this.options.queueType === "classic") {
        this.heavyGate ??= channel.prefetch(1, true).then(
          () => {},
          () => {},
        );
        await this.heavyGate;
      }
      // One heavy computation per event-loop turn, so that a drain request, acks and other
      // deliveries are seen between them.
      await new Promise((resolve) => setImmediate(resolve));
      this.deliveredAt = deliveredAt;
      // Draining: not started yet, so it goes back to the queue for another server.
      if (this.draining) this.republish(channel, msg);
      else {
        this.options.log.debug(`computing heavy fib(${n}), taking no new requests meanwhile`);
        this.answer(channel, msg, { ok: true, n, format });
      }
    } catch (err) {
      if (!(err instanceof InjectedCrash)) {
        this.options.log.error(`unexpected error serving a request: ${err instanceof Error ? err.message : String(err)}`);
        this.reply(channel, msg, encodeError(format, "INTERNAL", "the server failed while handling the request"));
      }
    } finally {
      if (--this.heavyInProgress === 0) {
        if (this.heavyGate && !this.draining) channel.prefetch(0, true).catch(() => {});
        this.heavyGate = undefined;
        this.heavyDone?.();
      }
    }
  }

  /**
   * Puts a delivered request back in the queue as a new message: same properties, the remaining
   * deadline, its headers (the broker's delivery count dropped) plus `extraHeaders`; then acks the
   * delivery. Unlike a nack, this does not count as a failed delivery.
   */
  private republish(channel: Channel, msg: ConsumeMessage, extraHeaders: Record<string, number> = {}): void {
    const { properties } = msg;
    // Only string and integer headers are carried over (fibrpc's own are integers).
    const headers: Record<string, string | number> = {};
    for (const [key, value] of Object.entries(properties.headers ?? {})) {
      if (key !== QUORUM_DELIVERY_COUNT_HEADER && (typeof value === "string" || Number.isSafeInteger(value))) headers[key] = value as string | number;
    }
    Object.assign(headers, extraHeaders);
    const deadline = headers[DEADLINE_HEADER];
    const copy = {
      replyTo: properties.replyTo as string | undefined,
      correlationId: properties.correlationId as string | undefined,
      contentType: properties.contentType as string | undefined,
      ...(typeof deadline === "number" ? { expiration: String(Math.max(1, deadline - Date.now())) } : {}),
      headers,
    };
    // Through the same path as replies and acks, so the copy is written before the ack and
    // never between the frames of another message.
    if (this.wire) {
      this.wire.publish(this.options.queue, msg.content, copy);
      this.wire.ack(msg);
    } else {
      channel.sendToQueue(this.options.queue, msg.content, copy);
      channel.ack(msg);
    }
  }


  /**
   * A redelivered request may be one that crashed a worker: stop it before it crashes the next.
   * Quorum queues count failed deliveries themselves (x-delivery-count); for classic queues the
   * request is republished once with a count of its own (x-fibrpc-attempts) and acked. Either
   * way, after POISON_AFTER_FAILED_DELIVERIES failed deliveries the caller gets a POISON_REQUEST
   * error reply. A request redelivered for another reason (a server draining, a connection
   * lost) is served normally: fib is idempotent. Returns true when the delivery was dealt with.
   */
  private isPoison(channel: Channel, msg: ConsumeMessage): boolean {
    const headers = msg.properties.headers ?? {};
    const quorumCount = headers[QUORUM_DELIVERY_COUNT_HEADER];
    const failedDeliveries = typeof quorumCount === "number" ? quorumCount : (Number(headers[ATTEMPTS_HEADER]) || 0) + 1;
    if (failedDeliveries >= POISON_AFTER_FAILED_DELIVERIES) {
      this.options.log.warn(`refused a request delivered ${failedDeliveries + 1} times (correlation id ${JSON.stringify(msg.properties.correlationId ?? null)}): it failed every time`);
      const format = msg.properties.contentType?.startsWith("application/json") ? "json" : "text";
      this.reply(channel, msg, encodeError(format, "POISON_REQUEST", `the request was delivered ${failedDeliveries + 1} times and never completed; it is not tried again`));
      return true;
    }
    if (typeof quorumCount === "number") return false;
    // Classic queue: carry the count on a copy, since the broker keeps none.
    this.republish(channel, msg, { [ATTEMPTS_HEADER]: failedDeliveries });
    return true;
  }

  /** Publishes the reply, then acks: in this order, in one socket write with the fast path. */
  private reply(channel: Channel, msg: ConsumeMessage, reply: EncodedMessage): void {
    const { replyTo, correlationId } = msg.properties;
    if (replyTo) this.publishReply(channel, replyTo, correlationId, reply);
    if (this.wire) this.wire.ack(msg);
    else channel.ack(msg);
    this.served++;
    this.stats.answered(reply.code ?? "ok", (performance.now() - this.deliveredAt) / 1000);
  }

  /** Counters for /metrics (see serve/stats.ts). */
  statsSnapshot(): WorkerStats {
    return this.stats.snapshot(this.heavyInProgress);
  }

  private publishReply(channel: Channel, replyTo: string, correlationId: string | undefined, reply: EncodedMessage): void {
    const properties = { correlationId, contentType: reply.contentType, type: reply.type };
    if (this.wire) this.wire.publish(replyTo, reply.body, properties);
    else channel.publish("", replyTo, reply.body, properties);
  }

  get requestsServed(): number {
    return this.served;
  }

  /**
   * Graceful stop: cancel the consumer (no new deliveries), let the requests already delivered
   * be answered, then close. Deliveries not yet started are requeued by the broker when the
   * channel closes, for other servers to take.
   */
  async drain(): Promise<void> {
    this.draining = true;
    const { channel, consumerTag } = this;
    try {
      if (channel && consumerTag) await channel.cancel(consumerTag);
    } catch {
      // channel already gone: its unacked deliveries are back in the queue
    }
    // Requests already delivered are answered synchronously as they arrive, except heavy ones,
    // which wait one event-loop turn: let those finish too.
    if (this.heavyInProgress > 0) await new Promise<void>((resolve) => (this.heavyDone = resolve));
    // channel.close goes through amqplib's muxer, after any frame still queued there; the
    // connection's close frame does not, so close the channel first.
    await channel?.close().catch(() => {});
    await this.connection?.close().catch(() => {});
  }
}
