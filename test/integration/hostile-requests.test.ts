/**
 * Hostile requests: frames amqplib cannot produce (short strings of invalid UTF-8 or 255 bytes,
 * header tables of every field type, odd keys, deep nesting), sent with a raw AMQP client
 * (test/raw-amqp.ts) to one `fibrpc serve --workers 2`, and checked against the request contract,
 * which `predict` below implements:
 *
 * - exactly one outcome per request, which is acked once: a reply published to reply_to, or one
 *   WARN line on serve's stderr containing "dropped a request";
 * - reply_to absent, empty, not UTF-8 (decodes with U+FFFD) or over 255 bytes once decoded: dropped;
 * - correlation_id not UTF-8 or over 255 bytes once decoded: an error reply INVALID_PROPERTY with
 *   no correlation_id; otherwise the reply echoes it (absent stays absent);
 * - content_type absent, "" or text/plain (any case, any parameters): text; application/json (any
 *   parameters): JSON; anything else, invalid UTF-8 included: UNSUPPORTED_CONTENT_TYPE;
 * - body: decimal n, or an error reply with the codes of docs/protocol.md;
 * - headers: any table. x-fibrpc-deadline a number more than 1 s in the past: DEADLINE_EXCEEDED; a
 *   non-number (string, void, decimal, timestamp, table…): INVALID_PROPERTY; far future or huge:
 *   served. Forged x-delivery-count, x-death, x-fibrpc-attempts (strings, negative, huge, tables)
 *   on a first delivery, and every other property: ignored;
 * - failing to publish one reply never closes the worker's channel or connection.
 *
 * Where the contract leaves a choice, either answer is accepted: when several errors apply at once
 * (say an invalid body and a past deadline) any of their codes; a negative deadline (it is "in the
 * past", and also "handled without harm") may be served or refused as exceeded. The body of a
 * request with an unsupported content type is not judged (its format is unknown).
 *
 * Named cases first, each followed by a normal call that must be answered; then a seeded fuzz run
 * (FUZZ_SEED=<n> replays one, FUZZ_COUNT=<n> sizes it); then the named cases that, mishandled,
 * cost the server its connections again and again (so they cannot fail the tests before them);
 * then the totals: every request accounted for, the queue empty, no reconnection, no worker
 * restart. Run one case alone with
 * `bun test --timeout 120000 test/integration/hostile-requests.test.ts -t 'case name'`.
 *
 * What RabbitMQ 3.10 does with these frames (see "frames the broker refuses itself"; 4.x differs
 * where those tests say so: it accepts delivery_mode 0 and re-encodes an 'L' header): it accepts
 * every short string as bytes (invalid UTF-8, 255 bytes), every field type, any key bytes, and
 * tables or arrays nested 20,000 deep, and delivers them as sent. amqplib's decoder is recursive
 * and overflows the stack on those (from ~15,000 levels on Bun's main thread, ~10,000 in a
 * Worker): the consuming connection fails with "Maximum call stack size exceeded", and the
 * request comes back on the next one. The broker refuses, closing the publisher's channel (406),
 * a user_id other than the login, a delivery_mode other than 1 or 2 and an expiration that is not
 * a non-negative integer; closing the publisher's connection (541 INTERNAL_ERROR), NaN or infinite
 * floats, unknown field type tags and table lengths past their content. It also closes the
 * connection of anyone who publishes to a malformed Direct Reply-to name
 * ("amq.rabbitmq.reply-to.g1hkAA==.AAAA": 541), which a server replying to it must survive.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ConsumeMessage } from "amqplib";
import {
  F,
  nestedArray,
  nestedTable,
  RawAmqp,
  type FieldTable,
  type FieldValue,
  type Properties,
  type ShortStr,
} from "../raw-amqp.ts";
import { BROKER_RELEASE, rabbitmqctlOk, releaseAtLeast } from "../broker.ts";
import {
  cleanupAfterFile,
  eventually,
  queueStats,
  rawChannel,
  startServe,
  uniqueQueue,
  type Server,
  freePort,
  metricValues,
  scrapeMetrics,
} from "../helpers.ts";

cleanupAfterFile();

// ---------------------------------------------------------------------------------------------
// The contract, as a prediction for one request
// ---------------------------------------------------------------------------------------------

const MAX_N = 1_000_000; // serve's default --max-n
const MAX_BODY = 4096;
const DEADLINE = "x-fibrpc-deadline";
const RECONNECTION = /reconnect|connection .* lost|died/;
const DROPPED = /dropped a request/g;

type Format = "text" | "json";
/** "result", or an error code. */
type Accept = string;
type Outcome =
  | { kind: "dropped" }
  /** A reply on our reply queue: one of `accept`, with this correlation id ("any" format: either). */
  | { kind: "reply"; correlationId: string | undefined; accept: Accept[]; format: Format | "any"; n?: number }
  /** A reply published somewhere this test cannot read (or the request dropped: either is fine). */
  | { kind: "away" };

interface HostileRequest {
  properties: Properties;
  body: Uint8Array;
}

/** What the server's amqplib makes of a short string: UTF-8, invalid bytes become U+FFFD. */
function decoded(value: ShortStr | undefined): string | undefined {
  if (value === undefined || typeof value === "string") return value;
  return Buffer.from(value).toString("utf8");
}
const unusable = (s: string) => s.includes("\ufffd") || Buffer.byteLength(s, "utf8") > 255;
const mediaType = (contentType: string) => contentType.split(";", 1)[0]!.trim().toLowerCase();

/** The value of the top-level x-fibrpc-deadline, as the server sees it. */
function deadlineOf(
  headers: Properties["headers"],
): { kind: "absent" } | { kind: "number"; value: number } | { kind: "other" } {
  // Pre-encoded tables (the deep-nesting cases) carry no top-level deadline.
  if (headers === undefined || headers instanceof Uint8Array) return { kind: "absent" };
  const entries = headers.filter(([key]) => decoded(key) === DEADLINE);
  if (entries.length === 0) return { kind: "absent" };
  if (entries.length > 1) throw new Error("two deadline headers: the contract does not say which counts");
  const value = entries[0]![1];
  switch (value.t) {
    case "b":
    case "B":
    case "s":
    case "u":
    case "I":
    case "i":
    case "d":
      return { kind: "number", value: value.v };
    case "f":
      return { kind: "number", value: Math.fround(value.v) };
    case "l":
      return { kind: "number", value: Number(value.v) };
    default:
      return { kind: "other" };
  }
}

type BodyVerdict = { n: number } | { codes: string[] };

/** docs/protocol.md's body rules, the size limit aside. */
function parseBody(body: Uint8Array, format: Format): BodyVerdict {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(body);
  } catch {
    return { codes: ["INVALID_UTF8"] };
  }
  if (format === "text") {
    if (text.trim() === "") return { codes: ["EMPTY_REQUEST"] };
    const match = /^\s*(-?)(\d+)\s*$/.exec(text);
    if (!match) return { codes: ["NOT_AN_INTEGER"] };
    if (match[1]) return { codes: ["NEGATIVE_N"] };
    const digits = match[2]!.replace(/^0+(?=\d)/, "");
    if (digits.length > 16 || Number(digits) > MAX_N) return { codes: ["N_TOO_LARGE"] };
    return { n: Number(digits) };
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // "EMPTY_REQUEST: the body is empty or only whitespace" applies to JSON bodies too.
    return { codes: text.trim() === "" ? ["INVALID_JSON", "EMPTY_REQUEST"] : ["INVALID_JSON"] };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value) || !Object.hasOwn(value, "n"))
    return { codes: ["INVALID_JSON_SHAPE"] };
  const n = (value as { n: unknown }).n;
  if (typeof n !== "number") return { codes: ["INVALID_JSON_SHAPE"] };
  if (!Number.isFinite(n)) return { codes: ["NOT_AN_INTEGER", "N_TOO_LARGE"] }; // 1e400
  if (!Number.isInteger(n)) return { codes: ["NOT_AN_INTEGER"] };
  if (n < 0) return { codes: ["NEGATIVE_N"] };
  if (n > MAX_N) return { codes: ["N_TOO_LARGE"] };
  return { n };
}

function bodyVerdict(body: Uint8Array, format: Format): BodyVerdict {
  if (body.length === 0) return { codes: ["EMPTY_REQUEST"] };
  const parsed = parseBody(body, format);
  if (body.length <= MAX_BODY) return parsed;
  return { codes: ["REQUEST_TOO_LARGE", ...("codes" in parsed ? parsed.codes : [])] };
}

/** The request contract (see the top of this file): what the server must do with `request`. */
function predict(request: HostileRequest, now: number): Outcome {
  const { properties } = request;
  const replyTo = decoded(properties.replyTo);
  if (replyTo === undefined || replyTo === "" || unusable(replyTo)) return { kind: "dropped" };
  const correlationId = decoded(properties.correlationId);
  if (correlationId !== undefined && unusable(correlationId))
    return { kind: "reply", correlationId: undefined, accept: ["INVALID_PROPERTY"], format: "any" };

  const errors = new Set<string>();
  const optional = new Set<string>();
  const contentType = decoded(properties.contentType);
  let format: Format = "text";
  if (contentType !== undefined && contentType !== "") {
    const type = mediaType(contentType);
    if (contentType.includes("\ufffd") || (type !== "text/plain" && type !== "application/json"))
      errors.add("UNSUPPORTED_CONTENT_TYPE");
    else if (type === "application/json") format = "json";
  }
  // A body in an unsupported format is not read at all.
  const body = errors.size > 0 ? undefined : bodyVerdict(request.body, format);
  if (body && "codes" in body) for (const code of body.codes) errors.add(code);

  const deadline = deadlineOf(properties.headers);
  if (deadline.kind === "other") errors.add("INVALID_PROPERTY");
  else if (deadline.kind === "number" && deadline.value < now - 1000)
    (deadline.value < 0 ? optional : errors).add("DEADLINE_EXCEEDED");

  if (errors.size > 0) return { kind: "reply", correlationId, accept: [...errors, ...optional].sort(), format };
  return { kind: "reply", correlationId, accept: ["result", ...optional].sort(), format, n: (body as { n: number }).n };
}

// ---------------------------------------------------------------------------------------------
// Replies, as this test's amqplib consumer receives them
// ---------------------------------------------------------------------------------------------

interface Reply {
  correlationId: string | undefined;
  type: string | undefined;
  contentType: string | undefined;
  body: Buffer;
}

const fibs = [0n, 1n];
function fib(n: number): string {
  while (fibs.length <= n) fibs.push(fibs[fibs.length - 1]! + fibs[fibs.length - 2]!);
  return fibs[n]!.toString();
}

/** Why `reply` is not `outcome`, or undefined when it is. */
function mismatch(reply: Reply, outcome: Outcome): string | undefined {
  if (outcome.kind !== "reply") return `a reply (${show(reply)}), expected ${outcome.kind}`;
  if (reply.correlationId !== outcome.correlationId)
    return `correlation id ${JSON.stringify(reply.correlationId)}, expected ${JSON.stringify(outcome.correlationId)}`;
  const json = reply.contentType !== undefined && mediaType(reply.contentType) === "application/json";
  if (outcome.format !== "any" && outcome.format !== (json ? "json" : "text"))
    return `a ${json ? "JSON" : "text"} reply, expected ${outcome.format}: ${show(reply)}`;
  const text = reply.body.toString("utf8");
  if (reply.type === "error") {
    let code: string | undefined;
    try {
      code = json ? (JSON.parse(text) as { error?: { code?: string } }).error?.code : /^([A-Z0-9_]+): /.exec(text)?.[1];
    } catch {
      // unreadable: code stays undefined
    }
    return code !== undefined && outcome.accept.includes(code)
      ? undefined
      : `${show(reply)}, expected ${outcome.accept.join(" or ")}`;
  }
  if (!outcome.accept.includes("result")) return `${show(reply)}, expected ${outcome.accept.join(" or ")}`;
  let result: unknown = text;
  try {
    if (json) result = (JSON.parse(text) as { result?: unknown }).result;
  } catch {
    result = undefined;
  }
  return result === fib(outcome.n!) ? undefined : `${show(reply)}, expected fib(${outcome.n}) = ${fib(outcome.n!)}`;
}

function show(reply: Reply): string {
  const body = reply.body.toString("utf8");
  return `${reply.type === "error" ? "error" : "result"} reply ${JSON.stringify(body.length > 90 ? `${body.slice(0, 90)}…` : body)} (correlation id ${JSON.stringify(reply.correlationId)}${reply.contentType ? `, ${reply.contentType}` : ""})`;
}

function showOutcome(o: Outcome): string {
  if (o.kind !== "reply") return o.kind;
  return `${o.accept.join(" or ")}${o.n !== undefined ? ` (n=${o.n})` : ""}, ${o.format}, correlation id ${JSON.stringify(o.correlationId)}`;
}

// ---------------------------------------------------------------------------------------------
// One serve, one reply queue, one raw publisher for the whole file
// ---------------------------------------------------------------------------------------------

interface World {
  server: Server;
  queue: string;
  replyQueue: string;
  httpPort: number;
  publisher: RawAmqp;
  normalCall(): { correlationId: string; answered: () => Reply | undefined };
  /** Every reply on the reply queue except those to normal calls, in arrival order. */
  replies: Reply[];
  /** Requests sent so far whose outcomes are counted in the totals. */
  expected: { replies: number; drops: number };
}
let world: World;
/** Where serve's spans go (see beforeAll). */
let sink: ReturnType<typeof Bun.serve> | undefined;

/** serve's counters that must stay 0. */
async function counters(): Promise<{ reconnects: number; restarts: number }> {
  const values = metricValues(await scrapeMetrics(world.httpPort));
  return { reconnects: values.fibrpc_reconnects_total ?? NaN, restarts: values.fibrpc_worker_restarts_total ?? NaN };
}

/**
 * Ready and unacknowledged messages of the request queue, as the broker's rabbitmqctl lists them.
 * Without rabbitmqctl the unacknowledged ones cannot be seen (an AMQP client sees ready messages
 * only), and a request never acked would pass unnoticed: so it is required, and its absence fails
 * the test, never a weaker check in its place.
 */
async function queueCounts(queue: string): Promise<{ ready: number; unacked: number }> {
  const out = await rabbitmqctlOk([
    "list_queues",
    "-q",
    "--no-table-headers",
    "name",
    "messages_ready",
    "messages_unacknowledged",
  ]);
  const line = out.split("\n").find((l) => l.split(/\s+/)[0] === queue);
  if (!line) throw new Error(`rabbitmqctl does not list queue ${queue}`);
  const [, ready, unacked] = line.trim().split(/\s+/);
  return { ready: Number(ready), unacked: Number(unacked) };
}

const drops = (from: number) => (world.server.log.slice(from).match(DROPPED) ?? []).length;
function logTail(from: number): string {
  const log = world.server.log.slice(from);
  if (log.length <= 2000) return log || "(nothing)";
  return `…${log.slice(log.indexOf("\n", log.length - 2000))}`;
}

/** Publishes with the raw client; a broker that closes the channel or connection fails the test. */
async function publishRaw(request: HostileRequest): Promise<void> {
  if (world.publisher.closeReason) {
    await world.publisher.close();
    world.publisher = await RawAmqp.connect();
  }
  await within(
    world.publisher.publish(world.queue, request.body, request.properties),
    5000,
    "the broker's confirm of the publish",
  );
}

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: nothing within ${ms} ms`)), ms)),
  );
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A call as any client makes it (amqplib, body "30"): it must be answered 832040 within `ms`. */
async function normalCallAnswered(ms = 5000): Promise<void> {
  const call = world.normalCall();
  const reply = await eventually(
    async () => call.answered(),
    (r) => r !== undefined,
    ms,
    `the answer to a normal call (${call.correlationId}) after it`,
  );
  expect(show(reply!)).toBe(
    show({ correlationId: call.correlationId, type: undefined, contentType: undefined, body: Buffer.from("832040") }),
  );
}

beforeAll(async () => {
  const queue = uniqueQueue("fibrpc_hostile");
  const httpPort = await freePort();
  // Tracing on, so that every request's headers go through the trace-context path too: spans are
  // exported to a loopback sink that takes them and throws them away.
  sink = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response(null, { status: 200 }) });
  const server = await startServe(["--workers", "2", "--queue", queue, "--http-port", String(httpPort)], {
    OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${sink.port}`,
  });
  const { ch } = await rawChannel();
  const { queue: replyQueue } = await ch.assertQueue("", { exclusive: true });
  const replies: Reply[] = [];
  const normal = new Map<string, Reply>();
  await ch.consume(
    replyQueue,
    (msg: ConsumeMessage | null) => {
      if (!msg) return;
      const { correlationId, type, contentType } = msg.properties;
      const reply: Reply = { correlationId, type, contentType, body: msg.content };
      if (typeof correlationId === "string" && correlationId.startsWith("normal-")) normal.set(correlationId, reply);
      else replies.push(reply);
    },
    { noAck: true },
  );
  let calls = 0;
  world = {
    server,
    queue,
    replyQueue,
    httpPort,
    publisher: await RawAmqp.connect(),
    replies,
    expected: { replies: 0, drops: 0 },
    normalCall() {
      const correlationId = `normal-${++calls}`;
      ch.sendToQueue(queue, Buffer.from("30"), { replyTo: replyQueue, correlationId });
      return { correlationId, answered: () => normal.get(correlationId) };
    },
  };
});

afterAll(async () => {
  sink?.stop(true);
  await world?.publisher.close();
});

// ---------------------------------------------------------------------------------------------
// Named cases
// ---------------------------------------------------------------------------------------------

interface Case {
  name: string;
  properties: Properties;
  /** Default: "30". */
  body?: Uint8Array | string;
  expect: Outcome;
  /** predict() does not cover it (the outcome is not a reply to our queue, or depends on nesting depth). */
  beyondPredict?: true;
  /**
   * Mishandled, this request costs the server its connections over and over (it comes back after
   * each loss), which would fail every test after it: run after the fuzz, with the totals last.
   */
  runsLast?: true;
}

const ff = (n: number) => new Uint8Array(n).fill(0xff);
const bytes = (...parts: (string | number[] | Uint8Array)[]) =>
  Buffer.concat(parts.map((p) => (typeof p === "string" ? Buffer.from(p, "utf8") : Buffer.from(p))));
const result = (correlationId: string | undefined, n = 30, format: Format = "text"): Outcome => ({
  kind: "reply",
  correlationId,
  accept: ["result"],
  format,
  n,
});
const refused = (
  correlationId: string | undefined,
  codes: string | string[],
  format: Format | "any" = "text",
): Outcome => ({
  kind: "reply",
  correlationId,
  accept: [codes].flat().sort(),
  format,
});
/** A negative deadline: "in the past", and also "handled without harm": refused or served. */
const negativeDeadline = (correlationId: string): Outcome => ({
  kind: "reply",
  correlationId,
  accept: ["DEADLINE_EXCEEDED", "result"],
  format: "text",
  n: 30,
});
const dropped: Outcome = { kind: "dropped" };

/** One of each field type, with extreme values. */
function everyFieldType(): FieldTable {
  return [
    ["t", F.bool(true)],
    ["b", F.i8(-128)],
    ["B", F.u8(255)],
    ["s", F.i16(-32768)],
    ["u", F.u16(65535)],
    ["I", F.i32(-2147483648)],
    ["i", F.u32(4294967295)],
    ["l", F.i64(-(2n ** 63n))],
    ["f", F.f32(3.4e38)],
    ["d", F.f64(-1.7976931348623157e308)],
    ["D", F.decimal(255, 0xffffffff)],
    ["S", F.str(bytes([0xff, 0xfe, 0]))],
    ["x", F.bytes(bytes([0, 0xff, 0x80]))],
    ["A", F.array([F.i8(1), F.str("a"), F.array([]), F.table([]), F.void(), F.timestamp(0n)])],
    ["T", F.timestamp(2n ** 64n - 1n)],
    ["F", F.table([["nested", F.table([["deeper", F.bytes(ff(3))]])]])],
    ["V", F.void()],
  ];
}

function namedCases(replyQueue: string, requestQueue: string, now: number): Case[] {
  const r = replyQueue;
  return [
    {
      name: "control: a valid request, sent raw",
      properties: { replyTo: r, correlationId: "c-control" },
      expect: result("c-control"),
    },
    // correlation_id
    {
      name: "correlation_id: 100 bytes of 0xff (300 bytes once decoded)",
      properties: { replyTo: r, correlationId: ff(100) },
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    {
      name: "correlation_id: 255 bytes of 0xff",
      properties: { replyTo: r, correlationId: ff(255) },
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    {
      name: "correlation_id: 85 bytes of 0xff (255 bytes once decoded: fits, still not UTF-8)",
      properties: { replyTo: r, correlationId: ff(85) },
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    {
      name: "correlation_id: ASCII with one stray continuation byte",
      properties: { replyTo: r, correlationId: bytes("c-stray", [0x80], "x") },
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    {
      name: "correlation_id: 255 bytes of valid 2-byte UTF-8 (fits)",
      properties: { replyTo: r, correlationId: `${"é".repeat(127)}x` },
      expect: result(`${"é".repeat(127)}x`),
    },
    {
      name: "correlation_id: 255 bytes of valid 4-byte UTF-8 and ASCII",
      properties: { replyTo: r, correlationId: `${"😀".repeat(63)}abc` },
      expect: result(`${"😀".repeat(63)}abc`),
    },
    {
      name: "correlation_id: present and empty (echoed empty)",
      properties: { replyTo: r, correlationId: "" },
      expect: result(""),
    },
    { name: "correlation_id: absent (the reply has none)", properties: { replyTo: r }, expect: result(undefined) },
    {
      name: "correlation_id: invalid, with a JSON request",
      properties: { replyTo: r, correlationId: ff(10), contentType: "application/json" },
      body: '{"n":30}',
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    // reply_to
    {
      name: "reply_to: 255 bytes, not UTF-8",
      properties: { replyTo: bytes([0xc3, 0x28], ff(253)), correlationId: "c-rt-long" },
      expect: dropped,
    },
    { name: "reply_to: 0xff × 10", properties: { replyTo: ff(10), correlationId: "c-rt-ff10" }, expect: dropped },
    {
      name: "reply_to: the reply queue's name plus one 0xff byte",
      properties: { replyTo: bytes(r, [0xff]), correlationId: "c-rt-suffix" },
      expect: dropped,
    },
    { name: "reply_to: empty", properties: { replyTo: "", correlationId: "c-rt-empty" }, expect: dropped },
    { name: "reply_to: absent", properties: { correlationId: "c-rt-absent" }, expect: dropped },
    {
      name: "reply_to: absent, correlation_id not UTF-8 either",
      properties: { correlationId: ff(200) },
      expect: dropped,
    },
    {
      name: "reply_to: the request queue itself (the reply comes back as a request without reply_to, and is dropped)",
      properties: { replyTo: requestQueue, correlationId: "c-rt-self" },
      expect: dropped,
      beyondPredict: true,
    },
    {
      // RabbitMQ 3.10 closes the connection of whoever publishes to this Direct Reply-to name
      // (541 INTERNAL_ERROR): the server checks the shape and drops it (src/rpc/direct-reply-to.ts).
      name: "reply_to: a malformed Direct Reply-to name the broker chokes on",
      properties: { replyTo: "amq.rabbitmq.reply-to.g1hkAA==.AAAA", correlationId: "c-rt-direct" },
      expect: dropped,
      beyondPredict: true,
      runsLast: true,
    },
    // content_type
    {
      name: "content_type: 0xff bytes",
      properties: { replyTo: r, correlationId: "c-ct-ff", contentType: ff(4) },
      expect: refused("c-ct-ff", "UNSUPPORTED_CONTENT_TYPE"),
    },
    {
      name: "content_type: application/json with invalid UTF-8 in a parameter",
      properties: { replyTo: r, correlationId: "c-ct-jsonff", contentType: bytes("application/json; x=", [0xff]) },
      body: '{"n":30}',
      expect: refused("c-ct-jsonff", "UNSUPPORTED_CONTENT_TYPE"),
    },
    {
      name: 'content_type: "application/json; charset=utf-8" with a JSON body',
      properties: { replyTo: r, correlationId: "c-ct-json-params", contentType: "application/json; charset=utf-8" },
      body: '{"n": 30}',
      expect: result("c-ct-json-params", 30, "json"),
    },
    {
      name: 'content_type: "TEXT/Plain; charset=us-ascii"',
      properties: { replyTo: r, correlationId: "c-ct-text-case", contentType: "TEXT/Plain; charset=us-ascii" },
      expect: result("c-ct-text-case"),
    },
    {
      name: "content_type: empty",
      properties: { replyTo: r, correlationId: "c-ct-empty", contentType: "" },
      expect: result("c-ct-empty"),
    },
    {
      name: "content_type: application/json padded with parameters to 255 bytes",
      properties: { replyTo: r, correlationId: "c-ct-255", contentType: `application/json; p=${"v".repeat(255 - 20)}` },
      body: '{"n":30}',
      expect: result("c-ct-255", 30, "json"),
    },
    {
      name: "content_type: application/xml",
      properties: { replyTo: r, correlationId: "c-ct-xml", contentType: "application/xml" },
      expect: refused("c-ct-xml", "UNSUPPORTED_CONTENT_TYPE"),
    },
    // body
    {
      name: "body: 5000 bytes (digits)",
      properties: { replyTo: r, correlationId: "c-body-5000" },
      body: `${"0".repeat(4998)}30`,
      expect: refused("c-body-5000", "REQUEST_TOO_LARGE"),
    },
    {
      name: "body: 4096 bytes (digits, the largest accepted)",
      properties: { replyTo: r, correlationId: "c-body-4096" },
      body: `${"0".repeat(4094)}30`,
      expect: result("c-body-4096"),
    },
    {
      name: "body: 300 KB in three body frames",
      properties: { replyTo: r, correlationId: "c-body-300k" },
      body: ff(300_000),
      expect: refused("c-body-300k", ["INVALID_UTF8", "REQUEST_TOO_LARGE"]),
    },
    {
      name: "body: 0xff 0xfe",
      properties: { replyTo: r, correlationId: "c-body-fffe" },
      body: bytes([0xff, 0xfe]),
      expect: refused("c-body-fffe", "INVALID_UTF8"),
    },
    {
      name: "body: 0xff 0xfe, JSON",
      properties: { replyTo: r, correlationId: "c-body-fffe-json", contentType: "application/json" },
      body: bytes([0xff, 0xfe]),
      expect: refused("c-body-fffe-json", "INVALID_UTF8", "json"),
    },
    {
      name: "body: empty",
      properties: { replyTo: r, correlationId: "c-body-empty" },
      body: "",
      expect: refused("c-body-empty", "EMPTY_REQUEST"),
    },
    {
      name: "body: NUL bytes around digits",
      properties: { replyTo: r, correlationId: "c-body-nul" },
      body: bytes([0], "30", [0]),
      expect: refused("c-body-nul", "NOT_AN_INTEGER"),
    },
    // headers
    {
      name: "headers: every field type (t b B s u I i l f d D S x A T F V)",
      properties: { replyTo: r, correlationId: "c-h-types", headers: everyFieldType() },
      expect: result("c-h-types"),
    },
    {
      // RabbitMQ 3.10 accepts 'L' (unsigned 64-bit) and passes it on; amqplib's decoder knows no
      // 'L' and threw, which closed the worker's connection (src/rpc/amqplib-internals.ts): refused.
      // RabbitMQ 4.x re-encodes the headers it delivers, in a type amqplib reads: answered.
      name: `headers: a field of type L (unsigned 64-bit), which amqplib cannot decode (RabbitMQ ${BROKER_RELEASE}: ${releaseAtLeast(4, 0) ? "re-encoded by the broker, answered" : "delivered as sent, refused"})`,
      properties: {
        replyTo: r,
        correlationId: "c-h-L",
        headers: [["big", F.raw(Buffer.concat([Buffer.from("L"), Buffer.alloc(8, 0xff)]))]],
      },
      expect: releaseAtLeast(4, 0) ? result("c-h-L") : refused("c-h-L", "INVALID_PROPERTY"),
      beyondPredict: true,
      runsLast: true,
    },
    {
      name: "headers: keys of 0xff bytes (255 of them), a 255-byte key, an empty key, a repeated key",
      properties: {
        replyTo: r,
        correlationId: "c-h-keys",
        headers: [
          [ff(255), F.i8(1)],
          ["k".repeat(255), F.str("v")],
          ["", F.void()],
          ["twice", F.i8(1)],
          ["twice", F.table([])],
        ],
      },
      expect: result("c-h-keys"),
    },
    // amqplib's recursive decoder overflows on these (src/rpc/amqplib-internals.ts): refused, since
    // headers that cannot be read may hold a deadline.
    {
      name: "headers: tables nested 20,000 deep",
      properties: { replyTo: r, correlationId: "c-h-deep-tables", headers: nestedTable(20_000) },
      expect: refused("c-h-deep-tables", "INVALID_PROPERTY"),
      beyondPredict: true,
      runsLast: true,
    },
    {
      name: "headers: a value of arrays nested 20,000 deep",
      properties: { replyTo: r, correlationId: "c-h-deep-arrays", headers: [["deep", F.raw(nestedArray(20_000))]] },
      expect: refused("c-h-deep-arrays", "INVALID_PROPERTY"),
      beyondPredict: true,
      runsLast: true,
    },
    {
      // amqplib's decoder assigns every key, so this one sets the headers object's prototype:
      // what it holds is not a header of the request and must not be read through it.
      name: "headers: a __proto__ key holding a table with a past x-fibrpc-deadline and x-fibrpc-attempts 99",
      properties: {
        replyTo: r,
        correlationId: "c-h-proto",
        headers: [
          [
            "__proto__",
            F.table([
              [DEADLINE, F.i64(now - 60_000)],
              ["x-fibrpc-attempts", F.i64(99)],
            ]),
          ],
        ],
      },
      expect: result("c-h-proto"),
    },
    // x-fibrpc-deadline
    {
      name: "x-fibrpc-deadline: a string",
      properties: { replyTo: r, correlationId: "c-dl-string", headers: [[DEADLINE, F.str(String(now + 60_000))]] },
      expect: refused("c-dl-string", "INVALID_PROPERTY"),
    },
    {
      name: "x-fibrpc-deadline: 1e300 (double)",
      properties: { replyTo: r, correlationId: "c-dl-1e300", headers: [[DEADLINE, F.f64(1e300)]] },
      expect: result("c-dl-1e300"),
    },
    {
      name: "x-fibrpc-deadline: 2^63 - 1 (long)",
      properties: { replyTo: r, correlationId: "c-dl-maxlong", headers: [[DEADLINE, F.i64(2n ** 63n - 1n)]] },
      expect: result("c-dl-maxlong"),
    },
    {
      name: "x-fibrpc-deadline: -1 (byte)",
      properties: { replyTo: r, correlationId: "c-dl-minus1", headers: [[DEADLINE, F.i8(-1)]] },
      expect: negativeDeadline("c-dl-minus1"),
    },
    {
      name: "x-fibrpc-deadline: -1e300 (double)",
      properties: { replyTo: r, correlationId: "c-dl-minus1e300", headers: [[DEADLINE, F.f64(-1e300)]] },
      expect: negativeDeadline("c-dl-minus1e300"),
    },
    {
      name: "x-fibrpc-deadline: a minute ago (long)",
      properties: { replyTo: r, correlationId: "c-dl-past", headers: [[DEADLINE, F.i64(now - 60_000)]] },
      expect: refused("c-dl-past", "DEADLINE_EXCEEDED"),
    },
    {
      name: "x-fibrpc-deadline: a minute ago, JSON request",
      properties: {
        replyTo: r,
        correlationId: "c-dl-past-json",
        contentType: "application/json",
        headers: [[DEADLINE, F.f64(now - 60_000)]],
      },
      body: '{"n":30}',
      expect: refused("c-dl-past-json", "DEADLINE_EXCEEDED", "json"),
    },
    {
      name: "x-fibrpc-deadline: a decimal ('D')",
      properties: { replyTo: r, correlationId: "c-dl-decimal", headers: [[DEADLINE, F.decimal(0, 5)]] },
      expect: refused("c-dl-decimal", "INVALID_PROPERTY"),
    },
    {
      name: "x-fibrpc-deadline: void",
      properties: { replyTo: r, correlationId: "c-dl-void", headers: [[DEADLINE, F.void()]] },
      expect: refused("c-dl-void", "INVALID_PROPERTY"),
    },
    {
      name: "x-fibrpc-deadline: a timestamp ('T')",
      properties: {
        replyTo: r,
        correlationId: "c-dl-timestamp",
        headers: [[DEADLINE, F.timestamp(BigInt(now + 60_000))]],
      },
      expect: refused("c-dl-timestamp", "INVALID_PROPERTY"),
    },
    {
      name: "x-fibrpc-deadline: a table",
      properties: {
        replyTo: r,
        correlationId: "c-dl-table",
        headers: [[DEADLINE, F.table([[DEADLINE, F.i64(now + 60_000)]])]],
      },
      expect: refused("c-dl-table", "INVALID_PROPERTY"),
    },
    {
      name: "x-fibrpc-deadline: in an hour (float, 'f': imprecise but future)",
      properties: { replyTo: r, correlationId: "c-dl-float", headers: [[DEADLINE, F.f32(now + 3_600_000)]] },
      expect: result("c-dl-float"),
    },
    // forged redelivery headers on a first delivery
    {
      name: "forged x-delivery-count 99",
      properties: { replyTo: r, correlationId: "c-f-count", headers: [["x-delivery-count", F.i64(99)]] },
      expect: result("c-f-count"),
    },
    {
      name: "forged x-fibrpc-attempts -1e15",
      properties: { replyTo: r, correlationId: "c-f-attempts", headers: [["x-fibrpc-attempts", F.i64(-1e15)]] },
      expect: result("c-f-attempts"),
    },
    {
      name: "forged x-fibrpc-attempts 2^62 (huge)",
      properties: {
        replyTo: r,
        correlationId: "c-f-attempts-huge",
        headers: [["x-fibrpc-attempts", F.i64(2n ** 62n)]],
      },
      expect: result("c-f-attempts-huge"),
    },
    {
      name: "forged x-death garbage, x-fibrpc-attempts as a string, x-delivery-count as a table",
      properties: {
        replyTo: r,
        correlationId: "c-f-garbage",
        headers: [
          [
            "x-death",
            F.array([
              F.str("garbage"),
              F.table([
                ["count", F.str("lots")],
                ["queue", F.bytes(ff(5))],
              ]),
              F.i64(-1),
            ]),
          ],
          ["x-fibrpc-attempts", F.str("9999")],
          ["x-delivery-count", F.table([["n", F.f64(1e300)]])],
        ],
      },
      expect: result("c-f-garbage"),
    },
    // W3C trace context (serve runs with tracing on here, see beforeAll): whatever it holds, the
    // answer is the same; a malformed value is ignored, a valid one only parents a span
    ...traceContextCases(r),
    // every other property
    {
      name: "other properties: odd bytes and extreme values everywhere",
      properties: {
        replyTo: r,
        correlationId: "c-other",
        contentEncoding: ff(255),
        deliveryMode: 2,
        priority: 255,
        expiration: "60000",
        messageId: ff(255),
        timestamp: 2n ** 64n - 1n,
        type: "error",
        userId: "guest", // the broker refuses any other (see below)
        appId: ff(1),
        clusterId: bytes([0xc0, 0x80]),
      },
      expect: result("c-other"),
    },
    {
      name: "invalid body and a non-number deadline at once: either code",
      properties: {
        replyTo: r,
        correlationId: "c-body-dl",
        contentType: "application/json",
        headers: [[DEADLINE, F.bool(false)]],
      },
      body: "[30]",
      expect: refused("c-body-dl", ["INVALID_JSON_SHAPE", "INVALID_PROPERTY"], "json"),
    },
    {
      name: "everything wrong at once: correlation_id wins with INVALID_PROPERTY",
      properties: { replyTo: r, correlationId: ff(3), contentType: ff(3), headers: [[DEADLINE, F.str("x")]] },
      body: bytes([0xff]),
      expect: refused(undefined, "INVALID_PROPERTY", "any"),
    },
    {
      name: "unsupported content type (body not judged) and past deadline at once: either code",
      properties: { replyTo: r, correlationId: "c-all", contentType: "image/png", headers: [[DEADLINE, F.i64(1)]] },
      body: "abc",
      expect: refused("c-all", ["DEADLINE_EXCEEDED", "UNSUPPORTED_CONTENT_TYPE"]),
    },
  ];
}

const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/** traceparent and tracestate headers, valid and not: each request is answered as if they were absent. */
function traceContextCases(r: string): Case[] {
  const traced = (id: string, headers: [string, FieldValue][]): Case => ({
    name: "",
    properties: { replyTo: r, correlationId: `c-tc-${id}`, headers },
    expect: result(`c-tc-${id}`),
  });
  const cases: [string, string, [string, FieldValue][]][] = [
    [
      "valid traceparent and tracestate",
      "valid",
      [
        ["traceparent", F.str(TRACEPARENT)],
        ["tracestate", F.str("fibrpc=t61rcWkgMzE,congo=ucfJifl5GOE")],
      ],
    ],
    ["traceparent of the wrong length", "short", [["traceparent", F.str(TRACEPARENT.slice(0, 54))]]],
    ["traceparent not hex", "nothex", [["traceparent", F.str(TRACEPARENT.replace("4bf9", "4bz9"))]]],
    ["traceparent version ff", "ff", [["traceparent", F.str(`ff${TRACEPARENT.slice(2)}`)]]],
    ["traceparent with all-zero ids", "zero", [["traceparent", F.str(`00-${"0".repeat(32)}-${"0".repeat(16)}-01`)]]],
    ["traceparent of 64 kB", "huge", [["traceparent", F.str(`${TRACEPARENT}-${"a".repeat(65_536)}`)]]],
    ["traceparent not UTF-8", "ff-bytes", [["traceparent", F.str(ff(55))]]],
    [
      "tracestate of 10 kB beside a valid traceparent",
      "state10k",
      [
        ["traceparent", F.str(TRACEPARENT)],
        ["tracestate", F.str(`a=${"b".repeat(10_240)}`)],
      ],
    ],
    [
      "tracestate malformed",
      "badstate",
      [
        ["traceparent", F.str(TRACEPARENT)],
        ["tracestate", F.str("=,,a=\u0000,=b")],
      ],
    ],
    [
      "traceparent and tracestate not strings (bytes, a number)",
      "types",
      [
        ["traceparent", F.bytes(Buffer.from(TRACEPARENT))],
        ["tracestate", F.i64(7)],
      ],
    ],
    ["traceparent a table", "table", [["traceparent", F.table([["traceparent", F.str(TRACEPARENT)]])]]],
    ["traceparent an array", "array", [["traceparent", F.array([F.str(TRACEPARENT)])]]],
    ["traceparent void", "void", [["traceparent", F.void()]]],
  ];
  return cases.map(([name, id, headers]) => ({ ...traced(id, headers), name: `trace context: ${name}` }));
}

/** To declare the tests; the cases are rebuilt with the real queues at run time. */
const declared = namedCases("reply", "request", 0).map((c, index) => ({
  index,
  name: c.name,
  runsLast: c.runsLast === true,
}));

function requestOf(c: Case): HostileRequest {
  const body = c.body === undefined ? "30" : c.body;
  return { properties: c.properties, body: typeof body === "string" ? Buffer.from(body, "utf8") : body };
}

describe("named hostile cases: one outcome each, then a normal call is answered", () => {
  test("predict() agrees with every hand-written expectation", () => {
    const now = Date.now();
    for (const c of namedCases("amq.gen-reply", "requests", now)) {
      if (c.beyondPredict) continue;
      expect({ name: c.name, outcome: predict(requestOf(c), now) }).toEqual({ name: c.name, outcome: c.expect });
    }
  });

  for (const { index, name } of declared.filter((c) => !c.runsLast)) test(name, () => runCase(index));
});

/** Sends named case `index`, waits for its one outcome, then for a normal call to be answered. */
async function runCase(index: number): Promise<void> {
  const c = namedCases(world.replyQueue, world.queue, Date.now())[index]!;
  const logFrom = world.server.log.length;
  const repliesFrom = world.replies.length;
  await publishRaw(requestOf(c));
  // Sent: it must have its outcome by the end of the file, whatever happens below.
  if (c.expect.kind === "reply") world.expected.replies++;
  if (c.expect.kind === "dropped") world.expected.drops++;
  const seen = () => ({ replies: world.replies.slice(repliesFrom), drops: drops(logFrom) });
  const report = (what: string) =>
    `${what}\nexpected: ${showOutcome(c.expect)}\nreplies: ${seen().replies.map(show).join("; ") || "none"}; "dropped a request" lines: ${seen().drops}\nserve's log since:\n${logTail(logFrom)}`;
  try {
    if (c.expect.kind === "reply")
      await eventually(
        async () => seen().replies.length,
        (n) => n >= 1,
        5000,
        "a reply",
      );
    else if (c.expect.kind === "dropped")
      await eventually(
        async () => seen().drops,
        (n) => n >= 1,
        5000,
        "a 'dropped a request' log line",
      );
    else
      await eventually(
        () => queueCounts(world.queue),
        (q) => q.ready + q.unacked === 0,
        10_000,
        "the request acked",
      );
    await normalCallAnswered();
  } catch (err) {
    throw new Error(report(err instanceof Error ? err.message : String(err)));
  }
  const { replies, drops: dropLines } = seen();
  if (c.expect.kind === "away") world.expected.drops += dropLines;
  if (c.expect.kind === "reply") {
    expect(replies.map((reply) => mismatch(reply, c.expect) ?? "as expected")).toEqual(["as expected"]);
    expect(dropLines).toBe(0);
  } else {
    expect(replies.map(show)).toEqual([]);
    if (c.expect.kind === "dropped") expect(dropLines).toBe(1);
    else expect(dropLines).toBeLessThanOrEqual(1);
  }
  expect(world.server.log.slice(logFrom)).not.toMatch(RECONNECTION);
}

// ---------------------------------------------------------------------------------------------
// What the broker refuses itself: these never reach a server, so the fuzz run does not send them
// ---------------------------------------------------------------------------------------------

describe(`frames the broker refuses itself (RabbitMQ ${BROKER_RELEASE}), closing the publisher's channel or connection`, () => {
  // delivery_mode 0: refused by 3.10, accepted by RabbitMQ 4.x.
  const refusals: {
    name: string;
    properties: Properties;
    closes: "channel" | "connection" | "nothing";
    reply: RegExp;
  }[] = [
    {
      name: "user_id other than the login",
      properties: { userId: "someone-else" },
      closes: "channel",
      reply: /^PRECONDITION_FAILED - user_id property set to 'someone-else'/,
    },
    releaseAtLeast(4, 0)
      ? {
          name: "delivery_mode 0: accepted from 4.0 on",
          properties: { deliveryMode: 0 },
          closes: "nothing",
          reply: /^$/,
        }
      : {
          name: "delivery_mode 0",
          properties: { deliveryMode: 0 },
          closes: "channel",
          reply: /^PRECONDITION_FAILED - invalid message: \{delivery_mode_unknown,0\}/,
        },
    {
      name: 'expiration "abc"',
      properties: { expiration: "abc" },
      closes: "channel",
      reply: /^PRECONDITION_FAILED - invalid expiration 'abc'/,
    },
    {
      name: 'expiration "-1"',
      properties: { expiration: "-1" },
      closes: "channel",
      reply: /^PRECONDITION_FAILED - invalid expiration '-1'/,
    },
    {
      name: "a NaN double in the headers",
      properties: { headers: [["d", F.f64(NaN)]] },
      closes: "connection",
      reply: /^INTERNAL_ERROR/,
    },
    {
      name: "an infinite float in the headers",
      properties: { headers: [["f", F.f32(Infinity)]] },
      closes: "connection",
      reply: /^INTERNAL_ERROR/,
    },
    {
      name: "an unknown field type tag ('Z')",
      properties: { headers: [["k", F.raw(bytes("Z", [1]))]] },
      closes: "connection",
      reply: /^INTERNAL_ERROR/,
    },
    {
      name: "a table length past its entries",
      properties: { headers: bytes([0, 0, 0, 9, 1], "k", "V") },
      closes: "connection",
      reply: /^INTERNAL_ERROR/,
    },
  ];
  for (const r of refusals) {
    test(r.name, async () => {
      const publisher = await RawAmqp.connect();
      try {
        // To a routing key nobody listens on: were it accepted, no server would see it anyway.
        const error = await within(
          publisher.publish(`no-such-queue-${crypto.randomUUID()}`, Buffer.from("30"), r.properties),
          5000,
          "the broker's answer",
        ).then(
          () => undefined,
          (err: Error) => err,
        );
        if (r.closes === "nothing") {
          expect(error?.message ?? "accepted").toBe("accepted");
          return;
        }
        expect(error?.message ?? "accepted").toContain(`the broker closed the ${r.closes}`);
        expect(publisher.closeReason?.text).toMatch(r.reply);
      } finally {
        await publisher.close();
      }
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Fuzz: random combinations of everything above, each followed by a normal call
// ---------------------------------------------------------------------------------------------

/** mulberry32: small, seedable, good enough to pick test inputs. */
class Rng {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0;
  }
  next(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0;
    let t = this.state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** lo..hi, both included. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  /** One of the generators, by weight. */
  weighted<T>(choices: readonly (readonly [number, () => T])[]): T {
    let x = this.next() * choices.reduce((sum, [w]) => sum + w, 0);
    for (const [w, make] of choices) {
      x -= w;
      if (x < 0) return make();
    }
    return choices[choices.length - 1]![1]();
  }
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
  /** Bytes that are never UTF-8: random, with a 0xff or 0xfe (invalid anywhere) somewhere. */
  invalidUtf8(n: number): Uint8Array {
    const out = this.bytes(n);
    out[this.int(0, n - 1)] = this.pick([0xff, 0xfe]);
    return out;
  }
  ascii(n: number): string {
    let s = "";
    for (let i = 0; i < n; i++) s += String.fromCharCode(this.int(0x20, 0x7e));
    return s;
  }
  int64(): bigint {
    return BigInt.asIntN(64, (BigInt(this.int(0, 2 ** 32 - 1)) << 32n) | BigInt(this.int(0, 2 ** 32 - 1)));
  }
}

const RESERVED_KEYS = new Set([DEADLINE, "x-delivery-count", "x-fibrpc-attempts", "x-death", "__proto__", "CC", "BCC"]);

function randomKey(rng: Rng): ShortStr {
  const key = rng.weighted<ShortStr>([
    [5, () => rng.pick(["a", "b", "x-", "-"]) + rng.ascii(rng.int(0, 20)).replace(/[^a-z0-9-]/g, "")],
    [1, () => ""],
    [2, () => rng.invalidUtf8(rng.int(1, 30))],
    [1, () => "k".repeat(255)],
    [1, () => "ключ-ключ"],
  ]);
  return typeof key === "string" && RESERVED_KEYS.has(key) ? `${key}_` : key;
}

/** A random value; `depth` 1 is a top-level header. */
function randomValue(rng: Rng, depth: number): FieldValue {
  const scalars: [number, () => FieldValue][] = [
    [1, () => F.bool(rng.chance(0.5))],
    [1, () => F.i8(rng.int(-128, 127))],
    [1, () => F.u8(rng.int(0, 255))],
    [1, () => F.i16(rng.int(-32768, 32767))],
    [1, () => F.u16(rng.int(0, 65535))],
    [1, () => F.i32(rng.int(-(2 ** 31), 2 ** 31 - 1))],
    [1, () => F.u32(rng.int(0, 2 ** 32 - 1))],
    [1, () => F.i64(rng.int64())],
    [1, () => F.f32((rng.next() * 2 - 1) * 1e30)], // finite: the broker refuses NaN and infinities
    [1, () => F.f64(rng.pick([1e300, -1e300, 5e-324, (rng.next() - 0.5) * 1e20]))],
    [1, () => F.decimal(rng.int(0, 255), rng.int(0, 2 ** 32 - 1))],
    [2, () => F.str(rng.chance(0.5) ? rng.ascii(rng.int(0, 40)) : rng.bytes(rng.int(0, 40)))],
    [1, () => F.bytes(rng.bytes(rng.int(0, 40)))],
    [1, () => F.timestamp(BigInt.asUintN(64, rng.int64()))],
    [1, () => F.void()],
  ];
  const containers: [number, () => FieldValue][] =
    depth >= 3
      ? []
      : [
          [2, () => F.array(Array.from({ length: rng.int(0, 4) }, () => randomValue(rng, depth + 1)))],
          [
            2,
            () =>
              F.table(
                Array.from({ length: rng.int(0, 4) }, () => [randomKey(rng), randomValue(rng, depth + 1)] as const),
              ),
          ],
          // Top level only: deeper than any sane sender, shallow enough for one frame (12 KB at
          // most each) and for amqplib's recursive decoder in a Worker (~10,000 levels).
          ...(depth === 1
            ? [
                [
                  0.2,
                  () =>
                    rng.chance(0.5)
                      ? F.raw(Buffer.concat([Buffer.from("F"), nestedTable(rng.int(100, 2000))]))
                      : F.raw(nestedArray(rng.int(100, 2000))),
                ] as [number, () => FieldValue],
              ]
            : []),
        ];
  return rng.weighted([...scalars, ...containers]);
}

function randomDeadline(rng: Rng, now: number): FieldValue {
  return rng.weighted<FieldValue>([
    // past: DEADLINE_EXCEEDED (never within seconds of now: no clock race)
    [2, () => F.i64(now - rng.int(60_000, 10 ** 10))],
    [1, () => F.f64(now - 3_600_000.5)],
    [1, () => rng.pick([F.i8(5), F.u16(1000), F.i32(123456), F.u32(4e9), F.f32(1000.5), F.u8(0)])],
    // future or huge: served
    [2, () => F.i64(now + rng.int(3_600_000, 10 ** 12))],
    [1, () => rng.pick([F.f64(1e300), F.i64(2n ** 63n - 1n), F.f32(1e20), F.f64(now + 86_400_000)])],
    // negative: either
    [1, () => rng.pick([F.i8(-1), F.i64(-1e15), F.f64(-1e300), F.i64(-(2n ** 63n))])],
    // not a number: INVALID_PROPERTY
    [
      2,
      () =>
        rng.pick([
          F.str(String(now + 3_600_000)),
          F.str(""),
          F.bool(true),
          F.void(),
          F.decimal(0, 5),
          F.table([]),
          F.array([F.i64(now + 60_000)]),
          F.bytes(rng.bytes(8)),
          F.timestamp(BigInt(now)),
        ]),
    ],
  ]);
}

function randomHeaders(rng: Rng, now: number): FieldTable | undefined {
  if (rng.chance(0.35)) return undefined;
  const entries: [ShortStr, FieldValue][] = Array.from({ length: rng.int(0, 6) }, () => [
    randomKey(rng),
    randomValue(rng, 1),
  ]);
  if (rng.chance(0.5)) entries.splice(rng.int(0, entries.length), 0, [DEADLINE, randomDeadline(rng, now)]);
  if (rng.chance(0.3)) {
    // Strings, negative, huge, tables: forgeries the contract says are ignored on a first
    // delivery. (A plausible count, x-fibrpc-attempts 25 say, is what fibrpc's own republished
    // copies carry: the redelivery backstop may refuse it, so it is not sent here.)
    const forged = () =>
      rng.pick([
        F.i64(-1e15),
        F.i8(-1),
        F.i64(2n ** 62n),
        F.str("lots"),
        F.str("3"),
        F.table([["count", F.i64(2n ** 62n)]]),
        F.f64(1e300),
        F.void(),
        F.bool(true),
      ]);
    entries.push(
      ["x-delivery-count", rng.chance(0.5) ? F.i64(99) : forged()],
      ["x-fibrpc-attempts", forged()],
      ["x-death", rng.chance(0.5) ? forged() : F.array([F.table([["reason", F.str(rng.bytes(5))]])])],
    );
  }
  return entries;
}

function randomBody(rng: Rng): Uint8Array | string {
  const n = () => rng.int(0, 90);
  return rng.weighted<Uint8Array | string>([
    [6, () => String(n())],
    [1, () => `000${n()}`],
    [1, () => ` \t${n()}\r\n`],
    [4, () => `{"n":${n()}}`],
    [
      3,
      () =>
        rng.pick([
          '{"n": 12.5}',
          '{"n":-4}',
          '{"n":"30"}',
          "[30]",
          "null",
          '{"m":1}',
          "30",
          '{"n":2000000}',
          '{"n":1e400}',
          '{"n":30,"x":[1,{"y":null}]}',
          "{",
          ' {"n" : 7 } ',
        ]),
    ],
    [1, () => `-${rng.int(1, 1000)}`],
    [1, () => rng.pick(["+5", "1.5", "1e3", "0x1f", "30 31", "abc", "٣"])],
    [1, () => rng.pick(["9".repeat(rng.int(17, 100)), "1000001", "99999999999"])],
    [1, () => ""],
    [1, () => rng.pick([" ", "\t\r\n ", "\n".repeat(100)])],
    [2, () => rng.bytes(rng.int(1, 64))],
    [1, () => rng.invalidUtf8(rng.int(1, 16))],
    [1, () => `${"0".repeat(4094)}${rng.int(10, 90)}`],
    [1, () => "7".repeat(MAX_BODY + 1)],
    [1, () => rng.bytes(5000)],
    [0.3, () => rng.bytes(200_000)],
  ]);
}

interface FuzzRequest extends HostileRequest {
  label: string;
  expected: Outcome;
}

function randomRequest(rng: Rng, index: number, replyQueue: string, now: number): FuzzRequest {
  const replyTo = rng.weighted<ShortStr | undefined>([
    [6, () => replyQueue],
    [1, () => undefined],
    [1, () => ""],
    [1, () => rng.invalidUtf8(rng.int(1, 60))],
    [1, () => ff(rng.int(200, 255))],
  ]);
  const correlationId = rng.weighted<ShortStr | undefined>([
    [2, () => undefined],
    [4, () => `f${index}.${rng.ascii(rng.int(0, 40))}`], // unique: matched to its request
    [
      1,
      () =>
        Array.from(`f${index}.${"é€😀".repeat(rng.int(1, 20))}`)
          .slice(0, 60)
          .join(""),
    ], // whole code points
    [3, () => rng.bytes(rng.int(0, 255))],
  ]);
  const contentType = rng.weighted<ShortStr | undefined>([
    [4, () => undefined],
    [1, () => ""],
    [1, () => rng.pick(["text/plain", "Text/Plain; charset=utf-8", "TEXT/PLAIN"])],
    [4, () => rng.pick(["application/json", "application/json; charset=utf-8", "application/json;v=1"])],
    [1, () => rng.pick(["application/xml", "text/html", "application/octet-stream", "x".repeat(255)])],
    [1, () => rng.invalidUtf8(rng.int(1, 40))],
  ]);
  const body = randomBody(rng);
  const headers = randomHeaders(rng, now);
  const properties: Properties = {};
  if (replyTo !== undefined) properties.replyTo = replyTo;
  if (correlationId !== undefined) properties.correlationId = correlationId;
  if (contentType !== undefined) properties.contentType = contentType;
  if (headers !== undefined) properties.headers = headers;
  if (rng.chance(0.1))
    Object.assign(properties, {
      priority: rng.int(0, 255),
      messageId: rng.bytes(rng.int(0, 255)),
      type: rng.bytes(3),
      appId: rng.bytes(10),
      timestamp: BigInt.asUintN(64, rng.int64()),
    });
  const request = { properties, body: typeof body === "string" ? Buffer.from(body, "utf8") : body };
  const label = [
    `#${index}`,
    `reply_to=${preview(replyTo, replyQueue)}`,
    `correlation_id=${preview(correlationId)}`,
    `content_type=${preview(contentType)}`,
    `body=${preview(request.body)}`,
    `headers=${headers ? headers.map(([k, v]) => `${preview(k)}:${v.t}`).join(",") : "none"}${headers?.some(([k]) => k === DEADLINE) ? ` deadline=${JSON.stringify(deadlineOf(headers), (_, v) => (typeof v === "bigint" ? String(v) : v))}` : ""}`,
  ].join(" ");
  return { ...request, label, expected: predict(request, now) };
}

function preview(value: ShortStr | undefined, replyQueue?: string): string {
  if (value === undefined) return "absent";
  if (value === replyQueue) return "the reply queue";
  const b = typeof value === "string" ? Buffer.from(value) : Buffer.from(value);
  const text = b.toString("utf8");
  const shown = text.includes("\ufffd") ? `0x${b.subarray(0, 12).toString("hex")}` : JSON.stringify(text.slice(0, 24));
  return `${shown}${b.length > 12 ? `…(${b.length} bytes)` : ""}`;
}

/**
 * Matches replies to predictions. Requests with a correlation id no other request has are matched
 * by it; the rest (none, or one that repeats) as a maximum bipartite matching (Kuhn's algorithm)
 * of the replies each prediction accepts. Returns what does not add up.
 */
function account(requests: FuzzRequest[], replies: Reply[]): string[] {
  const problems: string[] = [];
  const expecting = requests.filter((r) => r.expected.kind === "reply");
  const idCount = new Map<string, number>();
  for (const r of expecting) {
    const id = (r.expected as { correlationId?: string }).correlationId;
    if (id !== undefined) idCount.set(id, (idCount.get(id) ?? 0) + 1);
  }
  const unique = (id: string | undefined) => id !== undefined && idCount.get(id) === 1;
  const byId = new Map<string, Reply[]>();
  const pool: Reply[] = [];
  for (const reply of replies) {
    if (unique(reply.correlationId)) byId.set(reply.correlationId!, [...(byId.get(reply.correlationId!) ?? []), reply]);
    else pool.push(reply);
  }
  const rest: FuzzRequest[] = [];
  for (const r of expecting) {
    const id = (r.expected as { correlationId?: string }).correlationId;
    if (!unique(id)) {
      rest.push(r);
      continue;
    }
    const got = byId.get(id!) ?? [];
    if (got.length !== 1)
      problems.push(
        `${r.label}: ${got.length} replies (${got.map(show).join("; ")}), expected one: ${showOutcome(r.expected)}`,
      );
    else {
      const why = mismatch(got[0]!, r.expected);
      if (why) problems.push(`${r.label}: ${why}`);
    }
  }
  const edges = rest.map((r) => pool.flatMap((reply, j) => (mismatch(reply, r.expected) === undefined ? [j] : [])));
  const owner = new Array<number>(pool.length).fill(-1);
  const assign = (i: number, seen: Set<number>): boolean => {
    for (const j of edges[i]!) {
      if (seen.has(j)) continue;
      seen.add(j);
      if (owner[j] === -1 || assign(owner[j]!, seen)) {
        owner[j] = i;
        return true;
      }
    }
    return false;
  };
  const unmatched = rest.filter((_, i) => !assign(i, new Set()));
  for (const r of unmatched) problems.push(`${r.label}: no reply for it (${showOutcome(r.expected)})`);
  pool.forEach((reply, j) => {
    if (owner[j] === -1) problems.push(`a reply no request explains: ${show(reply)}`);
  });
  return problems;
}

describe("fuzz", () => {
  const COUNT = Number(process.env.FUZZ_COUNT ?? 2000);
  const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 32));

  test(`${COUNT} random requests, each followed by a normal call; every one accounted for (FUZZ_SEED to replay)`, async () => {
    console.log(`hostile fuzz: FUZZ_SEED=${SEED} FUZZ_COUNT=${COUNT}`);
    const rng = new Rng(SEED);
    const started = performance.now();
    const logFrom = world.server.log.length;
    const repliesFrom = world.replies.length;
    const requests: FuzzRequest[] = [];
    const BATCH = 200;
    for (let start = 0; start < COUNT; start += BATCH) {
      const confirms: Promise<void>[] = [];
      const calls: ReturnType<World["normalCall"]>[] = [];
      for (let i = start; i < Math.min(COUNT, start + BATCH); i++) {
        const request = randomRequest(rng, i, world.replyQueue, Date.now());
        requests.push(request);
        if (world.publisher.closeReason) {
          await world.publisher.close();
          world.publisher = await RawAmqp.connect();
        }
        confirms.push(
          world.publisher
            .publish(world.queue, request.body, request.properties)
            .catch((err: Error) => Promise.reject(new Error(`${request.label}: ${err.message}`))),
        );
        calls.push(world.normalCall());
      }
      await within(Promise.all(confirms), 10_000, "the broker's confirms of a batch");
      await eventually(
        async () => calls.filter((c) => c.answered() === undefined).map((c) => c.correlationId),
        (missing) => missing.length === 0,
        5000,
        `normal calls answered after fuzz requests ${start}..${start + calls.length - 1}`,
      ).catch((err: Error) =>
        Promise.reject(
          new Error(`${err.message.slice(0, 300)}…\nserve's log since the fuzz began:\n${logTail(logFrom)}`),
        ),
      );
      for (const c of calls)
        expect(show(c.answered()!)).toBe(
          show({
            correlationId: c.correlationId,
            type: undefined,
            contentType: undefined,
            body: Buffer.from("832040"),
          }),
        );
    }
    const wantReplies = requests.filter((r) => r.expected.kind === "reply").length;
    const wantDrops = requests.length - wantReplies;
    world.expected.replies += wantReplies;
    world.expected.drops += wantDrops;
    // Everything answered or dropped; a shortfall is reported request by request below.
    const settled = await eventually(
      async () => ({ replies: world.replies.length - repliesFrom, drops: drops(logFrom) }),
      (n) => n.replies + n.drops >= requests.length,
      10_000,
      "outcomes of all fuzz requests",
    ).catch(() => ({ replies: world.replies.length - repliesFrom, drops: drops(logFrom) }));
    const problems = account(requests, world.replies.slice(repliesFrom));
    const tally: Record<string, number> = {};
    for (const r of requests) {
      const key = r.expected.kind === "reply" ? r.expected.accept.join("|") : r.expected.kind;
      tally[key] = (tally[key] ?? 0) + 1;
    }
    console.log(
      `hostile fuzz: ${requests.length} requests in ${Math.round(performance.now() - started)} ms; predicted ${JSON.stringify(tally)}; got ${settled.replies} replies, ${settled.drops} drop lines; ${problems.length} problems`,
    );
    expect({ problems: problems.slice(0, 15), count: problems.length, seed: SEED }).toEqual({
      problems: [],
      count: 0,
      seed: SEED,
    });
    // One line per dropped request: a logger that folds repeated lines into "(repeated N times)"
    // (consola's throttle does, by default) loses the count.
    const folded = (world.server.log.slice(logFrom).match(/dropped a request.*\(repeated \d+ times\)/g) ?? []).length;
    expect({ replies: settled.replies, drops: settled.drops, folded }).toEqual({
      replies: wantReplies,
      drops: wantDrops,
      folded: 0,
    });
    expect(world.server.log.slice(logFrom)).not.toMatch(RECONNECTION);
  }, 90_000);
});

describe("named hostile cases that cost a server its connection if mishandled (run last)", () => {
  for (const { index, name } of declared.filter((c) => c.runsLast)) test(name, () => runCase(index));
});

// ---------------------------------------------------------------------------------------------
// Totals
// ---------------------------------------------------------------------------------------------

describe("afterwards", () => {
  test("every request accounted for, the queue empty, no reconnection, no worker restart", async () => {
    await eventually(
      () => queueCounts(world.queue),
      (q) => q.ready === 0 && q.unacked === 0,
      10_000,
      "request queue empty, nothing unacked",
    );
    await normalCallAnswered();
    expect({ replies: world.replies.length, drops: drops(0) }).toEqual(world.expected);
    expect(world.server.log).not.toMatch(RECONNECTION);
    expect(await counters()).toEqual({ reconnects: 0, restarts: 0 });
    // Both workers' consumers, and the first worker's lead consumer (rpc/scheduler.ts).
    expect((await queueStats(world.queue)).consumerCount).toBe(3);
  });
});
