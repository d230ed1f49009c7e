/**
 * One delivery as a server carries it from arrival (executor.ts) to its ack (serving-channel.ts, settle), and
 * the ways it can end.
 */
import type { ConsumeMessage } from "amqplib";
import type { TraceContext, Address } from "./delivery.ts";
import type { Format, EncodedMessage } from "./protocol.ts";
import type { ServingChannel } from "./serving-channel.ts";
import type { ProcessSpan } from "../tracing/tracer.ts";

/** One delivery, made into a record once as it arrives (executor.ts) and carried whole to its ack. */
export interface InFlight {
  /** The channel it came on: acked there (answered there, or apart: isolated-replies.ts), or never once it is gone. */
  readonly via: ServingChannel;
  readonly msg: ConsumeMessage;
  /** performance.now() on arrival: the answer's latency is measured from here. */
  readonly receivedAt: number;
  /** Not redelivered, and not a copy fibrpc put back (delivery.ts, isFirstDelivery). */
  readonly firstDelivery: boolean;
  /** The request's key in the crash ledger (crash-ledger.ts); undefined without a ledger. */
  readonly key: bigint | undefined;
  /** Acked already: each delivery is acked exactly once. */
  acked: boolean;
  /** Its process span, with tracing on (tracing/tracer.ts): its context goes in the reply's headers. */
  readonly span: ProcessSpan | undefined;
}

/** How a delivery ends, as the executor (executor.ts) decided it: what settle writes. */
export type Ending =
  /** Nobody can be answered: the ack alone. */
  | { kind: "ack" }
  /** A reply to `to` (nobody, if undefined) and the ack. */
  | { kind: "reply"; to: Address | undefined; reply: EncodedMessage }
  /** A copy of the request put back in the queue (requeue-copy.ts), then the ack. */
  | {
      kind: "requeue";
      deadline: number | undefined;
      attempts: number | undefined;
      trace: TraceContext | undefined;
      /** The format its replies take (a pipeline's decimal request asks for JSON): the copy asks the same. */
      replyFormat: Format;
    };

export type Requeue = Extract<Ending, { kind: "requeue" }>;
