/**
 * The delivery executor: each delivery becomes one record (InFlight) as it arrives, `decide` (delivery.ts) says
 * what becomes of it, and carryOut turns that fate into how it ends (an Ending: an ack alone, a reply and the ack,
 * or a copy put back and the ack), which its channel writes in one go (serving-channel.ts, settle): at most one
 * publish and exactly one ack; with tracing on, in a process span (process-span.ts).
 */
import type { ConsumeMessage } from "amqplib";
import { messageOf } from "../errors.ts";
import { fibDecimal } from "../fib.ts";
import type { Logger } from "../log.ts";
import { requestKey, type CrashLedger } from "./crash-ledger.ts";
import { decide, deliveryTraceContext, isFirstDelivery, type Compute, type Fate } from "./delivery.ts";
import { DirectReplyToChecks } from "./direct-reply-to.ts";
import { encodeError, encodeResult, preview, type EncodedMessage } from "./protocol.ts";
import type { Ending, InFlight } from "./in-flight.ts";
import type { ServingChannel } from "./serving-channel.ts";
import type { Phase, Tracer } from "../tracing/tracer.ts";
import { endProcessSpan, startProcessSpan } from "./process-span.ts";

/** The server's options the executor reads (server.ts, ServerOptions, has them all). */
export interface ExecutorOptions {
  queue: string;
  prefetch: number;
  maxN: number;
  log: Logger;
  /** Which requests crashed workers of this process (see crash-ledger.ts). */
  ledger?: CrashLedger;
  /**
   * Computes fib(n) as decimal (default: fib.ts). `firstDelivery` is false for a request seen
   * before. A seam for the test build's fault injection (serve/faults.ts), as is `wrapOutlet`.
   */
  compute?: (n: number, request: { firstDelivery: boolean }) => string;
  /** With tracing on: a process span per delivery (tracing/tracer.ts); undefined costs one check. */
  tracer?: Tracer;
}

/** A heavy request waiting for its turn (scheduler.ts). */
export interface HeavyJob {
  delivery: InFlight;
  fate: Compute;
  /** With tracing on, the wait's child span (process-span.ts), ended when the turn comes. */
  waiting?: Phase;
}

/** What the executor counts (the rest of ServerMetrics is counted in server.ts). */
export interface DeliveryMetrics {
  /** A request settled: "ok", an error code, or "DROPPED"; `seconds` from delivery to reply. */
  answered(outcome: string, seconds: number): void;
  redelivered(): void;
}

export class Executor {
  private served = 0;
  private readonly log: Logger;
  /** Absent for an RpcServer used on its own, outside `fibrpc serve`: no crash is pinned, no key hashed. */
  private readonly ledger: CrashLedger | undefined;

  /** Direct Reply-to addresses found well-formed lately (decide checks each once). */
  private readonly directReplyTo = new DirectReplyToChecks();

  /** `wait`: a heavy request waits for its turn (scheduler.ts, enqueue), which comes back as runHeavy. */
  constructor(
    private readonly options: ExecutorOptions,
    private readonly metrics: DeliveryMetrics,
    private readonly draining: () => boolean,
    private readonly wait: (job: HeavyJob) => void,
  ) {
    this.log = options.log;
    this.ledger = options.ledger;
  }

  /** Requests answered (a reply published, or none possible, and acked). */
  get requestsServed(): number {
    return this.served;
  }

  /** A delivery arrives on `via`: one record, one fate, one ending. Never throws. */
  deliver(via: ServingChannel, msg: ConsumeMessage): void {
    const receivedAt = performance.now();
    const { replyTo, correlationId } = msg.properties;
    // The key is what decide lets through to be computed: a reply address and a string (or no)
    // correlation id; anything else is never looked up nor computed.
    const keyed =
      this.ledger && typeof replyTo === "string" && (correlationId === undefined || typeof correlationId === "string");
    const key = keyed ? requestKey(replyTo, correlationId, msg.content) : undefined;
    const firstDelivery = isFirstDelivery(msg);
    const { tracer, queue } = this.options;
    const trace = tracer ? deliveryTraceContext(msg) : undefined;
    if (msg.fields.redelivered) this.metrics.redelivered();
    let fate: Fate | undefined;
    const now = Date.now();
    let failure: unknown;
    try {
      const { maxN, prefetch } = this.options;
      // Crashes are looked up only where one is possible: a request seen before.
      const crashes = this.ledger && key !== undefined && !firstDelivery ? this.ledger.crashes(key) : 0;
      const { directReplyTo } = this;
      const queueType = via.countAs;
      fate = decide(msg, { now, maxN, queueType, pauseForHeavy: prefetch > 1, crashes, firstDelivery, directReplyTo });
    } catch (err) {
      failure = err;
    }
    // The process span starts once the fate is known (microseconds after the delivery arrived); decide's failure
    // is said once it is there, so that the line names it (span?.ids) as every line about a delivery does.
    const span = tracer ? startProcessSpan(tracer, queue, via, msg, trace!, now, this.log) : undefined;
    if (fate === undefined) this.log.error(`unexpected error serving a request: ${messageOf(failure)}`, span?.ids);
    const delivery: InFlight = { via, msg, receivedAt, firstDelivery, key, acked: false, span };
    // Neither throws: wait only queues the job (scheduler.ts runs it later, and catches), carryOut catches.
    if (fate?.kind === "compute" && fate.heavy) this.wait({ delivery, fate, waiting: span?.phase("wait") });
    else this.carryOut(delivery, fate);
  }

  /** A heavy request's turn (scheduler.ts): computed, or put back if the server drains. Never throws. */
  runHeavy({ delivery, fate, waiting }: HeavyJob): void {
    waiting?.end();
    // Draining: not started yet, so it goes back to the queue for another server.
    if (this.draining()) {
      const { deadline, attempts, trace, format } = fate;
      this.end(delivery, { kind: "requeue", deadline, attempts, trace, replyFormat: format }, fate);
      return;
    }
    this.log.debug(`computing heavy fib(${fate.n}), taking no new requests meanwhile`, delivery.span?.ids);
    this.carryOut(delivery, fate);
  }

  /**
   * Carries a fate out (none: decide failed). While a request is computed and its reply written, the crash
   * ledger holds its key: only a worker that dies in between leaves the key behind, and the crash is pinned
   * on it. Nothing thrown in here may end the worker or its channel: whoever can be answered gets INTERNAL,
   * and the delivery is acked, once.
   */
  private carryOut(delivery: InFlight, fate: Fate | undefined): void {
    const computing = fate?.kind === "compute" && delivery.key !== undefined ? this.ledger : undefined;
    computing?.begin(delivery.key!);
    try {
      const ending = this.endingOrInternal(delivery, fate);
      this.end(delivery, ending, fate);
    } finally {
      computing?.end();
    }
  }

  /** How a fate ends, or an INTERNAL reply if working that out fails (or decide did: no fate). */
  private endingOrInternal(delivery: InFlight, fate: Fate | undefined): Ending {
    if (fate === undefined) return internal(undefined);
    try {
      return this.endingOf(delivery, fate);
    } catch (err) {
      this.log.error(`unexpected error serving a request: ${messageOf(err)}`, delivery.span?.ids);
      return internal(fate);
    }
  }

  /** How a fate ends; computing fib(n) is the one place a result is produced. */
  private endingOf(delivery: InFlight, fate: Fate): Ending {
    const { log } = this;
    // With tracing on, the process span's ids on every line (log.ts); with it off, undefined, ignored.
    const ids = delivery.span?.ids;
    switch (fate.kind) {
      case "drop":
        log.warn(`dropped a request: ${fate.reason}`, ids);
        return { kind: "ack" };
      case "refuse":
        log.debug(`refused a request: ${fate.reply.body.toString("utf8", 0, 200)}`, ids);
        return { kind: "reply", to: fate.to, reply: fate.reply };
      case "expired":
        // The caller has given up: do not compute. The reply costs nothing and explains itself.
        log.debug(`skipped a request whose caller gave up ${fate.lateMs} ms ago (by this server's clock)`, ids);
        return { kind: "reply", to: fate.to, reply: fate.reply };
      case "poison":
        log.warn(`refused a request (${fate.why}); it is not tried again`, ids);
        return { kind: "reply", to: fate.to, reply: fate.reply };
      case "republish":
        return fate.copy;
      case "compute": {
        const { n, format, to } = fate;
        let reply: EncodedMessage;
        try {
          // A compute seam is only given by the test build's fault injection (serve/faults.ts).
          const { compute } = this.options;
          // With tracing on, a child span (ended with no digits if computing throws).
          const computing = delivery.span?.phase("compute");
          let result: string | undefined;
          try {
            result = compute ? compute(n, { firstDelivery: delivery.firstDelivery }) : fibDecimal(n);
          } finally {
            computing?.end(result?.length);
          }
          reply = encodeResult(format, n, result);
        } catch (err) {
          log.error(`computing fib(${n}) failed: ${messageOf(err)}`, ids);
          reply = encodeError(format, "INTERNAL", `computing fib(${n}) failed on the server`, n);
        }
        log.debug(`fib(${n}) → ${reply.body.length} bytes to ${preview(to.replyTo)}`, ids);
        return { kind: "reply", to, reply };
      }
    }
  }

  /**
   * The ending written by the delivery's channel (serving-channel.ts, settle), and counted; nothing if the
   * channel is gone (the broker has put the request back for another try). Never throws: a write that fails
   * where settle does not catch (an ack on a channel closing under it) is logged; the delivery was marked
   * acked before the write, and the broker puts it back if the ack did not go out.
   */
  private end(delivery: InFlight, ending: Ending, fate: Fate | undefined): void {
    let written: Ending | undefined;
    try {
      written = this.write(delivery, ending);
    } catch (err) {
      this.log.error(`unexpected error settling a request: ${messageOf(err)}`, delivery.span?.ids);
      return;
    } finally {
      if (delivery.span) endProcessSpan(delivery.span, written, fate);
    }
    if (written === undefined || written.kind === "requeue") return;
    const seconds = (performance.now() - delivery.receivedAt) / 1000;
    if (written.kind === "ack") {
      this.metrics.answered("DROPPED", seconds);
      return;
    }
    this.served++;
    this.metrics.answered(written.reply.code ?? "ok", seconds);
  }

  /** Writes `ending`, or an INTERNAL reply for a copy that cannot be put back: what was written, if anything. */
  private write(delivery: InFlight, ending: Ending): Ending | undefined {
    try {
      return delivery.via.settle(delivery, ending);
    } catch (err) {
      // Only a copy put back can fail to encode, which cannot happen with what decide() lets
      // through; if it does, answer rather than lose it.
      if (ending.kind !== "requeue") throw err;
      this.log.error(`could not put a request back in the queue: ${messageOf(err)}`, delivery.span?.ids);
      const { replyTo, correlationId, deliveryMode } = delivery.msg.properties;
      const to = { replyTo: replyTo as string, correlationId: correlationId as string | undefined };
      if (deliveryMode === 2) Object.assign(to, { persistent: true });
      const reply = encodeError(ending.replyFormat, "INTERNAL", "the server could not requeue the request");
      const failed: Ending = { kind: "reply", to, reply };
      return delivery.via.settle(delivery, failed);
    }
  }
}

/** An INTERNAL error reply (in the request's format, if known), to whoever can be answered. */
function internal(fate: Fate | undefined): Ending {
  const to = fate && "to" in fate ? fate.to : undefined;
  const format = fate?.kind === "compute" ? fate.format : "text";
  return { kind: "reply", to, reply: encodeError(format, "INTERNAL", "the server failed while handling the request") };
}
