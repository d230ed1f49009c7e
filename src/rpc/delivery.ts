/**
 * What becomes of one delivered request, decided by one function from what the client sent,
 * the clock and the crash ledger. Every field of a delivery is untrusted input: whatever a client
 * puts in it, `decide` returns exactly one fate, and the server's executor (executor.ts) turns that
 * fate into at most one publish and exactly one ack. This is the one module that reads a delivery's
 * headers: what a copy put back in the queue keeps of them travels in the fate.
 *
 * The request contract is in docs/protocol.md ("What a server reads"); the checks here are it.
 */
import {
  ATTEMPTS_HEADER,
  REPLY_BATCH_HEADER,
  REPLY_FORMAT_HEADER,
  CLOCK_SKEW_ALLOWANCE_MS,
  DEADLINE_HEADER,
  decodeRequest,
  encodeError,
  JSON_CONTENT_TYPE,
  POISON_AFTER_CRASHES,
  preview,
  QUORUM_DELIVERY_COUNT_HEADER,
  REDELIVERY_LIMIT,
  type DecodedRequest,
  type EncodedMessage,
  type Format,
} from "./protocol.ts";
import { UNREADABLE_TABLE } from "./amqplib-internals.ts";
import { isDirectReplyTo, isWellFormedDirectReplyTo, type DirectReplyToChecks } from "./direct-reply-to.ts";
import type { QueueType } from "./queue.ts";
import type { Requeue } from "./in-flight.ts";
import { TRACEPARENT, TRACESTATE } from "../tracing/tracer.ts";

/** From this n on, a request takes a millisecond or more of CPU (fib(100000): ~1 ms here). */
export const HEAVY_N = 100_000;

/** AMQP 0-9-1 short strings (reply_to, correlation_id, ...) hold at most 255 bytes. */
const SHORT_STRING_MAX_BYTES = 255;
/**
 * RabbitMQ refuses a per-message `expiration` above 2^32-1 ms (rabbit_misc:check_expiry), and it
 * closes the publishing channel when it does.
 */
export const MAX_EXPIRATION_MS = 4_294_967_295;

/** The parts of an amqplib delivery that decide its fate, all as untrusted as they come. */
export interface Delivery {
  content: Uint8Array;
  fields: { redelivered: boolean };
  properties: {
    replyTo?: unknown;
    correlationId?: unknown;
    contentType?: unknown;
    headers?: unknown;
    deliveryMode?: unknown;
  };
}

export interface Circumstances {
  /** Date.now() when the delivery is handled. */
  now: number;
  maxN: number;
  queueType: QueueType;
  /** Whether heavy requests are computed one at a time with the consumer paused (prefetch > 1). */
  pauseForHeavy: boolean;
  /** How many times a worker of this process died computing this request (the crash ledger). */
  crashes: number;
  /** The server's memory of Direct Reply-to addresses already checked; without it, each is checked afresh. */
  directReplyTo?: DirectReplyToChecks;
  /** isFirstDelivery(delivery), worked out once per delivery by the executor. */
  firstDelivery: boolean;
}

/** Where the reply goes: `correlationId` undefined means the reply carries none. */
export interface Address {
  replyTo: string;
  correlationId: string | undefined;
  /**
   * The caller reads batched replies (header x-fibrpc-reply-batch = 1, protocol.ts): its result may
   * share one message with others to the same reply_to (serving-channel.ts). Set on computed requests only.
   */
  batch?: true;
  /** The request was persistent (delivery_mode 2), as a pipeline's are (call --no-wait): so is its answer. */
  persistent?: true;
}

export type Fate =
  /** Nobody can be answered: ack, and say why in one log line. */
  | { kind: "drop"; reason: string }
  /** An invalid request or property: error reply, ack. */
  | { kind: "refuse"; to: Address; reply: EncodedMessage; n?: number }
  /** The caller has given up: error reply (it costs nothing), ack, no computing. */
  | { kind: "expired"; to: Address; reply: EncodedMessage; lateMs: number; n?: number }
  /**
   * It crashed workers (or came back too often): error reply instead of another try. `why` names
   * the request by its correlation id, shown safely for a log line.
   */
  | { kind: "poison"; to: Address; reply: EncodedMessage; why: string }
  /** Classic queue, redelivered: put back a copy that carries the count (requeue-copy.ts), ack this one. */
  | { kind: "republish"; copy: Requeue }
  /**
   * Compute and reply. `deadline` and `attempts` are what a copy keeps if the request goes back
   * to the queue before it is computed (a heavy one, when the server drains).
   */
  | Compute;

export interface Compute {
  kind: "compute";
  to: Address;
  n: number;
  format: Format;
  heavy: boolean;
  /** The caller's deadline (ms since the Unix epoch), if it sent one. */
  deadline: number | undefined;
  /** The count on a copy fibrpc put back (x-fibrpc-attempts), if it holds a count at all. */
  attempts: number | undefined;
  /** A heavy request's trace context: it goes back to the queue if the server drains before its turn. */
  trace: TraceContext | undefined;
}

/**
 * A short string as amqplib decoded it (UTF-8, invalid bytes as U+FFFD) can be sent back only if
 * it was valid UTF-8 and still fits: otherwise what goes out is not what came in, or cannot be
 * encoded at all.
 */
export function isFaithfulShortString(value: string): boolean {
  return !value.includes("\uFFFD") && Buffer.byteLength(value, "utf8") <= SHORT_STRING_MAX_BYTES;
}

/**
 * A header's value, own properties only: amqplib decodes a table into a plain object, so a key
 * "__proto__" sent by a client sets that object's prototype, and a plain lookup would read what
 * it put there.
 */
function header(headers: unknown, name: string): unknown {
  return typeof headers === "object" && headers !== null && Object.hasOwn(headers, name)
    ? (headers as Record<string, unknown>)[name]
    : undefined;
}

/**
 * Longest values passed on to tracing: a version-00 traceparent is 55 characters (a later version
 * may add fields, W3C Trace Context §3.2.4); a tracestate longer than 512 characters may be dropped
 * whole (§3.3.1.5), as OpenTelemetry's parser does.
 */
const TRACEPARENT_MAX = 256;
const TRACESTATE_MAX = 512;

/** Printable ASCII, the only characters either header may hold (W3C Trace Context §3.2, §3.3). */
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

export interface TraceContext {
  traceparent: string | undefined;
  tracestate: string | undefined;
}

/**
 * The caller's W3C trace context: the traceparent and tracestate headers if they are strings of
 * printable ASCII and a sane length, else undefined (a tracestate only beside a traceparent).
 * Their syntax is the W3C propagator's to check (tracing/sdk.ts): whatever it rejects is ignored.
 * Read when tracing is on, and by decide for what may go back to the queue (a republish, a heavy
 * request); it changes no fate.
 */
export function traceContextOf(headers: unknown): TraceContext {
  const parent = header(headers, TRACEPARENT);
  const state = header(headers, TRACESTATE);
  const traceparent =
    typeof parent === "string" && parent.length <= TRACEPARENT_MAX && PRINTABLE_ASCII.test(parent) ? parent : undefined;
  const tracestate =
    traceparent !== undefined &&
    typeof state === "string" &&
    state.length <= TRACESTATE_MAX &&
    PRINTABLE_ASCII.test(state)
      ? state
      : undefined;
  return { traceparent, tracestate };
}

/** A delivery's trace context (traceContextOf its headers), for the executor's process span. */
export function deliveryTraceContext(delivery: Delivery): TraceContext {
  return traceContextOf(delivery.properties.headers);
}

/** A request not seen before: not redelivered, and not a copy fibrpc put back (those carry a count). */
export function isFirstDelivery(delivery: Pick<Delivery, "fields" | "properties">): boolean {
  return !delivery.fields.redelivered && header(delivery.properties.headers, ATTEMPTS_HEADER) === undefined;
}

type Deadline = { ok: true; at: number | undefined } | { ok: false; message: string };

/** The caller's deadline header: absent, or a finite number of ms since the Unix epoch. */
function readDeadline(headers: Record<string, unknown> | undefined): Deadline {
  const value = header(headers, DEADLINE_HEADER);
  if (value === undefined) return { ok: true, at: undefined };
  if (typeof value === "number" && Number.isFinite(value)) return { ok: true, at: value };
  return {
    ok: false,
    message: `header ${DEADLINE_HEADER} must be a number (ms since the Unix epoch), got ${describeValue(value)}`,
  };
}

/** A count fibrpc itself wrote (x-fibrpc-attempts), or undefined if a client forged something else. */
function countOf(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

function readCount(value: unknown): number {
  return countOf(value) ?? 0;
}

/** A request's correlation id in a log line: quoted, or "none" when it has none (not "null"). */
function idShown(correlationId: unknown): string {
  return correlationId === undefined || correlationId === null ? "none" : preview(correlationId);
}

function describeValue(value: unknown): string {
  if (value === null) return "void";
  // amqplib decodes a decimal and a timestamp as {"!": "decimal" | "timestamp", value}.
  const tagged = (value as { "!"?: unknown } | undefined)?.["!"];
  if (tagged === "decimal" || tagged === "timestamp") return `a ${tagged}`;
  if (typeof value === "object")
    return Buffer.isBuffer(value) ? "a byte array" : Array.isArray(value) ? "an array" : "a table";
  return `${typeof value} ${preview(value)}`;
}

function tableOf(value: unknown): (Record<string, unknown> & { [UNREADABLE_TABLE]?: true }) | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) && !Buffer.isBuffer(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * Decides what becomes of one delivery. Never throws, and touches nothing but `c.directReplyTo`,
 * a memo that changes no outcome: the same delivery in the same circumstances has the same fate.
 */
export function decide(delivery: Delivery, c: Circumstances): Fate {
  const { replyTo, correlationId, contentType } = delivery.properties;
  if (typeof replyTo !== "string" || replyTo === "") {
    return {
      kind: "drop",
      reason: `it has no reply_to (correlation id ${idShown(correlationId)}): a caller must say where to reply`,
    };
  }
  if (!isFaithfulShortString(replyTo)) {
    return {
      kind: "drop",
      reason:
        `its reply_to ${preview(replyTo)} is not valid UTF-8 (or too long once decoded), ` +
        "so no reply can be addressed to it",
    };
  }
  if (isDirectReplyTo(replyTo) && !(c.directReplyTo?.isWellFormed(replyTo) ?? isWellFormedDirectReplyTo(replyTo))) {
    return {
      kind: "drop",
      reason:
        `its reply_to ${preview(replyTo)} is not a Direct Reply-to address the broker issued; ` +
        "replying to it would make RabbitMQ close this server's connection",
    };
  }
  const headers = tableOf(delivery.properties.headers);
  const persistent = delivery.properties.deliveryMode === 2;
  // A content type that is not UTF-8 names no format fibrpc knows (and could not be copied back).
  const readableType = typeof contentType !== "string" || isFaithfulShortString(contentType);
  const decoded: DecodedRequest = readableType
    ? decodeRequest(delivery.content, typeof contentType === "string" ? contentType : undefined, c.maxN)
    : {
        ok: false,
        code: "UNSUPPORTED_CONTENT_TYPE",
        message:
          `content type ${preview(contentType)} is not valid UTF-8; ` +
          `send decimal text with no content type, or ${JSON_CONTENT_TYPE}`,
        format: "text",
      };
  // Every reply to it, a refusal included, in the format asked for (a pipeline's plain request: JSON).
  const request: DecodedRequest =
    header(headers, REPLY_FORMAT_HEADER) === "json" ? { ...decoded, format: "json" } : decoded;
  const n = request.n;

  if (correlationId !== undefined && (typeof correlationId !== "string" || !isFaithfulShortString(correlationId))) {
    return {
      kind: "refuse",
      n,
      to: persistent ? { replyTo, correlationId: undefined, persistent } : { replyTo, correlationId: undefined },
      reply: encodeError(
        request.format,
        "INVALID_PROPERTY",
        `correlation_id ${preview(correlationId)} is not valid UTF-8 (or longer than 255 bytes once decoded), ` +
          "so it cannot be echoed; send a UTF-8 correlation_id",
        n,
      ),
    };
  }
  const to: Address = persistent ? { replyTo, correlationId, persistent } : { replyTo, correlationId };

  if (headers?.[UNREADABLE_TABLE]) {
    return {
      kind: "refuse",
      n,
      to,
      reply: encodeError(
        request.format,
        "INVALID_PROPERTY",
        "the headers table cannot be read (nested too deeply, or a field type this server does not know)",
        n,
      ),
    };
  }
  const deadline = readDeadline(headers);
  if (!deadline.ok)
    return { kind: "refuse", n, to, reply: encodeError(request.format, "INVALID_PROPERTY", deadline.message, n) };
  if (deadline.at !== undefined && c.now > deadline.at + CLOCK_SKEW_ALLOWANCE_MS) {
    return {
      kind: "expired",
      n,
      to,
      lateMs: c.now - deadline.at,
      reply: encodeError(
        request.format,
        "DEADLINE_EXCEEDED",
        "the caller's deadline passed before a server picked the request up",
        n,
      ),
    };
  }
  if (!request.ok)
    return { kind: "refuse", n, to, reply: encodeError(request.format, request.code, request.message, request.n) };

  // Poison: a request that crashed workers of this process POISON_AFTER_CRASHES times is not
  // tried again. Redeliveries for other reasons (a connection lost, a broker restarted, another
  // request's crash) do not count: fib is idempotent, so they are simply answered.
  if (c.crashes >= POISON_AFTER_CRASHES) {
    const why = `it crashed a worker ${c.crashes} times`;
    const message = `the request crashed a server ${c.crashes} times; it is not tried again`;
    return poison(to, request, { why, message });
  }
  // The ledger dies with the process. As a backstop against requests that take the whole process
  // down, a request redelivered REDELIVERY_LIMIT times, for whatever reason, is refused too.
  if (!c.firstDelivery) {
    const redeliveries = countRedeliveries(delivery, headers, c.queueType);
    if (redeliveries >= REDELIVERY_LIMIT) {
      const message = `the request was redelivered ${redeliveries} times without being answered; it is not tried again`;
      return poison(to, request, { why: `it was redelivered ${redeliveries} times`, message });
    }
    // A classic queue keeps no count: carry it on a copy.
    if (c.queueType === "classic" && delivery.fields.redelivered) {
      const copy = { deadline: deadline.at, attempts: redeliveries, trace: traceContextOf(headers) };
      return { kind: "republish", copy: { kind: "requeue", ...copy, replyFormat: request.format } };
    }
  }
  const heavy = c.pauseForHeavy && request.n >= HEAVY_N;
  const attempts = countOf(header(headers, ATTEMPTS_HEADER));
  const trace = heavy ? traceContextOf(headers) : undefined;
  // Only the exact value: anything else a client may send there leaves its replies as they were.
  const batched = to.correlationId !== undefined && header(headers, REPLY_BATCH_HEADER) === 1;
  const address: Address = batched ? { ...to, batch: true } : to;
  const { format } = request;
  return { kind: "compute", to: address, n: request.n, format, heavy, deadline: deadline.at, attempts, trace };
}

/**
 * How often this request was delivered again. Quorum queues: RabbitMQ's x-delivery-count, set on
 * redelivery (before 4.3 it counts every return, from 4.3 on only failed ones). Classic queues:
 * fibrpc's own x-fibrpc-attempts on the copy it put back, plus this redelivery. A header the
 * broker did not set (a first delivery's) can only be the client's own: ignored.
 */
function countRedeliveries(
  delivery: Delivery,
  headers: Record<string, unknown> | undefined,
  queueType: QueueType,
): number {
  const { redelivered } = delivery.fields;
  if (queueType === "quorum") return redelivered ? readCount(header(headers, QUORUM_DELIVERY_COUNT_HEADER)) : 0;
  return readCount(header(headers, ATTEMPTS_HEADER)) + (redelivered ? 1 : 0);
}

/** `why`: for the log line (the correlation id is added); `message`: the POISON_REQUEST reply's. */
function poison(to: Address, request: { format: Format; n: number }, o: { why: string; message: string }): Fate {
  const { why, message } = o;
  const reply = encodeError(request.format, "POISON_REQUEST", message, request.n);
  return { kind: "poison", to, reply, why: `correlation id ${idShown(to.correlationId)}: ${why}` };
}
