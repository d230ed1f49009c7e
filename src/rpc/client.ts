/**
 * The calling side: one connection, one channel, one reply consumer, and the calls in flight
 * keyed by correlation id. Calls are pipelined: `call()` publishes at once and returns a promise;
 * replies are matched as they come, in any order.
 */
import type { Channel, ChannelModel, ConsumeMessage, Message } from "amqplib";
import { displayUrl, type BrokerUrl } from "../broker-url.ts";
import { duration } from "../duration.ts";
import { ExitCode, FibrpcError, messageOf } from "../errors.ts";
import { isNotFound, lostReason, refusal, reservedQueueName, setUpError } from "./broker-errors.ts";
import { connectToFirst, type BrokerTarget } from "./broker.ts";
import {
  BATCH_REPLY_TYPE,
  DEADLINE_HEADER,
  decodeBatch,
  decodeReply,
  encodeRequest,
  preview,
  REPLY_BATCH_HEADER,
  REPLY_FORMAT_HEADER,
  type DecodedReply,
} from "./protocol.ts";
import { ConfirmTracker } from "./confirms.ts";
import { chooseOutlet, OUTLET_FALLBACK_MESSAGE, type Outlet, type OutletMode } from "./outlet.ts";
import { openWire } from "./wire.ts";
import type { RetryOf, SendSpan, TraceIds, Tracer } from "../tracing/tracer.ts";
import { quote } from "../printable.ts";

/** RabbitMQ's Direct Reply-to pseudo-queue: replies come straight back on this channel, no queue declared. */
export const DIRECT_REPLY_TO = "amq.rabbitmq.reply-to";
/**
 * Below this, a request the broker did not confirm in time (or a look at the queue it did not answer, await-server.ts)
 * says the timeout was too short rather than
 * blaming the broker: a healthy one confirms a request in about a millisecond (docs/benchmarks.md, p50).
 */
export const TOO_SHORT_TO_CONFIRM_MS = 100;

export type ReplyQueueMode = "direct" | "exclusive";

export interface CloseOptions {
  waitForBroker?: boolean;
  callsEndWith?: FibrpcError;
}

/** What the client logs through: the CLI's consola logger, or the library's (index.ts) silence. */
export interface ClientLog {
  /** The extra arguments are fields for the log line (a call's trace ids, log.ts). */
  debug(message: string, ...fields: unknown[]): void;
  info(message: string, ...fields: unknown[]): void;
  warn(message: string, ...fields: unknown[]): void;
}

export interface ClientOptions {
  broker: BrokerTarget;
  queue: string;
  replyQueue: ReplyQueueMode;
  /** Each call's budget, end to end, unless call() is given its own deadline. */
  timeoutMs: number;
  log: ClientLog;
  /**
   * Publish with publisher confirms (default: true). Off only to measure what they cost: the
   * commands turn them off for FIBRPC_PUBLISHER_CONFIRMS=off (env-settings.ts), the seam
   * `bun run bench` uses, as FIBRPC_OUTLET=amqplib (`outlet`) is the frame writer's.
   */
  publisherConfirms?: boolean;
  /** The frame writer where it attaches (default), or amqplib's own publish and ack (outlet.ts). */
  outlet?: OutletMode;
  /**
   * With tracing on: a send span per request, its context in the request's headers (tracing/tracer.ts).
   * Undefined (tracing off) costs each call one check.
   */
  tracer?: Tracer;
  /** The connection's name in the broker's management UI and `rabbitmqctl list_connections` (default "fibrpc call"). */
  connectionName?: string;
}

/**
 * With tracing on, the call's send span (tracing/tracer.ts): its traceparent (a retry links to it) and its
 * ids (for the lines logged about the call, and call --json's trace_id); absent with it off.
 */
type Traced = { traceparent?: string; trace?: TraceIds };

export type CallOutcome =
  | ({ n: number; ok: true; result: string; ms: number } & Traced)
  | ({
      n: number;
      ok: false;
      code: string;
      message: string;
      remote: boolean;
      error?: FibrpcError;
      ms: number;
    } & Traced);

/** How a send (a request whose reply goes to another queue) ended: taken by the broker, or an error as a call's. */
export type SendOutcome =
  | ({ n: number; ok: true; correlationId: string; ms: number } & Traced)
  | Extract<CallOutcome, { ok: false }>;

/** The exit code a call's outcome stands for: an error of ours carries one; an error reply is REMOTE_ERROR. */
export function exitCodeOf(outcome: CallOutcome): ExitCode {
  return outcome.ok ? ExitCode.OK : (outcome.error?.exitCode ?? ExitCode.REMOTE_ERROR);
}

/** basic.ack / basic.nack from the broker, as amqplib emits them on the channel. */
interface ConfirmFields {
  deliveryTag: number;
  multiple: boolean;
}

/** A call whose attempt here timed out, still answerable by a reply to it (awaitLate). */
interface LateAnswer {
  n: number;
  /** The call's deadline (ms since the epoch). */
  deadline: number;
  deliver: (outcome: CallOutcome) => void;
  /** The connection or channel is gone: no reply to it can come here any more. */
  gone: () => void;
}

interface PendingCall {
  n: number;
  startedAt: number;
  /** The deadline its request carries (ms since the epoch): the whole call's under --retry (see `holdUntil`). */
  deadline: number;
  /** Its order among this client's requests: a reply to a later one means this one was overtaken. */
  seq: number;
  /**
   * Under --retry, the call's deadline (ms since the epoch): past the attempt's window, the request is kept
   * waiting while it is queued behind requests being answered (onWindowEnd), not sent again.
   */
  holdUntil?: number;
  /** When its window last ended with it kept waiting (ms since the epoch; its sending at first). */
  checkedAt: number;
  /** A retry (not a call's first attempt): an earlier attempt's late answer may come under its correlation id. */
  retried: boolean;
  timer: ReturnType<typeof setTimeout>;
  settle: (outcome: CallOutcome) => void;
  /** The broker confirmed it took the request (publisher confirms): an answer is up to the servers now. */
  confirmed: boolean;
  /** Its reply goes elsewhere (send): done once confirmed. */
  sent: boolean;
}

export class RpcClient {
  private readonly pending = new Map<string, PendingCall>();
  /**
   * Calls whose attempt on this client timed out while --retry sends another (rpc/retry.ts): their request may
   * still be answered here, to this client's reply address, before the call's deadline; the answer is the call's.
   */
  private readonly late = new Map<string, LateAnswer>();
  private readonly idPrefix = `${crypto.randomUUID()}.`;
  private nextId = 0;
  private closing = false;
  private lost = false;
  /** The connection or channel is gone (lost: also a client retired, whose connection still answers). */
  private gone = false;
  private replyTo = DIRECT_REPLY_TO;
  /** Where requests are published, chosen once (see outlet.ts). */
  private outlet: Outlet | undefined;
  /**
   * Publisher confirms: each request the broker has not confirmed yet, as its call. The call,
   * not its correlation id: a retry on this connection (--retry after REJECTED or BROKER_BLOCKED)
   * reuses the id, and a late confirm of the first attempt must not settle the second.
   */
  private readonly unconfirmed = new ConfirmTracker<{ correlationId: string; call: PendingCall }>();
  /**
   * Why the broker blocks this connection's publishes (connection.blocked), and since when;
   * undefined when not blocked.
   */
  private blocked: { reason: string; since: number } | undefined;
  /** Requests published, numbering them (PendingCall.seq). */
  private published = 0;
  /** When a reply last answered a call (ms since the epoch), and the latest-sent call answered (its seq). */
  private lastAnswerAt = 0;
  /** When the broker last confirmed a request of this client's (performance.now()). */
  private lastConfirmAt = Number.NEGATIVE_INFINITY;
  private latestAnswered = 0;

  private constructor(
    private readonly options: ClientOptions,
    private readonly connection: ChannelModel,
    private readonly channel: Channel,
    /** The broker this client is connected to (one of options.broker.urls). */
    private readonly url: BrokerUrl,
    /** The channel is in confirm mode: each request is tracked until the broker acks or nacks it. */
    private readonly confirms: boolean,
  ) {}

  /**
   * Connects and starts the reply consumer; throws a FibrpcError (code and details) on failure. The
   * connection attempt ends by `deadline` (ms since the epoch) at the latest.
   */
  static async connect(options: ClientOptions, deadline = Date.now() + options.timeoutMs): Promise<RpcClient> {
    const name = options.connectionName ?? "fibrpc call";
    const { model: connection, url } = await connectToFirst(options.broker, deadline, name, (error) =>
      options.log.debug(error.message),
    );
    // The broker may refuse the set-up below and close the connection (a channel over the
    // user's limit): its reason comes as this event, before the pending operation fails.
    let closedBy: unknown;
    connection.on("error", (err) => (closedBy ??= err));
    try {
      // A confirm channel: the broker acks each request once it has taken it, and nacks one it
      // refuses (a queue at its length limit with overflow reject-publish), which then fails at once.
      const confirms = options.publisherConfirms ?? true;
      const channel = confirms ? await connection.createConfirmChannel() : await connection.createChannel();
      const client = new RpcClient(options, connection, channel, url, confirms);
      // The first look at the request queue runs alongside the reply consumer's set-up: a cold
      // `fibrpc call` pays one round trip for both, not two.
      client.firstCount = client.probeConsumerCount();
      client.firstCount.catch(() => {});
      await client.start();
      return client;
    } catch (err) {
      connection.close().catch(() => {});
      // A refusal (the reply queue or its consumer without permission, a limit): the broker's reason.
      const context = { url, queue: options.queue };
      throw refusal(closedBy, context) ?? setUpError(err, context);
    }
  }

  /** The broker's close of the channel or the connection, if it closed one: why calls failed. */
  private closedBy: unknown;

  private firstCount: Promise<number> | undefined;

  private async start(): Promise<void> {
    const { channel, options } = this;
    // Errors arrive as 'close' events too; the handlers below fail the pending calls.
    channel.on("error", (err) => {
      this.closedBy ??= err;
      this.options.log.debug(`channel error: ${err.message}`);
    });
    this.connection.on("error", (err) => {
      this.closedBy ??= err;
      this.options.log.debug(`connection error: ${err.message}`);
    });
    // Calls in flight fail at once, not at their timeout: their replies cannot arrive any more
    // (Direct Reply-to and exclusive reply queues die with the channel).
    const onLost = () => {
      this.lost = true;
      this.gone = true;
      this.failAll(this.lostError());
      // Nor can a late answer come now.
      const late = [...this.late.values()];
      this.late.clear();
      for (const call of late) call.gone();
    };
    // A connection the broker closes (an operator's close_connection, a restart) closes its channels first, then
    // itself with the broker's reason (amqplib emits no "error" for 320 CONNECTION_FORCED): the channel's close
    // waits for that reason, a microtask later, so that the calls and bench's line say why.
    channel.on("close", () => queueMicrotask(onLost));
    this.connection.on("close", (err?: Error) => {
      if (err) this.closedBy ??= err;
      onLost();
    });
    // A mandatory request that no queue could take comes back here (before its confirm).
    channel.on("return", (msg: Message) => this.onReturned(msg));
    channel.on("ack", (fields: ConfirmFields) => this.onConfirm(fields, true));
    channel.on("nack", (fields: ConfirmFields) => this.onConfirm(fields, false));
    // A resource alarm (memory, disk): the broker stops reading from publishing connections
    // until it clears, and says so (connection.blocked, RabbitMQ docs "Blocked Connection
    // Notifications"). Calls keep their deadlines; one that runs out while blocked says why.
    this.connection.on("blocked", (reason: unknown) =>
      this.onBlocked(typeof reason === "string" && reason !== "" ? reason : "no reason given"),
    );
    this.connection.on("unblocked", () => this.onUnblocked());
    if (options.replyQueue === "exclusive") {
      // The tutorial's way: a server-named, exclusive callback queue for this client.
      const { queue } = await channel.assertQueue("", { exclusive: true, autoDelete: true });
      this.replyTo = queue;
    }
    await channel.consume(this.replyTo, (msg) => msg && this.onReply(msg), { noAck: true });
    const { outlet, fallback } = chooseOutlet(channel, this.options.outlet ?? "wire", () =>
      openWire(this.connection, channel),
    );
    if (fallback) this.options.log.warn(OUTLET_FALLBACK_MESSAGE);
    this.outlet = outlet;
  }

  /**
   * Sends one request; the promise settles with its outcome by `deadline` (ms since the epoch)
   * and never rejects. The request carries its deadline: as AMQP `expiration`, so the broker
   * drops it if no server picked it up in time, and as a header, so a server skips work whose
   * caller has given up. Under --retry, `deadline` ends the attempt's window and `holdUntil` the call:
   * the request carries the latter, and may be kept waiting past the window (see onWindowEnd).
   */
  call(
    n: number,
    deadline = Date.now() + this.options.timeoutMs,
    correlationId = this.newCorrelationId(),
    retry?: RetryOf,
    attempt = 1,
    holdUntil?: number,
  ): Promise<CallOutcome> {
    return this.request(n, deadline, correlationId, retry, undefined, attempt, holdUntil);
  }

  /**
   * Sends one request whose reply goes to the queue `replyTo`, for another program to consume (call
   * --reply-to --no-wait: an asynchronous pipeline). It settles once the broker has confirmed it took
   * the request (publisher confirms; without them, once written), or with why not by `deadline`, and
   * never rejects. The request carries no deadline: it waits in the queue until a server takes it.
   */
  send(n: number, replyTo: string, deadline = Date.now() + this.options.timeoutMs): Promise<SendOutcome> {
    const correlationId = this.newCorrelationId();
    return this.request(n, deadline, correlationId, undefined, replyTo).then((outcome) =>
      outcome.ok ? { n, ok: true, correlationId, ms: outcome.ms, trace: outcome.trace } : outcome,
    );
  }

  /** call and send: `replyTo` undefined for a call, whose reply comes back here. */
  private request(
    n: number,
    deadline: number,
    correlationId: string,
    retry: RetryOf | undefined,
    replyTo: string | undefined,
    attempt = 1,
    holdUntil?: number,
  ): Promise<CallOutcome> {
    if (this.lost || this.closing) {
      const error = this.lostError();
      return Promise.resolve({ n, ok: false, code: error.code, message: error.message, remote: false, error, ms: 0 });
    }
    // Decimal text, as the tutorial's servers read it, also for a pipeline (its header asks fibrpc's for JSON).
    const { body } = encodeRequest(n, "text");
    const now = Date.now();
    // The attempt's window, and the time its request carries (the whole call's, under --retry).
    const window = Math.max(1, deadline - now);
    const carried = Math.max(deadline, holdUntil ?? deadline);
    const budget = Math.max(1, carried - now);
    const { tracer } = this.options;
    return new Promise<CallOutcome>((resolve) => {
      // Tracing must cost no call its answer: a span that cannot start is none, and the outcome is
      // resolved before the span is ended, whatever ending it does.
      let span: SendSpan | undefined;
      try {
        span = tracer?.send({ queue: this.options.queue, correlationId, n, peer: this.peer, retry });
      } catch (err) {
        this.options.log.debug(`no span for fib(${n}): ${messageOf(err)}`);
      }
      const settle = span
        ? (outcome: CallOutcome) => {
            resolve({ ...outcome, traceparent: span.headers.traceparent, trace: span.ids });
            try {
              span.end(outcome.ok ? outcome : { ok: false, code: spanErrorOf(outcome), remote: outcome.remote });
            } catch {
              // The caller has its outcome already.
            }
          }
        : resolve;
      const startedAt = performance.now();
      const timer = setTimeout(() => this.onWindowEnd(correlationId, window), window);
      const sent = replyTo !== undefined;
      const retried = attempt > 1;
      const seq = ++this.published;
      const call: PendingCall = {
        n,
        startedAt,
        deadline: carried,
        seq,
        holdUntil: holdUntil === undefined ? undefined : carried,
        checkedAt: now,
        retried,
        timer,
        settle,
        confirmed: false,
        sent,
      };
      this.pending.set(correlationId, call);
      // When it was sent, so a server can tell how long it waited in the queue. AMQP's timestamp is
      // whole seconds: truncated, it makes a wait read up to 1 s long (docs/operations.md, "Tracing").
      const timestamp = Math.floor(now / 1000);
      const properties = sent
        ? {
            replyTo,
            correlationId,
            timestamp,
            deliveryMode: 2 as const,
            // The next stage reads each reply without the caller: JSON, naming its n (docs/protocol.md).
            headers: { [REPLY_FORMAT_HEADER]: "json", ...span?.headers },
          }
        : {
            replyTo: this.replyTo,
            correlationId,
            expiration: String(budget),
            timestamp,
            // This caller reads batched replies (protocol.ts): a busy server answers several calls in one message.
            headers: span
              ? { [DEADLINE_HEADER]: carried, [REPLY_BATCH_HEADER]: 1, ...span.headers }
              : { [DEADLINE_HEADER]: carried, [REPLY_BATCH_HEADER]: 1 },
          };
      // mandatory: a request no queue can take comes back (see onReturned) instead of vanishing.
      try {
        this.outlet!.publish(this.options.queue, body, properties, true);
        // Written (publish throws before writing anything): this is the channel's next delivery tag.
        if (this.confirms) this.unconfirmed.published({ correlationId, call });
        else if (sent) this.settleSent(correlationId, call);
      } catch (err) {
        this.settleError(
          correlationId,
          new FibrpcError(
            "CONNECTION_LOST",
            `the request could not be sent: ${err instanceof Error ? err.message : String(err)}`,
            { reason: "not-sent", broker: this.broker },
          ),
        );
      }
    });
  }

  /** A request sent with its reply elsewhere (send) is done once the broker took it. */
  private settleSent(correlationId: string, call: PendingCall): void {
    this.pending.delete(correlationId);
    clearTimeout(call.timer);
    call.settle({ n: call.n, ok: true, result: "", ms: performance.now() - call.startedAt });
  }

  /**
   * Makes sure the queue `name` is there to take replies another program consumes (call --reply-to):
   * used as it is if it exists, else declared durable. Throws the broker's refusal (a permission, a
   * reserved amq. name) as a FibrpcError.
   */
  async ensureReplyQueue(name: string): Promise<void> {
    // The queue is --reply-to's, not --queue's: what a hint tells the user to change (hints.ts).
    const context = { url: this.url, queue: name, queueOption: "reply-to" } as const;
    // A passive declare of a missing queue closes the channel it ran on, so use throwaway ones.
    const probe = await this.throwawayChannel();
    probe.on("error", () => {});
    try {
      await probe.checkQueue(name);
      probe.close().catch(() => {});
      return;
    } catch (err) {
      if (!isNotFound(err)) throw setUpError(err, context);
    }
    const declare = await this.throwawayChannel();
    declare.on("error", () => {});
    try {
      await declare.assertQueue(name, { durable: true });
      declare.close().catch(() => {});
    } catch (err) {
      throw reservedQueueName(name, this.url) ?? setUpError(err, context);
    }
  }

  /**
   * The end of a call's window. Under --retry (holdUntil), a request the broker took that waits its turn
   * behind requests being answered (a batch larger than the servers clear in one window) is kept waiting,
   * a window at a time, up to the call's deadline: sent again, it would go to the back of the queue, and the
   * copy left behind be computed too (a batch of 120 heavy calls: 48 answered with --retry 3, all without).
   * A request that later ones overtook (held by a server that stopped), or that saw no reply come in its
   * window, times out: --retry then sends it again.
   */
  private onWindowEnd(correlationId: string, window: number): void {
    const call = this.pending.get(correlationId);
    if (call === undefined) return;
    const now = Date.now();
    const taken = call.confirmed || !this.confirms;
    const moving = this.lastAnswerAt > call.checkedAt && this.latestAnswered < call.seq;
    if (call.holdUntil !== undefined && now < call.holdUntil && taken && moving) {
      call.checkedAt = now;
      call.timer = setTimeout(() => this.onWindowEnd(correlationId, window), Math.min(window, call.holdUntil - now));
      return;
    }
    this.settleError(correlationId, this.timedOut(correlationId, window));
  }

  /**
   * Why a call got no reply in time, as precisely as the client knows: the broker was blocking
   * publishers, or never confirmed the request (it did not take it: e.g. a quorum queue without
   * its majority), or took it and no server answered.
   */
  private timedOut(correlationId: string, budget: number): FibrpcError {
    const { queue } = this.options;
    const details = { queue, broker: this.broker, timeoutMs: budget };
    const confirmed = this.pending.get(correlationId)?.confirmed === true;
    if (this.blocked) {
      const { reason, since } = this.blocked;
      // Confirmed before the block: the broker has the request, and holds the reply.
      // Not confirmed is not lost: the broker reads what the connection sent once the alarm clears, even after
      // this caller has gone (a pipeline run again would send it twice).
      const what = confirmed
        ? `queue ${quote(queue)} took the request, but its reply was held within the timeout`
        : `the request to queue ${quote(queue)} was not confirmed within the timeout ` +
          "(it may still reach the queue once the alarm clears)";
      return new FibrpcError(
        "BROKER_BLOCKED",
        `the broker at ${this.broker} has been blocking publishers for ${duration(Date.now() - since)} ` +
          `(${reason}), so ${what}`,
        { ...details, reason: "blocked", blockedBecause: reason },
      );
    }
    // `call -t 30ms` spends most of it connecting: the broker is not to blame for a confirm that had 4 ms. Not
    // for a retry, whose short window is --retry's own (a broker that does not confirm must not hide behind it).
    const retried = this.pending.get(correlationId)?.retried === true;
    if (this.confirms && !confirmed && !retried && budget < TOO_SHORT_TO_CONFIRM_MS) {
      return new FibrpcError(
        "TIMEOUT",
        `no reply within the timeout: only ${budget} ms of it were left when the request was sent, too few ` +
          `for the broker at ${this.broker} to confirm that queue ${quote(queue)} took the request`,
        { ...details, reason: "too-short" },
      );
    }
    // Confirms kept coming since it was sent, for the requests ahead of it: the broker is behind, not stuck (a
    // caller that sent thousands at once with a short timeout), and the queue's state is not the thing to check.
    // Recently, too: a confirm long before the window's end says nothing of a queue that stopped confirming since.
    const sentAt = this.pending.get(correlationId)?.startedAt ?? Number.POSITIVE_INFINITY;
    const recently = performance.now() - this.lastConfirmAt < Math.max(TOO_SHORT_TO_CONFIRM_MS, budget / 4);
    if (this.confirms && !confirmed && this.lastConfirmAt > sentAt && recently) {
      return new FibrpcError(
        "TIMEOUT",
        `no reply within the timeout: the broker at ${this.broker} was still confirming the requests sent before ` +
          `it (${this.unconfirmed.outstanding} of this caller's were waiting for their confirm)`,
        { ...details, reason: "confirm-backlog" },
      );
    }
    if (this.confirms && !confirmed) {
      return new FibrpcError(
        "TIMEOUT",
        `no reply within the timeout: the broker at ${this.broker} ` +
          `did not confirm that queue ${quote(queue)} took the request`,
        { ...details, reason: "not-confirmed" },
      );
    }
    return new FibrpcError("TIMEOUT", `no reply within the timeout from a server on queue ${quote(queue)}`, {
      ...details,
      reason: "reply-timed-out",
    });
  }

  private onConfirm({ deliveryTag, multiple }: ConfirmFields, accepted: boolean): void {
    this.lastConfirmAt = performance.now();
    for (const { correlationId, call } of this.unconfirmed.confirm(deliveryTag, multiple)) {
      // Settled already (answered, timed out), or an earlier attempt of a call sent again.
      if (this.pending.get(correlationId) !== call) continue;
      if (!accepted) this.settleError(correlationId, this.rejected(call.sent));
      else if (call.sent) this.settleSent(correlationId, call);
      else call.confirmed = true;
    }
  }

  /**
   * basic.nack carries no reason. RabbitMQ nacks a request it will not store: a queue at its
   * length limit with `overflow: reject-publish` (RabbitMQ docs, "Queue Length Limit"), or an
   * internal error of the queue.
   */
  private rejected(pipeline: boolean): FibrpcError {
    const { queue } = this.options;
    return new FibrpcError(
      "REJECTED",
      `the broker at ${this.broker} rejected the request (basic.nack): queue ${quote(queue)} ` +
        "is most likely full (at its length limit, with overflow reject-publish), or could not store it " +
        "(a quorum queue without a majority of its nodes)",
      { reason: "queue-full", queue, broker: this.broker, ...(pipeline ? { pipeline: true } : {}) },
    );
  }

  private onBlocked(reason: string): void {
    if (this.blocked) return;
    this.blocked = { reason, since: Date.now() };
    // Said once per block, not per call: calls in flight wait (until unblocked, or their deadline).
    this.options.log.warn(
      `broker is blocking publishers: ${reason} (the broker at ${this.broker}); ` +
        `calls wait until it lifts or their timeout`,
    );
  }

  private onUnblocked(): void {
    if (!this.blocked) return;
    this.options.log.info(`broker stopped blocking publishers after ${duration(Date.now() - this.blocked.since)}`);
    this.blocked = undefined;
  }

  /** The broker this client talks to, password masked. */
  get broker(): string {
    return displayUrl(this.url);
  }

  /** The broker as a span names it (server.address, server.port). */
  private get peer(): { address: string; port: number } {
    return { address: this.url.hostname, port: this.url.port };
  }

  /** The request queue this client sends to. */
  get queue(): string {
    return this.options.queue;
  }

  /** A new id, unique to this client; a retry reuses the id of the call it repeats. */
  newCorrelationId(): string {
    return this.idPrefix + (this.nextId++).toString(36);
  }

  /**
   * Ends the call `correlationId` now, if it is still waiting: its caller gave up on it (the library's
   * AbortSignal, index.ts). Its reply, should one come later, is ignored like any reply to a call
   * already answered.
   */
  abandon(correlationId: string): void {
    this.settleError(
      correlationId,
      new FibrpcError("CONNECTION_LOST", "the caller gave up on the call before the reply came", {
        reason: "client-closed",
      }),
    );
  }

  /**
   * After the attempt `correlationId` made here ended unanswered (its window ran out), a reply to it that comes
   * before `deadline` goes to `deliver`, until forgetLate: the server may only have been slow, and its answer is
   * as good as a later attempt's. A reply to a call in flight here with the same id is that call's. `gone` is
   * called, and the wait ends, once no reply can come here (the connection or channel lost, now or later).
   */
  awaitLate(
    correlationId: string,
    n: number,
    deadline: number,
    deliver: (outcome: CallOutcome) => void,
    gone: () => void,
  ): void {
    if (this.gone) {
      gone();
      return;
    }
    this.late.set(correlationId, { n, deadline, deliver, gone });
  }

  forgetLate(correlationId: string): void {
    this.late.delete(correlationId);
  }

  /** Ends the call `correlationId` in flight here with `error` (its answer came another way). */
  cancel(correlationId: string, error: FibrpcError): void {
    this.settleError(correlationId, error);
  }

  /**
   * Stops using this client for new calls (it may be stuck: a call on it timed out); calls in
   * flight on it still get their replies until it is closed.
   */
  retire(): void {
    this.lost = true;
  }

  /** False once the connection or channel is gone (or retired): make a new client. */
  get usable(): boolean {
    return !this.lost && !this.closing;
  }

  /** Why the connection or channel is gone, as far as known: the broker's words if it closed it. */
  get lostBecause(): string | undefined {
    return this.closedBy === undefined ? undefined : lostReason(this.closedBy);
  }

  private lostError(cause?: unknown): FibrpcError {
    // The broker closed it to refuse something (403 on a publish: no write permission):
    // retrying would meet the same refusal.
    // A queue.declare of this client's is its passive look at the request queue (probeConsumerCount).
    const refused = refusal(cause ?? this.closedBy, { url: this.url, queue: this.options.queue, passive: true });
    if (refused) return refused;
    const because = cause === undefined ? this.lostBecause : messageOf(cause);
    const why = because === undefined ? "" : ` (${because})`;
    return new FibrpcError(
      "CONNECTION_LOST",
      `the connection to the broker at ${this.broker} was lost while the call was in flight${why}`,
      { reason: "connection-lost", broker: this.broker },
    );
  }

  /** The request queue's consumers now, never the count taken at connect (a later client's is kept unread). */
  freshConsumerCount(): Promise<number> {
    return this.probeConsumerCount();
  }

  /** How many server consumers the request queue has; throws QUEUE_NOT_FOUND if it does not exist. */
  consumerCount(): Promise<number> {
    const first = this.firstCount;
    this.firstCount = undefined;
    return first ?? this.probeConsumerCount();
  }

  /**
   * A second channel, for what may close it (a passive declare of a missing queue). amqplib throws a plain Error
   * when the connection's channel_max (the broker's, or the URL's ?channel_max) leaves none: that is a limit to
   * raise, said so, not an internal error.
   */
  private async throwawayChannel(): Promise<Channel> {
    try {
      return await this.connection.createChannel();
    } catch (err) {
      if (!/No channels left to allocate/.test(messageOf(err))) throw err;
      throw new FibrpcError(
        "BROKER_REFUSED",
        `the connection to the broker at ${this.broker} has no channel left to open (channel_max), ` +
          "and fibrpc's caller needs two at once: one for its calls, one to look at a queue",
        { reason: "channel-max", broker: this.broker },
      );
    }
  }

  private async probeConsumerCount(): Promise<number> {
    // A passive declare of a missing queue closes the channel it ran on, so use a throwaway one.
    const probe = await this.throwawayChannel();
    probe.on("error", () => {});
    try {
      const { consumerCount } = await probe.checkQueue(this.options.queue);
      // Not awaited: closing the probe need not delay the call; the connection's close waits.
      probe.close().catch(() => {});
      return consumerCount;
    } catch (err) {
      if (isNotFound(err)) throw this.queueNotFound();
      // Anything else here means the connection went away while looking.
      throw this.lostError(err);
    }
  }

  private queueNotFound(): FibrpcError {
    const { queue } = this.options;
    return (
      reservedQueueName(queue, this.url) ??
      new FibrpcError(
        "QUEUE_NOT_FOUND",
        `queue ${quote(queue)} does not exist on the broker at ${this.broker}: no server has declared it`,
        { reason: "no-server", queue, broker: this.broker },
      )
    );
  }

  private onReply(msg: ConsumeMessage): void {
    if (msg.properties.type === BATCH_REPLY_TYPE) {
      // decodeBatch never throws; this runs inside amqplib's frame loop, where a throw would end the connection.
      const results = decodeBatch(msg.content);
      if (results === undefined) {
        this.options.log.warn(`ignored a batched reply that is not a JSON array: ${preview(msg.content.toString())}`);
        return;
      }
      for (const { correlationId, reply } of results) this.answer(correlationId, reply);
      return;
    }
    const correlationId = msg.properties.correlationId as string | undefined;
    this.answer(correlationId, decodeReply(msg.content, msg.properties));
  }

  /** A reply for the call `correlationId`, if it still waits for one. */
  private answer(correlationId: string | undefined, reply: DecodedReply): void {
    const call = correlationId === undefined ? undefined : this.pending.get(correlationId);
    const late = call || correlationId === undefined ? undefined : this.late.get(correlationId);
    if (late && correlationId !== undefined) {
      // As below: DEADLINE_EXCEEDED before the call's deadline is not the call's answer.
      if (isEarlierAttemptsExpiry(reply, late.deadline)) return;
      this.late.delete(correlationId);
      // Replies come in on this client: its other calls are moving too (onWindowEnd).
      this.lastAnswerAt = Date.now();
      // Its time is the whole call's (rpc/retry.ts counts it).
      late.deliver(outcomeOf(late.n, reply, 0));
      return;
    }
    if (!call || correlationId === undefined) {
      // A duplicate (the server died after replying and before acking, and the request was
      // redelivered), or a reply to a call that already timed out: ignore it, as the tutorial says.
      const shown = correlationId === undefined ? "(none)" : preview(correlationId);
      this.options.log.debug(`ignored a reply with unknown or already answered correlation id ${shown}`);
      return;
    }
    // A retry keeps its correlation id: a server that picked up an earlier attempt late answers it with
    // DEADLINE_EXCEEDED, which is not this attempt's answer while its own deadline is still ahead. A first
    // attempt's is its own (a server's clock ahead of this one's): taken, it says so.
    if (call.retried && isEarlierAttemptsExpiry(reply, call.deadline)) {
      this.options.log.debug(`ignored DEADLINE_EXCEEDED for fib(${call.n}): an earlier attempt's, this one has time`);
      return;
    }
    this.pending.delete(correlationId);
    clearTimeout(call.timer);
    this.lastAnswerAt = Date.now();
    this.latestAnswered = Math.max(this.latestAnswered, call.seq);
    call.settle(outcomeOf(call.n, reply, performance.now() - call.startedAt));
  }

  private onReturned(msg: Message): void {
    const correlationId = msg.properties.correlationId as string | undefined;
    if (correlationId === undefined) return;
    this.settleError(correlationId, this.queueNotFound());
  }

  private settleError(correlationId: string, error: FibrpcError): void {
    const call = this.pending.get(correlationId);
    if (!call) return;
    this.pending.delete(correlationId);
    clearTimeout(call.timer);
    call.settle({
      n: call.n,
      ok: false,
      code: error.code,
      message: error.message,
      remote: false,
      error,
      ms: performance.now() - call.startedAt,
    });
  }

  private failAll(error: FibrpcError): void {
    if (this.closing) return;
    for (const id of [...this.pending.keys()]) this.settleError(id, error);
  }

  /**
   * Closes the connection. `waitForBroker: false` (a CLI about to exit) sends connection.close
   * and returns once it is written, without waiting a round trip for close-ok: the broker still
   * sees a clean AMQP close, and a cold `fibrpc call` saves ~1 ms. Calls still in flight end now, with
   * `callsEndWith` (why the caller gives up on them, e.g. no server), else CONNECTION_LOST, rather than never.
   */
  async close({ waitForBroker = true, callsEndWith }: CloseOptions = {}): Promise<void> {
    const ended =
      callsEndWith ??
      new FibrpcError("CONNECTION_LOST", "the client was closed before the reply came", { reason: "client-closed" });
    for (const id of [...this.pending.keys()]) this.settleError(id, ended);
    this.late.clear();
    this.closing = true;
    const closed = this.connection.close().catch(() => {
      // already closed: nothing to release
    });
    if (waitForBroker) return closed;
    // amqplib writes the close frame on its next setImmediate; let that turn pass.
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/** A server's reply as the outcome of the call for `n`. */
function outcomeOf(n: number, reply: DecodedReply, ms: number): CallOutcome {
  if (reply.ok) return { n, ok: true, result: reply.result, ms };
  return { n, ok: false, code: reply.code, message: reply.message, remote: true, ms };
}

/**
 * DEADLINE_EXCEEDED while the call's own `deadline` is still ahead: a server that picked up an earlier attempt
 * (same correlation id) too late says so, and that is not this call's answer.
 */
function isEarlierAttemptsExpiry(reply: DecodedReply, deadline: number): boolean {
  return !reply.ok && reply.code === "DEADLINE_EXCEEDED" && Date.now() < deadline;
}

/** A failed attempt's error.type in its span: one ended because an earlier attempt was answered says so. */
function spanErrorOf(outcome: Extract<CallOutcome, { ok: false }>): string {
  return outcome.error?.details.reason === "answered-earlier" ? "ANSWERED_EARLIER" : outcome.code;
}
