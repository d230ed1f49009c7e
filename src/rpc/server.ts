/**
 * The serving side, as one worker runs it: one connection, one channel, one consumer on the
 * request queue (a standby one while heavy requests are computed, see runHeavy). Per delivery:
 * `decide` (delivery.ts) says what becomes of it, and one small executor here carries that out:
 * at most one publish and exactly one ack. The ack comes after the reply is published (except
 * in one case, see finish), so a worker that dies in between leaves the request to be redelivered
 * (RabbitMQ docs, "Consumer Acknowledgements and Publisher Confirms"); callers ignore the
 * duplicate reply that may follow.
 */
import { connect, type Channel, type ChannelModel, type ConsumeMessage, type RecoveringChannelModel } from "amqplib";
import { FibrpcError } from "../errors.ts";
import { fibDecimal } from "../fib.ts";
import type { Logger } from "../log.ts";
import { brokerRefusal, connectError, refusal } from "./broker-errors.ts";
import { FailoverUrl, socketOptions, type BrokerTarget } from "./broker.ts";
import { requestKey, type CrashLedger } from "./crash-ledger.ts";
import { decide, header, isFirstDelivery, MAX_EXPIRATION_MS, readDeadline, type Address, type Fate } from "./delivery.ts";
import { DirectReplyToChecks, isDirectReplyTo } from "./direct-reply-to.ts";
import { ATTEMPTS_HEADER, DEADLINE_HEADER, encodeError, encodeResult, preview, type EncodedMessage } from "./protocol.ts";
import { declareOrJoinRequestQueue, joinedNotice, type QueueType } from "./queue.ts";
import { chooseOutlet, OUTLET_FALLBACK_MESSAGE, type Outlet, type OutletMode, type PublishProperties } from "./outlet.ts";
import { openWire } from "./wire.ts";


export interface ServerOptions {
  broker: BrokerTarget;
  queue: string;
  queueType: QueueType;
  prefetch: number;
  maxN: number;
  log: Logger;
  /** Which requests crashed workers of this process (see crash-ledger.ts). */
  ledger?: CrashLedger;
  /** Counts what happens, for /metrics; called on the hot path, so keep it cheap. */
  metrics?: ServerMetrics;
  /**
   * Computes fib(n) as decimal (default: fib.ts). `firstDelivery` is false for a request seen
   * before. A seam for the test build's fault injection (serve/faults.ts), as is `wrapOutlet`.
   */
  compute?: (n: number, request: { firstDelivery: boolean }) => string;
  /** Wraps the channel's outlet (publish and ack), once per channel. */
  wrapOutlet?: (outlet: Outlet) => Outlet;
  /** The frame writer where it attaches (default), or amqplib's own publish and ack (outlet.ts). */
  outlet?: OutletMode;
  /** Attaches the frame writer (default wire.ts openWire); undefined means it cannot. */
  openFrameWriter?: (model: ChannelModel, channel: Channel) => Outlet | undefined;
}

/** What a server reports as it goes (serve/stats.ts keeps the counters). */
export interface ServerMetrics {
  /** A request settled: "ok", an error code, or "DROPPED"; `seconds` from delivery to reply. */
  answered(outcome: string, seconds: number): void;
  redelivered(): void;
  reconnected(): void;
  /** A channel publishes and acks through amqplib's own methods: the frame writer could not attach. */
  outletFallback(): void;
}

const NO_METRICS: ServerMetrics = { answered: () => {}, redelivered: () => {}, reconnected: () => {}, outletFallback: () => {} };

export interface ServerEvents {
  /** Consuming (again), on `broker` (password masked): after the first connection and after every recovery. */
  onServing(broker: string): void;
  /** Not consuming any more: the connection to `broker` was lost (or its channel); recovery is under way. */
  onInterrupted(broker: string, reason: string): void;
  /** A problem that waiting will not fix (the broker refuses the set-up, login refused). */
  onFatal(error: FibrpcError): void;
  /**
   * The next connection attempt is scheduled in `delayMs` (amqplib's recovery, the only retry
   * path of serve): after an attempt failed in a way that waiting may fix (`error`: the broker
   * down or restarting), or right after the connection was lost (no error: onInterrupted said it).
   */
  onRetrying(retry: { error?: FibrpcError; attempt: number; delayMs: number }): void;
  /** Something the operator should know, the same for every worker (say it once). */
  onNotice(message: string): void;
  /**
   * The broker blocks this connection's publishes (`reason`: its words, e.g. "low on memory"):
   * flow control during a resource alarm. Replies wait in the connection, none is lost.
   */
  onBlocked?(reason: string): void;
  /** The broker unblocked the connection, or the blocked connection is gone (`lost`). */
  onUnblocked?(lost: boolean): void;
}

/** A heavy request waiting for its turn (see runHeavy). */
interface HeavyJob {
  channel: Channel;
  msg: ConsumeMessage;
  job: Extract<Fate, { kind: "compute" }>;
  receivedAt: number;
}

export class RpcServer {
  private connection: RecoveringChannelModel | undefined;
  private readonly target: FailoverUrl;
  private channel: Channel | undefined;
  /** Where the current channel's publishes and acks go, chosen once per channel (see outlet.ts). */
  private outlet: Outlet | undefined;
  /** The consumer tags on the current channel (two for a moment while switching, see switchConsumer). */
  private readonly consumers = new Set<string>();
  private draining = false;
  private served = 0;
  private model: ChannelModel | undefined;
  /** Heavy requests waiting for their turn, and the loop computing them (see runHeavy). */
  private readonly heavyBacklog: HeavyJob[] = [];
  /** Direct Reply-to addresses found well-formed lately (decide checks each once). */
  private readonly directReplyTo = new DirectReplyToChecks();
  private heavyRun: Promise<void> | undefined;
  /** Deliveries acked already: each is acked exactly once. */
  private readonly acked = new WeakSet<ConsumeMessage>();
  /** Absent for an RpcServer used on its own, outside `fibrpc serve`: no crash is pinned, no key hashed. */
  private readonly ledger: CrashLedger | undefined;
  private readonly metrics: ServerMetrics;
  /** How redeliveries are counted (see setup). */
  private countAs: QueueType = "classic";
  private connectedOnce = false;
  /** The failure of the attempt that just failed, reported with the retry amqplib schedules next. */
  private lastFailure: FibrpcError | undefined;
  /** Whether the broker blocks the current connection (connection.blocked, see start). */
  private blocked = false;

  constructor(
    private readonly options: ServerOptions,
    private readonly events: ServerEvents,
  ) {
    this.target = new FailoverUrl(options.broker.urls);
    this.ledger = options.ledger;
    this.metrics = options.metrics ?? NO_METRICS;
  }

  /** Starts connecting; returns at once. Connection loss is recovered with backoff and jitter. */
  async start(): Promise<void> {
    const { options, target } = this;
    this.connection = await connect(target.target(), {
      ...socketOptions(options.broker.tls, target.socketTimeout),
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
      if (this.connectedOnce) this.metrics.reconnected();
      this.connectedOnce = true;
      this.events.onServing(target.current);
    });
    conn.on("disconnect", (err: Error) => {
      // A new connection starts unblocked: the broker blocks it again if it publishes while the
      // alarm lasts.
      if (this.blocked) this.setBlocked(false, "", true);
      const lost = target.current;
      // With several brokers, the next attempt goes to the next one (failover).
      target.advance();
      if (!this.draining) this.events.onInterrupted(lost, err.message);
    });
    conn.on("connect-failed", (err: Error) => this.onConnectFailed(err));
    // amqplib emits this right after "disconnect" or "connect-failed" (node_modules/amqplib/lib/
    // recovery.js, _scheduleReconnect), for every attempt it schedules: one report per attempt.
    conn.on("reconnect-scheduled", ({ attempt, delay }: { attempt: number; delay: number }) => {
      const error = this.lastFailure;
      this.lastFailure = undefined;
      if (!this.draining) this.events.onRetrying({ error, attempt, delayMs: delay });
      options.log.debug(`reconnecting to ${target.current} in ${delay} ms (attempt ${attempt})`);
    });
    conn.on("error", (err: Error) => options.log.debug(`connection error: ${err.message}`));
    // RabbitMQ blocks a connection that publishes during a resource alarm (memory, disk) and says
    // so with connection.blocked, then connection.unblocked once the alarm clears (RabbitMQ docs,
    // "Blocked Connection Notifications"). amqplib's recovering model forwards both from every
    // connection it opens (node_modules/amqplib/lib/recovery.js, _bindModel).
    conn.on("blocked", (reason: unknown) => this.setBlocked(true, typeof reason === "string" && reason ? reason : "no reason given"));
    conn.on("unblocked", () => this.setBlocked(false));
  }

  private setBlocked(blocked: boolean, reason = "", lost = false): void {
    if (blocked === this.blocked) return;
    this.blocked = blocked;
    this.options.log.debug(blocked ? `the broker blocks this connection: ${reason}` : lost ? "the blocked connection is gone" : "the broker unblocked this connection");
    if (blocked) this.events.onBlocked?.(reason);
    else this.events.onUnblocked?.(lost);
  }

  /**
   * Runs on every (re)connection: queue, channel, prefetch, consumer. amqplib's recovery listens
   * for this connection's errors only once set-up is done. A broker that closes the connection
   * during set-up (RabbitMQ 4.x with Khepri, a node cut off from its cluster's majority: 541
   * "metadata store operation timed out") would otherwise throw from an event with no listener
   * and end the worker. Here the attempt fails (onConnectFailed) with the broker's reason from
   * the connection's close, not the "Channel ended" the pending declaration is rejected with.
   */
  private async setup(model: ChannelModel): Promise<void> {
    const closed = new Promise<Error | undefined>((resolve) => model.once("close", (err?: Error) => resolve(err)));
    const duringSetup = (err: Error) => this.options.log.debug(`connection error during set-up: ${err.message}`);
    model.on("error", duringSetup);
    try {
      await this.declareAndConsume(model);
      // From here on amqplib's recovery listens (and start() logs what it reports).
      model.removeListener("error", duringSetup);
    } catch (err) {
      if (err instanceof FibrpcError) throw err;
      let cause = err;
      if (/Channel ended|Channel closed/i.test((err as Error)?.message ?? "")) {
        // The connection's close follows at once when the broker closed it; a channel closed on
        // its own leaves the connection open, and the channel's error stands.
        const reason = await new Promise<Error | undefined>((resolve) => {
          const timer = setTimeout(() => resolve(undefined), 2_000);
          void closed.then((error) => {
            clearTimeout(timer);
            resolve(error);
          });
        });
        cause = reason ?? err;
      }
      // The broker refuses the set-up (a permission, a reserved name, a limit, a locked queue):
      // said with its reason, and onConnectFailed stops, since waiting will not change it.
      throw brokerRefusal(cause, this.options.queue, this.target.currentUrl) ?? cause;
    }
  }

  private async declareAndConsume(model: ChannelModel): Promise<void> {
    const { options } = this;
    const queue = await declareOrJoinRequestQueue(model, options.queue, options.queueType);
    // Redeliveries are counted the classic way (a copy with fibrpc's own count) unless fibrpc
    // declared the queue itself: a joined queue's type is the operator's, and only a quorum queue
    // sets x-delivery-count.
    this.countAs = queue.declared ? options.queueType : "classic";
    if (!queue.declared) this.events.onNotice(joinedNotice(options.queue, options.queueType, queue));
    const channel = await model.createChannel();
    let consuming = false;
    channel.on("error", (err: Error) => {
      options.log.debug(`channel error: ${err.message}`);
      // A permission the broker refuses while serving (403 on publishing a reply: no write
      // permission) would close every channel after this one on the first reply, the request
      // redelivered each time: stop with the broker's reason instead. (During set-up, the
      // failed operation says it: setup.)
      const refused = consuming ? refusal(err, { url: this.target.currentUrl, queue: options.queue }) : undefined;
      if (refused?.code === "ACCESS_REFUSED" && !this.draining) this.fatal(refused);
    });
    channel.on("close", () => {
      if (this.channel !== channel) return;
      // Deliveries of a closed channel are back in the queue: nothing more is written or acked
      // for them (see finish), and heavy ones waiting their turn are skipped.
      this.channel = undefined;
      this.outlet = undefined;
      // A channel closed by the broker while the connection lives on: close the connection too,
      // so recovery rebuilds everything in one path.
      if (!this.draining) model.close().catch(() => {});
    });
    // Per consumer (global=false): RabbitMQ 4.3 refuses a channel-wide limit by default.
    await channel.prefetch(options.prefetch);
    const { outlet, fallback } = chooseOutlet(channel, options.outlet ?? "wire", () => (options.openFrameWriter ?? openWire)(model, channel));
    if (fallback) {
      options.log.warn(OUTLET_FALLBACK_MESSAGE);
      this.metrics.outletFallback();
    }
    this.outlet = options.wrapOutlet ? options.wrapOutlet(outlet) : outlet;
    this.channel = channel;
    this.model = model;
    this.consumers.clear();
    // A reconnection while draining: stay connected for the acks still to come, take nothing new.
    if (this.draining) return;
    this.consumers.add((await channel.consume(options.queue, (msg) => this.onDelivery(channel, model, msg))).consumerTag);
    consuming = true;
    // A drain that began while consume was on its way did not see this consumer.
    if (this.draining) await this.cancelConsumers(channel);
  }

  private onConnectFailed(err: Error): void {
    const { options } = this;
    // The broker refuses the set-up (setup() says how: a permission, a reserved name, a locked
    // queue, a deprecated feature, a queue it will not let us use): waiting will not change that.
    // A limit reached (the user's channels) may be passing once serve has served: it waits.
    const refusal = err instanceof FibrpcError ? err : brokerRefusal(err, options.queue);
    if (refusal && !(this.connectedOnce && refusal.details.reason === "limit")) {
      this.fatal(refusal);
      return;
    }
    const error = refusal ?? connectError(err, this.target.currentUrl);
    this.target.advance();
    // Waiting will not fix a refused login, vhost or connection limit, or an unverifiable
    // certificate at start-up: say so and stop. Once serving, the same errors may be passing (a
    // broker restarting, its definitions not loaded yet): keep trying, with the broker's reason.
    if (!this.connectedOnce && error.refusal) {
      this.fatal(error);
      return;
    }
    // The broker is down or restarting: serve waits for it, it never gives up on an outage.
    // (Reported with the retry amqplib schedules next, which says when.)
    this.lastFailure = error;
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
    const receivedAt = performance.now();
    if (msg.fields.redelivered) this.metrics.redelivered();
    let fate: Fate | undefined;
    try {
      const { options } = this;
      fate = decide(msg, { now: Date.now(), maxN: options.maxN, queueType: this.countAs, pauseForHeavy: options.prefetch > 1, crashes: this.crashesOf(msg), directReplyTo: this.directReplyTo });
      this.carryOut(channel, msg, fate, receivedAt);
    } catch (err) {
      // Nothing thrown in here may end the worker or its channel: answer INTERNAL (if anyone can
      // be answered) and ack, once.
      this.options.log.error(`unexpected error serving a request: ${err instanceof Error ? err.message : String(err)}`);
      this.answerInternal(channel, msg, fate, receivedAt);
    }
  }

  /** An INTERNAL error reply (in the request's format, if known), to whoever can be answered. */
  private answerInternal(channel: Channel, msg: ConsumeMessage, fate: Fate | undefined, receivedAt: number): void {
    const to = fate && "to" in fate ? fate.to : undefined;
    const format = fate?.kind === "compute" ? fate.format : "text";
    this.finish(channel, msg, to, encodeError(format, "INTERNAL", "the server failed while handling the request"), receivedAt);
  }

  /** Crashes pinned on this request, looked up only where one is possible: a request seen before. */
  private crashesOf(msg: ConsumeMessage): number {
    const { replyTo, correlationId } = msg.properties;
    if (!this.ledger || isFirstDelivery(msg)) return 0;
    if (typeof replyTo !== "string" || (correlationId !== undefined && typeof correlationId !== "string")) return 0;
    return this.ledger.crashes(requestKey(replyTo, correlationId, msg.content));
  }

  /** The executor: turns a fate into at most one publish and exactly one ack. */
  private carryOut(channel: Channel, msg: ConsumeMessage, fate: Fate, receivedAt: number): void {
    const { log } = this.options;
    switch (fate.kind) {
      case "drop":
        log.warn(`dropped a request: ${fate.reason}`);
        this.ack(channel, msg);
        this.metrics.answered("DROPPED", (performance.now() - receivedAt) / 1000);
        return;
      case "refuse":
        log.debug(`refused a request: ${fate.reply.body.toString("utf8", 0, 200)}`);
        return this.finish(channel, msg, fate.to, fate.reply, receivedAt);
      case "expired":
        // The caller has given up: do not compute. The reply costs nothing and explains itself.
        log.debug(`skipped a request whose caller gave up ${fate.lateMs} ms ago (by this server's clock)`);
        return this.finish(channel, msg, fate.to, fate.reply, receivedAt);
      case "poison":
        log.warn(`refused a request (correlation id ${preview(fate.to.correlationId ?? null)}): ${fate.why}; it is not tried again`);
        return this.finish(channel, msg, fate.to, fate.reply, receivedAt);
      case "republish":
        return this.republish(channel, msg, { [ATTEMPTS_HEADER]: fate.redeliveries }, receivedAt);
      case "compute":
        if (fate.heavy) return this.enqueueHeavy({ channel, msg, job: fate, receivedAt });
        return this.compute(channel, msg, fate, receivedAt);
    }
  }

  /** Computes fib(n) and replies; the one place a result is produced. */
  private compute(channel: Channel, msg: ConsumeMessage, job: Extract<Fate, { kind: "compute" }>, receivedAt: number): void {
    const { options } = this;
    this.ledger?.begin(requestKey(job.to.replyTo, job.to.correlationId, msg.content));
    try {
      let reply: EncodedMessage;
      try {
        // A compute seam is only given by the test build's fault injection (serve/faults.ts).
        const { compute } = options;
        reply = encodeResult(job.format, job.n, compute ? compute(job.n, { firstDelivery: isFirstDelivery(msg) }) : fibDecimal(job.n));
      } catch (err) {
        options.log.error(`computing fib(${job.n}) failed: ${err instanceof Error ? err.message : String(err)}`);
        reply = encodeError(job.format, "INTERNAL", `computing fib(${job.n}) failed on the server`, job.n);
      }
      options.log.debug(`fib(${job.n}) → ${reply.body.length} bytes to ${preview(job.to.replyTo)}`);
      this.finish(channel, msg, job.to, reply, receivedAt);
    } finally {
      // Only a worker that dies in between leaves the key behind: the crash is pinned on it.
      this.ledger?.end();
    }
  }

  /**
   * Fair dispatch with prefetch > 1. A heavy request (milliseconds of CPU) would keep drawing
   * requests to this worker while it computes, though other workers are idle. So before computing
   * one, the worker swaps its consumer for a standby one: prefetch 1 and consumer priority -1
   * (RabbitMQ delivers to a lower-priority consumer only while every higher one is at its
   * prefetch limit), and swaps back once its heavy requests are done. New requests go to idle
   * workers, the queue never shows zero consumers (callers check that a server is there), and
   * requests the broker had already sent wait for at most that computation; light ones among
   * them are answered at once. A per-consumer prefetch cannot be lowered on a live consumer, and
   * RabbitMQ 4.3 refuses the channel-wide (global) limit fibrpc used before.
   */
  private enqueueHeavy(item: HeavyJob): void {
    this.heavyBacklog.push(item);
    this.heavyRun ??= this.runHeavy(item.channel)
      .catch((err) => this.options.log.error(`unexpected error computing heavy requests: ${err instanceof Error ? err.message : String(err)}`))
      .finally(() => {
        this.heavyRun = undefined;
      });
  }

  private async runHeavy(channel: Channel): Promise<void> {
    for (;;) {
      await this.switchConsumer(channel, "standby");
      while (this.heavyBacklog.length > 0) {
        // One computation per event-loop turn: between two, the socket is read and written (acks
        // and replies go out, a drain request or other deliveries come in).
        await new Promise((resolve) => setImmediate(resolve));
        this.computeNextHeavy();
      }
      if (this.draining || this.channel !== channel) return;
      await this.switchConsumer(channel, "normal");
      // Heavy requests that arrived while switching back: another round. Otherwise done; no
      // delivery can come in between this check and the end of the run (both are microtasks).
      if (this.heavyBacklog.length === 0) return;
    }
  }

  private computeNextHeavy(): void {
    const item = this.heavyBacklog.shift()!;
    // Its channel is gone (connection lost): the broker has put the request back already.
    if (item.channel !== this.channel) return;
    try {
      // Draining: not started yet, so it goes back to the queue for another server.
      if (this.draining) this.republish(item.channel, item.msg, {}, item.receivedAt);
      else {
        this.options.log.debug(`computing heavy fib(${item.job.n}), taking no new requests meanwhile`);
        this.compute(item.channel, item.msg, item.job, item.receivedAt);
      }
    } catch (err) {
      this.options.log.error(`unexpected error serving a request: ${err instanceof Error ? err.message : String(err)}`);
      this.answerInternal(item.channel, item.msg, item.job, item.receivedAt);
    }
  }

  /**
   * Starts the new consumer before cancelling the old one, so the queue always has one. The
   * channel's prefetch setting applies to consumers started after it (basic.qos global=false).
   */
  private async switchConsumer(channel: Channel, mode: "standby" | "normal"): Promise<void> {
    const { options } = this;
    const model = this.model;
    if (!model || this.channel !== channel || this.draining) return;
    try {
      await channel.prefetch(mode === "standby" ? 1 : options.prefetch);
      if (this.draining) return;
      const { consumerTag } = await channel.consume(options.queue, (msg) => this.onDelivery(channel, model, msg), mode === "standby" ? { priority: -1 } : {});
      if (this.channel !== channel) return;
      const previous = [...this.consumers];
      this.consumers.clear();
      this.consumers.add(consumerTag);
      for (const tag of previous) await channel.cancel(tag);
      // A drain that began meanwhile did not know this consumer: cancel it too.
      if (this.draining) await this.cancelConsumers(channel);
    } catch {
      // The channel is gone: recovery consumes again on the new one.
    }
  }

  private async cancelConsumers(channel: Channel): Promise<void> {
    const tags = [...this.consumers];
    this.consumers.clear();
    for (const tag of tags) await channel.cancel(tag).catch(() => {});
  }

  /**
   * Puts a delivered request back in the queue as a new message: same properties, the remaining
   * deadline, its headers (the broker's delivery count dropped) plus `extraHeaders`; then acks the
   * delivery. Unlike a nack, this does not count as a failed delivery.
   */
  private republish(channel: Channel, msg: ConsumeMessage, extraHeaders: Record<string, number>, receivedAt: number): void {
    if (channel !== this.channel) return; // gone: the broker has put it back already
    const { properties } = msg;
    // The copy carries fibrpc's own headers only: nothing else in the request is read by a
    // server, and a client's headers could come back larger than they went in (bytes that were
    // not UTF-8 re-encode as U+FFFD) and no longer fit one frame.
    const headers: Record<string, number> = {};
    const deadline = readDeadline(properties.headers);
    if (deadline.ok && deadline.at !== undefined) headers[DEADLINE_HEADER] = clampToSafeInteger(deadline.at);
    const attempts = header(properties.headers, ATTEMPTS_HEADER);
    if (typeof attempts === "number" && Number.isSafeInteger(attempts) && attempts >= 0) headers[ATTEMPTS_HEADER] = attempts;
    Object.assign(headers, extraHeaders);
    const copy: PublishProperties = {
      replyTo: properties.replyTo as string,
      correlationId: properties.correlationId as string | undefined,
      contentType: properties.contentType as string | undefined,
      headers,
    };
    if (deadline.ok && deadline.at !== undefined) copy.expiration = String(Math.min(MAX_EXPIRATION_MS, Math.max(1, Math.ceil(deadline.at - Date.now()))));
    try {
      this.publishTo(this.options.queue, msg.content, copy);
    } catch (err) {
      // Cannot happen with what decide() lets through; if it does, answer rather than lose it.
      this.options.log.error(`could not put a request back in the queue: ${err instanceof Error ? err.message : String(err)}`);
      const to: Address = { replyTo: copy.replyTo!, correlationId: copy.correlationId };
      return this.finish(channel, msg, to, encodeError("text", "INTERNAL", "the server could not requeue the request"), receivedAt);
    }
    this.ack(channel, msg);
  }

  /**
   * Publishes the reply (if anyone can be answered) and acks, in one socket write with the fast
   * path. Publish first, so a server dying in between leaves the request to be redelivered. One
   * exception: a request seen before whose reply goes to a Direct Reply-to address is acked
   * first. RabbitMQ 3.x closes the replying connection when that caller's node has left the
   * cluster, which loses an ack written after the reply: the request would come back and close
   * the next server's connection too, forever. Acked first (the broker handles the ack before the
   * publish that follows it in the same write), it comes back once at most. Only requests seen
   * before pay for it: acking first delays the reply by the broker's handling of the ack (a few
   * % of calls/s at one call in flight, docs/benchmarks.md).
   */
  private finish(channel: Channel, msg: ConsumeMessage, to: Address | undefined, reply: EncodedMessage, receivedAt: number): void {
    // The delivery's channel is gone: the broker has put the request back for another try.
    if (channel !== this.channel) return;
    if (to && isDirectReplyTo(to.replyTo) && !isFirstDelivery(msg)) {
      this.ack(channel, msg);
      this.publish(to, reply);
    } else {
      if (to) this.publish(to, reply);
      this.ack(channel, msg);
    }
    this.served++;
    this.metrics.answered(reply.code ?? "ok", (performance.now() - receivedAt) / 1000);
  }

  /** Publishes one reply. A reply that cannot be sent is logged, never thrown: it must not cost the channel. */
  private publish(to: Address, reply: EncodedMessage): void {
    try {
      this.publishTo(to.replyTo, reply.body, { correlationId: to.correlationId, contentType: reply.contentType, type: reply.type });
    } catch (err) {
      this.options.log.warn(`could not send a reply to ${preview(to.replyTo)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private publishTo(routingKey: string, body: Uint8Array, properties: PublishProperties): void {
    this.outlet?.publish(routingKey, body, properties);
  }

  /**
   * Acks a delivery exactly once, and only on the channel it came from: an unknown or repeated
   * delivery tag would make the broker close the channel (406 PRECONDITION_FAILED).
   */
  private ack(channel: Channel, msg: ConsumeMessage): void {
    if (channel !== this.channel || this.acked.has(msg)) return;
    this.acked.add(msg);
    this.outlet?.ack(msg);
  }

  /** Requests delivered and not answered yet (heavy ones waiting their turn). */
  get inFlight(): number {
    return this.heavyBacklog.length;
  }

  get requestsServed(): number {
    return this.served;
  }

  /**
   * Graceful stop: cancel the consumers (no new deliveries), let the requests already delivered
   * be answered (light ones at once, the heavy one being computed to its end), put the heavy ones
   * not started back in the queue as copies (republish: not counted as redeliveries), then close.
   */
  async drain(): Promise<void> {
    this.draining = true;
    const { channel } = this;
    // If the channel is already gone, its unacked deliveries are back in the queue.
    if (channel) await this.cancelConsumers(channel);
    // Requests already delivered are answered synchronously as they arrive, except heavy ones,
    // which wait their turn: the one being computed finishes, the others go back to the queue.
    await this.heavyRun;
    // Replies and acks held while the socket was full go out before the channel closes (else
    // the broker would requeue requests already answered).
    await this.outlet?.flushed();
    // channel.close goes through amqplib's muxer, after any frame still queued there; the
    // connection's close frame does not, so close the channel first.
    await channel?.close().catch(() => {});
    await this.connection?.close().catch(() => {});
  }
}

/** A deadline as an integer header value (a client may have sent 1e300 or a fraction). */
function clampToSafeInteger(value: number): number {
  return Math.max(Number.MIN_SAFE_INTEGER, Math.min(Number.MAX_SAFE_INTEGER, Math.round(value)));
}
