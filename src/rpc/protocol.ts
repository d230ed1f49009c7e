/**
 * The wire format of a request's and a reply's body and properties (see docs/protocol.md). Also
 * part of the contract, each in the module whose job it is: the error codes (error-codes.ts), the
 * reading of an untrusted delivery (delivery.ts, with the trace context's headers of
 * tracing/tracer.ts) and the properties' bytes (wire.ts).
 *
 * Requests: body is n as decimal text (the RabbitMQ tutorial's format, any language), or, with
 * content_type "application/json", an object {"n": <integer>}.
 * Replies mirror the request's format. An error reply is marked by the AMQP `type` property
 * "error", so telling it from a result needs no guessing at the body.
 */
// The error codes live apart, so that the library's types (index.ts) can name them without this module's.
import { ErrorCode } from "./error-codes.ts";
import { quote } from "../printable.ts";

/** Largest n served unless the server says otherwise (`serve --max-n`). */
export const DEFAULT_MAX_N = 1_000_000;
/**
 * The largest n the protocol carries: a non-negative safe integer (2^53 - 1). Above it a JSON
 * number is not exact for a reader in JavaScript, and a decimal would not survive the round trip
 * through a number. A caller may send any n up to it: which n are computed is the server's to
 * say (its --max-n; above it, an N_TOO_LARGE error reply), as servers may differ.
 */
export const MAX_PROTOCOL_N = Number.MAX_SAFE_INTEGER;
/** Longest request body read. A valid request is a few bytes; anything bigger is refused unread. */
export const MAX_REQUEST_BYTES = 4096;

export const JSON_CONTENT_TYPE = "application/json";
/** AMQP `type` property of an error reply. */
export const ERROR_REPLY_TYPE = "error";
/** Request header: when the caller gives up, in milliseconds since the Unix epoch. */
export const DEADLINE_HEADER = "x-fibrpc-deadline";
/**
 * How far a server's clock may be ahead of a caller's before it wrongly skips requests as
 * expired. The broker's `expiration` needs no clock, and drops what nobody picked up in time.
 */
export const CLOCK_SKEW_ALLOWANCE_MS = 1_000;
/**
 * Request header: how many times this request was redelivered before (classic queues; set by
 * fibrpc on the copy it puts back).
 */
export const ATTEMPTS_HEADER = "x-fibrpc-attempts";
/** Header quorum queues set on a redelivery: how often the request came back. */
export const QUORUM_DELIVERY_COUNT_HEADER = "x-delivery-count";
/**
 * A request that crashed a worker this many times is answered with POISON_REQUEST instead of
 * being computed again (the serve process's crash ledger counts only crashes while computing it).
 */
export const POISON_AFTER_CRASHES = 3;
/**
 * Backstop for crashes no ledger survives (the whole process dying): a request redelivered this
 * many times, for any reason, is answered with POISON_REQUEST. RabbitMQ 4's default delivery
 * limit for quorum queues is the same 20.
 */
export const REDELIVERY_LIMIT = 20;

export { ErrorCode };

export type Format = "text" | "json";

export interface Failure {
  ok: false;
  code: ErrorCode;
  message: string;
  /** The n that was read, when it is a number this server will not compute (negative, too large, a fraction). */
  n?: number;
}
export type ParsedN = { ok: true; n: number } | Failure;
export type DecodedRequest = ({ ok: true; n: number } | Failure) & { format: Format };

export interface EncodedMessage {
  body: Buffer;
  contentType?: string;
  type?: string;
  /** For error replies: the error code (not sent as such; it is in the body). */
  code?: ErrorCode;
}

export type DecodedReply = { ok: true; result: string } | { ok: false; code: string; message: string };

function failure(code: ErrorCode, message: string, n?: number): Failure {
  // A JSON request's 1e999 is Infinity, which a JSON reply could only write as null: no n then.
  return n === undefined || !Number.isFinite(n) ? { ok: false, code, message } : { ok: false, code, message, n };
}

/**
 * The one rule for n: the server's, on receipt, with its --max-n; `fibrpc call`'s, with MAX_PROTOCOL_N. A
 * refused n is kept in the failure: a JSON error reply names it, for a next stage that reads replies
 * without the caller (docs/protocol.md).
 */
export function checkN(n: number, maxN: number): ParsedN {
  if (!Number.isInteger(n)) return failure("NOT_AN_INTEGER", `n must be an integer, got ${n}`, n);
  if (n < 0) return failure("NEGATIVE_N", `n must not be negative, got ${n}`, n);
  if (n > maxN) return failure("N_TOO_LARGE", `n must be at most ${maxN}, got ${n}`, n);
  return { ok: true, n };
}

const DECIMAL = /^\s*(-?)(\d+)\s*$/;

/**
 * Parses n written as decimal text. Surrounding whitespace and leading zeros are accepted, as
 * Python's int() (the tutorial's server) accepts them; signs other than "-", fractions and
 * exponents are not. A message quotes `written`, the word as the user wrote it, where `text` is it
 * shortened (call -'s long runs of leading zeros, call/tokens.ts).
 */
export function parseN(text: string, maxN: number, written = text): ParsedN {
  if (text.trim() === "") return failure("EMPTY_REQUEST", "n is empty");
  const match = DECIMAL.exec(text);
  if (!match) return failure("NOT_AN_INTEGER", `n must be a decimal integer, got ${preview(written)}`);
  const [, sign, digits = ""] = match;
  // More than 16 digits cannot be a safe integer; nor can some of 16. Above 2^53 - 1, Number()
  // rounds: the message quotes the digits as given, not a neighbour of them.
  const significant = digits.replace(/^0+(?=\d)/, "");
  const exact = significant.length <= 16 && Number.isSafeInteger(Number(significant));
  if (sign) {
    // "-0" is no negative number, only a sign that the rule does not allow.
    if (significant === "0")
      return failure("NOT_AN_INTEGER", `n must be a decimal integer without a sign, got ${preview(written.trim())}`);
    // Read exactly, the n goes in a JSON error reply, as a JSON request's -1 does.
    return failure(
      "NEGATIVE_N",
      `n must not be negative, got ${preview(text.trim())}`,
      exact ? -Number(significant) : undefined,
    );
  }
  if (!exact)
    return failure("N_TOO_LARGE", `n must be at most ${maxN}, got ${preview(written === text ? digits : written)}`);
  return checkN(Number(significant), maxN);
}

/** Shortens untrusted text for an error message. */
export function preview(value: unknown): string {
  const text = typeof value === "string" ? value : String(value);
  return quote(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isDigit(byte: number): boolean {
  return byte >= 0x30 && byte <= 0x39;
}

/** Decodes a request body. Never throws: a bad request becomes a Failure with its error code. */
export function decodeRequest(body: Uint8Array, contentType: string | undefined, maxN: number): DecodedRequest {
  const format: Format = contentType !== undefined && mediaType(contentType) === JSON_CONTENT_TYPE ? "json" : "text";
  if (contentType !== undefined && format === "text" && !isTextType(contentType)) {
    return {
      ...failure(
        "UNSUPPORTED_CONTENT_TYPE",
        `content type ${preview(contentType)} is not supported; ` +
          `send decimal text with no content type, or ${JSON_CONTENT_TYPE}`,
      ),
      format,
    };
  }
  if (body.length === 0)
    return { ...failure("EMPTY_REQUEST", "the request body is empty; send n as decimal text"), format };
  if (body.length > MAX_REQUEST_BYTES) {
    return {
      ...failure(
        "REQUEST_TOO_LARGE",
        `the request body is ${body.length} bytes; at most ${MAX_REQUEST_BYTES} are accepted`,
      ),
      format,
    };
  }
  // Hot path: a plain decimal body, read straight from the bytes without decoding a string.
  if (format === "text" && body.length <= 15) {
    let n = 0;
    let i = 0;
    for (; i < body.length; i++) {
      const byte = body[i] as number;
      if (!isDigit(byte)) break;
      n = n * 10 + (byte - 0x30);
    }
    if (i === body.length) return { ...checkN(n, maxN), format };
  }
  let text: string;
  try {
    text = utf8.decode(body);
  } catch {
    return { ...failure("INVALID_UTF8", "the request body is not valid UTF-8"), format };
  }
  if (format === "text") return { ...parseN(text, maxN), format };
  return { ...decodeJsonRequest(text, maxN), format };
}

function decodeJsonRequest(text: string, maxN: number): ParsedN {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return failure("INVALID_JSON", "the request body is not valid JSON");
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !("n" in value)) {
    return failure("INVALID_JSON_SHAPE", 'a JSON request must be an object like {"n": 30}');
  }
  const n = (value as { n: unknown }).n;
  if (typeof n !== "number")
    return failure(
      "INVALID_JSON_SHAPE",
      `"n" must be a JSON number, got ${typeof n === "string" ? "a string" : JSON.stringify(n)}`,
    );
  // Beyond 2^53 - 1 the number read is not the one sent (9007199254740993 reads as ...992): the message
  // quotes the request's own digits, and the reply names no n rather than a neighbour of the caller's.
  if (Math.abs(n) > Number.MAX_SAFE_INTEGER) {
    const written = preview(sourceOfN(text) ?? String(n));
    return n < 0
      ? failure("NEGATIVE_N", `n must not be negative, got ${written}`)
      : failure("N_TOO_LARGE", `n must be at most ${maxN}, got ${written}`);
  }
  return checkN(n, maxN);
}

/** The text of a JSON request's top-level "n" as written, from the reviver's source text (Bun has it). */
function sourceOfN(text: string): string | undefined {
  const sources = new Map<object, string | undefined>();
  type Reviver = (this: object, key: string, value: unknown, context?: { source?: string }) => unknown;
  const note: Reviver = function (key, value, context) {
    if (key === "n") sources.set(this, context?.source);
    return value;
  };
  const root = JSON.parse(text, note as Parameters<typeof JSON.parse>[1]) as object;
  return sources.get(root);
}

function mediaType(contentType: string): string {
  return contentType.split(";", 1)[0]!.trim().toLowerCase();
}

function isTextType(contentType: string): boolean {
  const type = mediaType(contentType);
  return type === "" || type === "text/plain";
}

/** Encodes a request as `fibrpc call` sends it: the tutorial's decimal text, or JSON. */
export function encodeRequest(n: number, format: Format): EncodedMessage {
  if (format === "json") return { body: Buffer.from(JSON.stringify({ n })), contentType: JSON_CONTENT_TYPE };
  return { body: Buffer.from(String(n), "latin1") };
}

/** A result reply. Text replies carry no content type, exactly like the tutorial's server. */
export function encodeResult(format: Format, n: number, decimal: string): EncodedMessage {
  if (format === "json")
    return { body: Buffer.from(`{"n":${n},"result":"${decimal}"}`, "latin1"), contentType: JSON_CONTENT_TYPE };
  return { body: Buffer.from(decimal, "latin1") };
}

/** An error reply: `type` "error"; text body "CODE: message", or JSON {"error": {code, message}}. */
export function encodeError(format: Format, code: ErrorCode, message: string, n?: number): EncodedMessage {
  if (format === "json") {
    return {
      body: Buffer.from(JSON.stringify({ ...(n === undefined ? {} : { n }), error: { code, message } })),
      contentType: JSON_CONTENT_TYPE,
      type: ERROR_REPLY_TYPE,
      code,
    };
  }
  return { body: Buffer.from(`${code}: ${message}`), type: ERROR_REPLY_TYPE, code };
}

/**
 * Request header, value 1: the caller reads batched replies. fibrpc's caller sets it on every call; a
 * server then sends the results it has for that caller in one event-loop turn as one message, which
 * saves the broker a publish and a delivery per result (docs/benchmarks.md). Without it, each
 * request gets a reply of its own, as from the tutorial's server.
 */
export const REPLY_BATCH_HEADER = "x-fibrpc-reply-batch";
/**
 * Request header, value "json": reply in JSON, naming the n, whatever the request's format. A pipeline's
 * requests (call --reply-to --no-wait) carry it with a plain decimal body, so that a server of the tutorial's
 * on the same queue still reads them (it parses the body as an integer, and dies on JSON), and a next stage gets
 * the n from fibrpc's servers. Any other value is ignored, as an unknown header is.
 */
export const REPLY_FORMAT_HEADER = "x-fibrpc-reply-format";
/** AMQP `type` of a batched reply: its body a JSON array of [correlation_id, result] (see BatchEntry). */
export const BATCH_REPLY_TYPE = "batch";
/** A result longer than this goes in a reply of its own: a batch carries small results, many of them. */
export const MAX_BATCHED_RESULT = 1024;
/** A batch's body stops growing here, far below any broker's max_message_size (16 MiB on RabbitMQ 4). */
export const MAX_BATCH_BYTES = 64 * 1024;

/**
 * One result of a batched reply, as JSON text: [correlation id, fib(n) in decimal], and the server span's
 * headers with tracing on (JSON: a correlation id may hold any character). Its length is its size in the
 * body, bar non-ASCII characters of the correlation id.
 */
export function encodeBatchEntry(
  correlationId: string,
  result: Uint8Array,
  trace?: Readonly<Record<string, string>>,
): string {
  const digits = Buffer.from(result.buffer, result.byteOffset, result.byteLength).toString("latin1");
  return JSON.stringify(trace ? [correlationId, digits, trace] : [correlationId, digits]);
}

/** The body of a batched reply: its entries (encodeBatchEntry) as one JSON array. */
export function encodeBatchOf(entries: readonly string[]): Buffer {
  return Buffer.from(`[${entries.join(",")}]`);
}

/**
 * The results of a batched reply, each as decodeReply would read it alone; undefined if the body is
 * not a JSON array. An entry without a string correlation id names no call and is left out; one whose
 * result is not decimal text is INVALID_REPLY for its call.
 */
export function decodeBatch(body: Uint8Array): { correlationId: string; reply: DecodedReply }[] | undefined {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8"));
  } catch {
    return undefined;
  }
  if (!Array.isArray(value)) return undefined;
  return value.flatMap((entry: unknown): { correlationId: string; reply: DecodedReply }[] => {
    if (!Array.isArray(entry) || typeof entry[0] !== "string") return [];
    const result: unknown = entry[1];
    if (typeof result === "string" && /^\d+$/.test(result))
      return [{ correlationId: entry[0], reply: { ok: true, result } }];
    // Whatever the server put there, described without calling into it (an object may have no toString).
    const shown =
      typeof result === "string"
        ? preview(result)
        : `a JSON ${Array.isArray(result) ? "array" : result === null ? "null" : typeof result}`;
    const message = `the server sent a batched result that is not a decimal number: ${shown}`;
    return [{ correlationId: entry[0], reply: { ok: false, code: "INVALID_REPLY", message } }];
  });
}

/**
 * Decodes a reply, from fibrpc or from any server speaking the tutorial's protocol (which replies
 * with bare decimal text).
 */
export function decodeReply(body: Uint8Array, properties: { contentType?: string; type?: string }): DecodedReply {
  const text = Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString("utf8");
  const isJson = properties.contentType !== undefined && mediaType(properties.contentType) === JSON_CONTENT_TYPE;
  if (properties.type === ERROR_REPLY_TYPE) {
    if (isJson) {
      try {
        const { error } = JSON.parse(text) as { error?: { code?: unknown; message?: unknown } };
        if (error && typeof error.code === "string")
          return { ok: false, code: error.code, message: String(error.message ?? "") };
      } catch {
        // fall through: report the body as it came
      }
      return { ok: false, code: "INVALID_REPLY", message: `unreadable error reply: ${preview(text)}` };
    }
    const colon = text.indexOf(": ");
    return colon > 0
      ? { ok: false, code: text.slice(0, colon), message: text.slice(colon + 2) }
      : { ok: false, code: "REMOTE_ERROR", message: text };
  }
  if (isJson) {
    try {
      const { result } = JSON.parse(text) as { result?: unknown };
      if (typeof result === "string" && /^\d+$/.test(result)) return { ok: true, result };
    } catch {
      // fall through
    }
    return {
      ok: false,
      code: "INVALID_REPLY",
      message: `the server sent a JSON reply without a decimal "result": ${preview(text)}`,
    };
  }
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) return { ok: true, result: trimmed };
  return {
    ok: false,
    code: "INVALID_REPLY",
    message: `the server sent a reply that is not a decimal number: ${preview(text)}`,
  };
}
