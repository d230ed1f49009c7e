/**
 * The serving side, as one worker runs it: one connection (connection.ts: recovery, failover,
 * refusals), and on each connection one channel (serving-channel.ts) whose consumer the scheduler
 * runs (scheduler.ts: a standby consumer while heavy requests are computed). What becomes of each
 * delivery is the executor's (executor.ts). This module puts those parts together, sets up each
 * connection, and stops them all (drain).
 */
import type { Channel, ChannelModel } from "amqplib";
import type { FibrpcError } from "../errors.ts";
import { refusal } from "./broker-errors.ts";
import type { BrokerTarget } from "./broker.ts";
import { ServeConnection, type ServerEvents } from "./connection.ts";
import { Executor, type DeliveryMetrics, type ExecutorOptions } from "./executor.ts";
import { IsolatedReplies } from "./isolated-replies.ts";
import { chooseOutlet, OUTLET_FALLBACK_MESSAGE, type Outlet, type OutletMode } from "./outlet.ts";
import { declareOrJoinRequestQueue, joinedNotice, type QueueType } from "./queue.ts";
import { Scheduler } from "./scheduler.ts";
import { ServingChannel, type ChannelHost } from "./serving-channel.ts";
import { openWire } from "./wire.ts";
import { quote } from "../printable.ts";

export type { ServerEvents } from "./connection.ts";

export interface ServerOptions extends ExecutorOptions {
  broker: BrokerTarget;
  queueType: QueueType;
  /** Counts what happens, for /metrics; called on the hot path, so keep it cheap. */
  metrics?: ServerMetrics;
  /** Wraps the channel's outlet (publish and ack), once per channel. */
  wrapOutlet?: (outlet: Outlet) => Outlet;
  /** The frame writer where it attaches (default), or amqplib's own publish and ack (outlet.ts). */
  outlet?: OutletMode;
  /** Attaches the frame writer (default wire.ts openWire); undefined means it cannot. */
  openFrameWriter?: (model: ChannelModel, channel: Channel) => Outlet | undefined;
  /** The process's lead worker: a lead consumer beside the normal one (scheduler.ts). */
  lead?: boolean;
  /** Opens the connection for replies apart (default: one to the serving connection's broker; isolated-replies.ts). */
  openIsolated?: (open: () => Promise<ChannelModel>) => Promise<ChannelModel>;
}

/** What a server reports as it goes (serve/stats.ts keeps the counters). */
export interface ServerMetrics extends DeliveryMetrics {
  reconnected(): void;
  /** A channel publishes and acks through amqplib's own methods: the frame writer could not attach. */
  outletFallback(): void;
}

/** A declaration unanswered this long is said (once per process): serve would otherwise be silent meanwhile. */
const SLOW_MS = 10_000;

/**
 * RabbitMQ answers a declaration only once a majority of the nodes agree where it must: a quorum queue's
 * members on any release, and on Khepri (4.3) the cluster's metadata for any queue. A node cut off from its
 * majority leaves it unanswered (about 30 s to a minute before it gives up).
 */
function slowDeclarationNotice(queue: string, connection: ServeConnection): string {
  return (
    `the broker at ${connection.target.current} has not answered the declaration of queue ${quote(queue)} ` +
    `for ${SLOW_MS / 1000} s: a node cut off from its cluster's majority cannot declare a quorum queue ` +
    "(nor, on RabbitMQ 4.3, any queue); bring the other nodes back (rabbitmqctl cluster_status); serve waits"
  );
}

const NOTHING = () => {};
const NO_METRICS: ServerMetrics = {
  answered: NOTHING,
  redelivered: NOTHING,
  reconnected: NOTHING,
  outletFallback: NOTHING,
};

export class RpcServer {
  private readonly connection: ServeConnection;
  /** The channel consuming now; dropped whole when it closes. */
  private channel: ServingChannel | undefined;
  /** What the current channel asks of the server. */
  private readonly host: ChannelHost;
  private readonly executor: Executor;
  private readonly scheduler: Scheduler;
  private draining = false;
  private readonly metrics: ServerMetrics;

  constructor(
    private readonly options: ServerOptions,
    private readonly events: ServerEvents,
  ) {
    const { queue, prefetch, log } = options;
    const draining = () => this.draining;
    this.metrics = options.metrics ?? NO_METRICS;
    this.executor = new Executor(options, this.metrics, draining, (job) => this.scheduler.enqueue(job));
    this.scheduler = new Scheduler({ queue, prefetch, log, draining, lead: options.lead === true }, this.executor);
    this.connection = new ServeConnection(
      {
        broker: options.broker,
        queue,
        log,
        draining,
        setUp: (model) => this.declareAndConsume(model),
        reconnected: () => this.metrics.reconnected(),
        fatal: (error) => this.fatal(error),
      },
      events,
    );
    this.host = {
      queue,
      prefetch,
      log,
      isolated: new IsolatedReplies(() => {
        const open = () => this.connection.openBeside("fibrpc serve (replies apart)");
        return options.openIsolated ? options.openIsolated(open) : open();
      }, log),
      failed: (err) => this.channelFailed(err),
      closed: (via) => this.channelClosed(via),
    };
  }

  /** Starts connecting; returns at once. Connection loss is recovered with backoff and jitter. */
  start(): Promise<void> {
    return this.connection.start();
  }

  /** Runs on every (re)connection: queue, channel, prefetch, consumer (connection.ts, setup). */
  private async declareAndConsume(model: ChannelModel): Promise<void> {
    const { options } = this;
    const { vhost } = this.connection.target.currentUrl;
    const slow = setTimeout(() => this.events.onNotice(slowDeclarationNotice(options.queue, this.connection)), SLOW_MS);
    let queue: Awaited<ReturnType<typeof declareOrJoinRequestQueue>>;
    try {
      queue = await declareOrJoinRequestQueue(model, options.queue, options.queueType, vhost);
    } finally {
      clearTimeout(slow);
    }
    // Redeliveries are counted the classic way (a copy with fibrpc's own count) unless fibrpc
    // declared the queue itself: a joined queue's type is the operator's, and only a quorum queue
    // sets x-delivery-count.
    const countAs = queue.declared ? options.queueType : "classic";
    if (!queue.declared) this.events.onNotice(joinedNotice(options.queue, options.queueType, queue));
    else if (queue.notice !== undefined) this.events.onNotice(queue.notice);
    const { hostname: address, port } = this.connection.target.currentUrl;
    const outletFor = (ch: Channel) => this.outletFor(model, ch);
    const channel = await ServingChannel.create(model, this.host, countAs, outletFor, { address, port });
    this.channel = channel;
    await this.scheduler.consume(channel);
  }

  /** Where a channel's publishes and acks go, chosen once per channel (see outlet.ts). */
  private outletFor(model: ChannelModel, channel: Channel): Outlet {
    const { options } = this;
    const { outlet, fallback } = chooseOutlet(channel, options.outlet ?? "wire", () =>
      (options.openFrameWriter ?? openWire)(model, channel),
    );
    if (fallback) {
      options.log.warn(OUTLET_FALLBACK_MESSAGE);
      this.metrics.outletFallback();
    }
    return options.wrapOutlet ? options.wrapOutlet(outlet) : outlet;
  }

  /**
   * A permission the broker refuses while serving (403 on publishing a reply: no write
   * permission) would close every channel after this one on the first reply, the request
   * redelivered each time: stop with the broker's reason instead.
   */
  private channelFailed(err: Error): void {
    this.connection.channelClosedBy(err);
    const refused = refusal(err, { url: this.connection.target.currentUrl, queue: this.options.queue });
    if (refused?.code === "ACCESS_REFUSED" && !this.draining) this.fatal(refused);
  }

  private channelClosed(via: ServingChannel): void {
    if (this.channel !== via) return;
    // Deliveries of a closed channel are back in the queue: nothing more is written or acked
    // for them (serving-channel.ts, settle), and heavy ones waiting their turn are skipped.
    this.channel = undefined;
    // A channel closed by the broker while the connection lives on: close the connection too,
    // so recovery rebuilds everything in one path.
    if (!this.draining) via.model.close().catch(() => {});
  }

  /** A refusal that waiting will not fix: stop, and say why. */
  private fatal(error: FibrpcError): void {
    this.draining = true;
    void this.host.isolated.close();
    void this.connection.close();
    this.events.onFatal(error);
  }

  /** Requests delivered and not answered yet (heavy ones waiting their turn). */
  get inFlight(): number {
    return this.scheduler.waiting;
  }

  get requestsServed(): number {
    return this.executor.requestsServed;
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
    if (channel) await this.scheduler.cancelConsumers(channel);
    // Requests already delivered are answered synchronously as they arrive, except heavy ones,
    // which wait their turn: the one being computed finishes, the others go back to the queue.
    await this.scheduler.done;
    // Replies apart still queued are not sent: their requests go back to the queue (isolated-replies.ts).
    const isolatedClosed = this.host.isolated.close();
    // Replies and acks held while the socket was full go out before the channel closes (else
    // the broker would requeue requests already answered).
    await this.channel?.flushed();
    // channel.close goes through amqplib's muxer, after any frame still queued there; the
    // connection's close frame does not, so close the channel first.
    await channel?.close();
    await isolatedClosed;
    await this.connection.close();
  }
}
