/**
 * serve's one connection, recovered by amqplib (node_modules/amqplib/lib/recovery.js) with backoff
 * and jitter, failing over to the next broker after a lost connection or a failed attempt. On
 * every (re)connection it runs the server's set-up (server.ts), says what happens to it (events),
 * and tells a refusal that waiting will not fix from an outage that it may.
 */
import { connect, type ChannelModel, type RecoveringChannelModel } from "amqplib";
import { FibrpcError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { brokerRefusal, channelClosedReason, connectError, lostReason } from "./broker-errors.ts";
import { connectFields, FailoverUrl, socketOptions, type BrokerTarget } from "./broker.ts";

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

/** What the connection needs from the server it serves. */
export interface ConnectionHost {
  readonly broker: BrokerTarget;
  readonly queue: string;
  readonly log: Logger;
  draining(): boolean;
  /** The queue, channel and consumer, on each new connection (server.ts). */
  setUp(model: ChannelModel): Promise<void>;
  /** Connected again after a lost connection (for /metrics). */
  reconnected(): void;
  /** A refusal that waiting will not fix: stop serving. */
  fatal(error: FibrpcError): void;
}

export class ServeConnection {
  private connection: RecoveringChannelModel | undefined;
  readonly target: FailoverUrl;
  private connectedOnce = false;
  /** The failure of the attempt that just failed, reported with the retry amqplib schedules next. */
  private lastFailure: FibrpcError | undefined;
  /** Why the broker closed the current connection's channel, if it did: the connection closed after it says so. */
  private channelError: Error | undefined;
  /** Whether the broker blocks the current connection (connection.blocked, see start). */
  private blocked = false;
  /**
   * Before serve ever served: the brokers (by place) whose attempt failed, and the first refusal of the login,
   * the vhost or the certificate. A refusing broker is passed over for the next (a node of a cluster with stale
   * definitions must not stop every server); once every one has failed, refused or unreachable, serve stops
   * with that refusal, as with one URL, and as call does.
   */
  private readonly failedAtStart = new Set<number>();
  private firstRefusal: FibrpcError | undefined;

  constructor(
    private readonly host: ConnectionHost,
    private readonly events: ServerEvents,
  ) {
    this.target = new FailoverUrl(host.broker.urls);
  }

  /** Starts connecting; returns at once. Connection loss is recovered with backoff and jitter. */
  async start(): Promise<void> {
    const { host, target } = this;
    this.connection = await connect(target.target(), {
      ...socketOptions(host.broker.tls, target.socketTimeout),
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
      host.log.debug(`connected to ${target.current}`);
      if (this.connectedOnce) host.reconnected();
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
      // serve closes the connection itself after the broker closed its channel (server.ts): the channel's reason.
      const reason = this.channelError === undefined ? lostReason(err) : channelClosedReason(this.channelError);
      this.channelError = undefined;
      // Said while draining too: the requests in progress then go back to the queue, not answered by this serve
      // (the supervisor's drain line says so). serve's own close at the drain's end emits no disconnect.
      this.events.onInterrupted(lost, reason);
    });
    conn.on("connect-failed", (err: Error) => this.onConnectFailed(err));
    // amqplib emits this right after "disconnect" or "connect-failed" (node_modules/amqplib/lib/
    // recovery.js, _scheduleReconnect), for every attempt it schedules: one report per attempt.
    conn.on("reconnect-scheduled", ({ attempt, delay }: { attempt: number; delay: number }) => {
      const error = this.lastFailure;
      this.lastFailure = undefined;
      if (!host.draining()) this.events.onRetrying({ error, attempt, delayMs: delay });
      host.log.debug(`reconnecting to ${target.current} in ${delay} ms (attempt ${attempt})`);
    });
    conn.on("error", (err: Error) => host.log.debug(`connection error: ${err.message}`));
    // RabbitMQ blocks a connection that publishes during a resource alarm (memory, disk) and says
    // so with connection.blocked, then connection.unblocked once the alarm clears (RabbitMQ docs,
    // "Blocked Connection Notifications"). amqplib's recovering model forwards both from every
    // connection it opens (node_modules/amqplib/lib/recovery.js, _bindModel).
    conn.on("blocked", (reason: unknown) => {
      this.setBlocked(true, typeof reason === "string" && reason ? reason : "no reason given");
    });
    conn.on("unblocked", () => this.setBlocked(false));
  }

  private setBlocked(blocked: boolean, reason = "", lost = false): void {
    if (blocked === this.blocked) return;
    this.blocked = blocked;
    const unblocked = lost ? "the blocked connection is gone" : "the broker unblocked this connection";
    this.host.log.debug(blocked ? `the broker blocks this connection: ${reason}` : unblocked);
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
    const duringSetup = (err: Error) => this.host.log.debug(`connection error during set-up: ${err.message}`);
    model.on("error", duringSetup);
    try {
      await this.host.setUp(model);
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
      throw brokerRefusal(cause, this.host.queue, this.target.currentUrl) ?? cause;
    }
  }

  private onConnectFailed(err: Error): void {
    const { host } = this;
    // The broker refuses the set-up (setup() says how: a permission, a reserved name, a locked
    // queue, a deprecated feature, a queue it will not let us use): waiting will not change that.
    // A limit reached (the user's channels) may be passing once serve has served: it waits.
    const refusal = err instanceof FibrpcError ? err : brokerRefusal(err, host.queue);
    if (refusal && !(this.connectedOnce && refusal.details.reason === "limit")) {
      host.fatal(refusal);
      return;
    }
    const error = refusal ?? connectError(err, this.target.currentUrl);
    const failed = this.target.position;
    this.target.advance();
    // Waiting will not fix a refused login, vhost or connection limit, or an unverifiable
    // certificate at start-up: say so and stop, once every broker has been tried (the others first,
    // as call tries them). Once serving, the same errors may be passing (a broker restarting, its
    // definitions not loaded yet): keep trying, with the broker's reason.
    if (!this.connectedOnce) {
      this.failedAtStart.add(failed);
      // A port that speaks another protocol (amqps:// to a plain port, an HTTP server) is a URL to fix too.
      const fixable = error.refusal || error.details.reason === "wrong-protocol";
      if (fixable) this.firstRefusal ??= error;
      if (this.firstRefusal && this.failedAtStart.size >= this.target.count) {
        host.fatal(this.firstRefusal);
        return;
      }
      if (fixable) {
        // Said once per process (every worker meets the same refusal).
        this.events.onNotice(`${error.message}; trying the next broker URL`);
        return;
      }
    }
    // The broker is down or restarting: serve waits for it, it never gives up on an outage.
    // (Reported with the retry amqplib schedules next, which says when.)
    this.lastFailure = error;
  }

  /** The broker closed this connection's channel with `err`: the lost connection that follows says why. */
  channelClosedBy(err: Error): void {
    this.channelError ??= err;
  }

  /**
   * A connection of its own, without recovery, to the broker this one is on now (isolated-replies.ts: for
   * replies that may make the broker close the connection they go on).
   */
  openBeside(name: string): Promise<ChannelModel> {
    const { host, target } = this;
    return connect(connectFields(target.currentUrl), {
      ...socketOptions(host.broker.tls, target.socketTimeout),
      clientProperties: { connection_name: name },
    });
  }

  close(): Promise<void> {
    return this.connection?.close().catch(() => {}) ?? Promise.resolve();
  }
}
