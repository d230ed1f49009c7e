/**
 * What the calling and serving code asks of tracing, in fibrpc's own terms: no OpenTelemetry type
 * appears here, so that rpc/ depends on this file only (types, and the two header names) and a run
 * with tracing off loads no OpenTelemetry module at all. The one implementation is sdk.ts, loaded by
 * start.ts with `await import` only when tracing is on; with it off, the client and the executor
 * hold `undefined` and each span costs them one check.
 *
 * The spans, per OpenTelemetry's messaging semantic conventions (messaging-spans.md, rabbitmq.md):
 * - `fibrpc call`: a PRODUCER span "send {queue}" per request (operation send), whose context is the
 *   message's creation context, injected as W3C traceparent/tracestate into the request's headers.
 *   It lasts from the publish to the call's outcome (reply, error reply, timeout), so its duration
 *   is the call's latency as the caller saw it and its status says how it ended: one span per call,
 *   not a CLIENT span around a short PRODUCER one.
 * - `fibrpc serve`: a CONSUMER span "process {queue}" per delivery (push-based: operation process),
 *   from the delivery to its settling (reply and ack written), heavy-request waits included. The
 *   caller's context, when the request carries a valid one, is its parent AND a link: the
 *   conventions make the link the default (SHOULD), and permit the creation context as parent
 *   "exclusively for single messages scenarios" when processing is not in the scope of another
 *   span, which is fibrpc's case (one message per process span, nothing around it), so that a call
 *   and its serving are one trace, as users of an RPC expect. The process span's context goes into
 *   the reply's headers, sampled or not: a caller under OpenTelemetry's amqplib instrumentation
 *   extracts it as it consumes the reply, and without it would start a trace there, sampled by its
 *   root sampler. (A reply without headers costs RabbitMQ and both ends less; leaving them out when
 *   not sampled was measured and not kept: docs/benchmarks.md, "A reply without headers".)
 */

/** W3C Trace Context header names, as messages carry them (the amqplib instrumentation's too). */
export const TRACEPARENT = "traceparent";
export const TRACESTATE = "tracestate";

/** The broker a span's operation talked to (server.address, server.port). */
export interface Peer {
  address: string;
  port: number;
}

/** A call sent again (--retry): its attempt number (2 for the first retry), and the first attempt's traceparent. */
export interface RetryOf {
  attempt: number;
  traceparent: string;
}

/** A request as the caller sends it. */
export interface SendRequest {
  queue: string;
  correlationId: string;
  n: number;
  peer: Peer;
  /** A retry's span is a new trace, linked to the first attempt's span (issue 21: never lost). */
  retry?: RetryOf;
}

/** How a call ended: answered, or an error (a code of the protocol's, or of the client's: TIMEOUT). */
export type CallEnd = { ok: true } | { ok: false; code: string; remote: boolean };

/**
 * A span's ids as a log line names them, per OpenTelemetry's "Trace Context in non-OTLP Log Formats"
 * (lowercase hex; trace_flags as in traceparent, "01" when sampled): passed as a log call's fields,
 * which the JSON format puts at the top of the line (log.ts), where the spec puts them. Made once
 * per span, so a line about its request costs the log call nothing more.
 */
export interface TraceIds {
  readonly trace_id: string;
  readonly span_id: string;
  readonly trace_flags: string;
}

export interface SendSpan {
  /** Its ids, for the lines logged about its call (a retry). */
  readonly ids: TraceIds;
  /** traceparent (and tracestate) for the request's headers. */
  readonly headers: Readonly<Record<string, string>>;
  end(how: CallEnd): void;
}

/**
 * A delivery as the server reads it. traceparent and tracestate are what delivery.ts (the one reader
 * of a request's headers) found there as strings of a sane length; their syntax is checked by the
 * W3C propagator, and anything it rejects is ignored: the span then starts a trace of its own.
 */
export interface ProcessRequest {
  queue: string;
  /** The correlation id, if it was a string. */
  correlationId: string | undefined;
  deliveryTag: number;
  redelivered: boolean;
  traceparent: string | undefined;
  tracestate: string | undefined;
  peer: Peer | undefined;
  /** How long it waited in the queue, from the request's AMQP timestamp, if it had a plausible one (ms). */
  queueWaitMs?: number;
}

/**
 * Where a process span's time goes, besides the queue wait before it: a heavy request waiting its
 * turn (scheduler.ts), and fib(n) computed. Each is an INTERNAL child span rather than a pair of span
 * events: each has a duration, and the specification keeps events for points in time ("a meaningful,
 * singular point in time") and spans for operations with a start and an end; as a child span it is a
 * bar in a trace's waterfall (Jaeger, Tempo) and its duration can be queried (TraceQL `duration`),
 * where two events would leave the subtraction to the reader.
 */
export type PhaseName = "wait" | "compute";

export interface Phase {
  /** `digits`: the result's decimal digits, for compute (none: computing failed). Never throws. */
  end(digits?: number): void;
}

/** What became of a delivery (the fate, as the trace names it). */
export type ProcessFate =
  | "computed"
  | "refused"
  | "expired"
  | "poison"
  | "dropped"
  | "republished"
  | "requeued"
  | "internal"
  /** Its channel closed before it was settled: the broker delivers it again. */
  | "unsettled";

export interface ProcessEnd {
  fate: ProcessFate;
  n?: number;
  /** The error reply's code (N_TOO_LARGE, INTERNAL, ...), or DROPPED: error.type. */
  error?: string;
}

export interface ProcessSpan {
  /** Its ids, for every line logged while its delivery is handled. */
  readonly ids: TraceIds;
  /** traceparent (and tracestate) of this span, for the reply's headers. */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * A child span, started now; its end also puts the result's digits on this span. Never throws (the
   * executor calls it between computing and replying: tracing must cost no request its answer).
   */
  phase(name: PhaseName): Phase;
  end(how: ProcessEnd): void;
}

export interface Tracer {
  send(request: SendRequest): SendSpan;
  process(request: ProcessRequest): ProcessSpan;
  /**
   * Exports what is buffered and stops, waiting at most `withinMs`. Never rejects: a collector
   * that cannot be reached is one warning on the run's logger, never a failed command.
   */
  shutdown(withinMs?: number): Promise<void>;
}

/** How long a command waits at most for its spans to be exported as it exits (call's, bench's end; serve's drain). */
export const FLUSH_WITHIN_MS = 2_000;
/**
 * One export's time limit (OTEL_EXPORTER_OTLP_TIMEOUT's default) for serve, whose exports run in
 * the background, retried by the exporter with back-off (from ~1 s) while they fit in it.
 */
export const SERVE_EXPORT_TIMEOUT_MS = 10_000;
/**
 * One export's time limit for `call` and `bench`, which wait for it before exiting: short enough that a
 * collector that is down costs a call at most this (the exporter's first retry, after 0.8 s or
 * more, never fits), long enough for a collector on the same host or network (an agent, a sidecar).
 */
export const CALL_EXPORT_TIMEOUT_MS = 500;
