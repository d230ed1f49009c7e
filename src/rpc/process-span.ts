/**
 * A delivery's process span, with tracing on (tracing/tracer.ts): started once its fate is known, from
 * the caller's trace context as delivery.ts read it, and ended with what became of the delivery. Neither
 * ever throws: tracing must cost no request its answer.
 */
import type { ConsumeMessage } from "amqplib";
import { messageOf } from "../errors.ts";
import type { Logger } from "../log.ts";
import type { ProcessEnd, ProcessSpan, Tracer } from "../tracing/tracer.ts";
import type { Fate, TraceContext } from "./delivery.ts";
import type { HeavyJob } from "./executor.ts";
import type { Ending } from "./in-flight.ts";
import type { ServingChannel } from "./serving-channel.ts";

export function startProcessSpan(
  tracer: Tracer,
  queue: string,
  via: ServingChannel,
  msg: ConsumeMessage,
  trace: TraceContext,
  now: number,
  log: Logger,
): ProcessSpan | undefined {
  try {
    const { correlationId, timestamp } = msg.properties;
    return tracer.process({
      queue,
      correlationId: typeof correlationId === "string" ? correlationId : undefined,
      deliveryTag: msg.fields.deliveryTag,
      redelivered: msg.fields.redelivered,
      ...trace,
      peer: via.peer,
      queueWaitMs: queueWaitMs(timestamp, now),
    });
  } catch (err) {
    log.debug(`no span for a request: ${messageOf(err)}`);
    return undefined;
  }
}

/** Beyond this, a timestamp is more likely in another unit, or zero, than a wait (fibrpc's requests expire sooner). */
const MAX_QUEUE_WAIT_MS = 24 * 3600_000;

/**
 * How long a request waited in the queue (ms): from its AMQP timestamp (whole seconds since the epoch, as
 * fibrpc's client sets it) to `now`, when it was delivered (the clock decide read). Truncated to the second by
 * the sender, the wait reads up to 1 s longer than it was: a sub-second wait shows as 0-1000 ms, a long one
 * is right to the second (and to the two clocks' agreement). None when absent or implausible: not a whole
 * number, in the future by our clock (the sender's is ahead, or counts in ms), or more than a day old.
 */
export function queueWaitMs(timestamp: unknown, now: number): number | undefined {
  if (typeof timestamp !== "number" || !Number.isSafeInteger(timestamp) || timestamp <= 0) return undefined;
  const wait = now - timestamp * 1000;
  return wait >= 0 && wait <= MAX_QUEUE_WAIT_MS ? wait : undefined;
}

/**
 * Ends `span` with the ending written (none: its channel was gone, and the broker has the delivery back)
 * and the fate it came from (none: decide failed, or a heavy request put back as the server drains).
 */
export function endProcessSpan(span: ProcessSpan, written: Ending | undefined, fate: Fate | undefined): void {
  try {
    span.end(processEnd(written, fate));
  } catch {
    // Tracing must cost no request its answer.
  }
}

function processEnd(written: Ending | undefined, fate: Fate | undefined): ProcessEnd {
  const n = fate?.kind === "compute" ? fate.n : undefined;
  if (written === undefined) return { fate: "unsettled", n };
  if (written.kind === "ack") return { fate: "dropped", error: "DROPPED" };
  if (written.kind === "requeue") return { fate: fate?.kind === "republish" ? "republished" : "requeued", n };
  const error = written.reply.code;
  if (error === undefined) return { fate: "computed", n };
  switch (fate?.kind) {
    case "refuse":
      return { fate: "refused", error, n: fate.n };
    case "expired":
      return { fate: "expired", error, n: fate.n };
    case "poison":
      return { fate: "poison", error };
    default:
      return { fate: "internal", n, error };
  }
}

/** A heavy request whose channel closed while it waited (the broker has it back): its spans end, unsettled. */
export function endAbandoned({ delivery, fate, waiting }: HeavyJob): void {
  waiting?.end();
  if (delivery.span) endProcessSpan(delivery.span, undefined, fate);
}
