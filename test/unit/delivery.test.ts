/**
 * decide(): every delivery gets exactly one fate, whatever its properties hold. A table of
 * { delivery, circumstances } → fate, giget-style.
 */
import { describe, expect, test } from "bun:test";
import { UNREADABLE_TABLE } from "../../src/rpc/amqplib-internals.ts";
import {
  decide,
  HEAVY_N,
  isFaithfulShortString,
  isFirstDelivery,
  type Circumstances,
  type Delivery,
  type Fate,
} from "../../src/rpc/delivery.ts";

const NOW = 1_800_000_000_000;
/** A headers table as amqplib-internals.ts returns it for one nested too deeply. */
function unreadable(): Record<string, unknown> {
  const table = {};
  Object.defineProperty(table, UNREADABLE_TABLE, { value: true });
  return table;
}
const base: Omit<Circumstances, "firstDelivery"> = {
  now: NOW,
  maxN: 1_000_000,
  queueType: "classic",
  pauseForHeavy: true,
  crashes: 0,
};
/** What amqplib makes of 100 bytes of 0xff in a short string. */
const LOSSY = Buffer.alloc(100, 0xff).toString("utf8");

function delivery(body: string | Uint8Array, properties: Delivery["properties"] = {}, redelivered = false): Delivery {
  return {
    content: typeof body === "string" ? Buffer.from(body) : body,
    fields: { redelivered },
    properties: {
      replyTo: "amq.rabbitmq.reply-to.g1h2AA1yZXBseUA5MjQ4ODg0AABmGQAAAAVrBt0Q.6nwfprQr5FoXK7Ed45FASw==",
      correlationId: "c1",
      ...properties,
    },
  };
}

/** The fate, with the reply body as text, for compact expectations. */
function summary(fate: Fate): Record<string, unknown> {
  const { kind } = fate;
  if (kind === "drop") return { kind, reason: fate.reason };
  if (kind === "republish") return { kind, redeliveries: fate.copy.attempts, deadline: fate.copy.deadline };
  if (kind === "compute") {
    const { n, format, heavy, deadline, attempts } = fate;
    const batch = fate.to.batch ?? false;
    return { kind, n, format, heavy, correlationId: fate.to.correlationId, deadline, attempts, batch };
  }
  return { kind, correlationId: fate.to.correlationId, type: fate.reply.type, body: fate.reply.body.toString() };
}

const cases: { name: string; delivery: Delivery; c?: Partial<Circumstances>; expect: Record<string, unknown> }[] = [
  {
    name: "a plain request",
    delivery: delivery("30"),
    expect: { kind: "compute", n: 30, format: "text", heavy: false, correlationId: "c1" },
  },
  {
    name: "a caller that reads batched replies (x-fibrpc-reply-batch = 1)",
    delivery: delivery("30", { headers: { "x-fibrpc-reply-batch": 1 } }),
    expect: { kind: "compute", n: 30, correlationId: "c1", batch: true },
  },
  ...[0, 2, "1", true, { a: 1 }, null].map((value) => ({
    name: `x-fibrpc-reply-batch = ${JSON.stringify(value)}: replies of its own, as to any client`,
    delivery: delivery("30", { headers: { "x-fibrpc-reply-batch": value } }),
    expect: { kind: "compute", n: 30, batch: false },
  })),
  {
    name: "batched replies asked for without a correlation id: a reply of its own (a batch names each call by it)",
    delivery: delivery("30", { correlationId: undefined, headers: { "x-fibrpc-reply-batch": 1 } }),
    expect: { kind: "compute", correlationId: undefined, batch: false },
  },
  {
    name: "batched replies asked for, the request invalid: an error reply, never batched",
    delivery: delivery("abc", { headers: { "x-fibrpc-reply-batch": 1 } }),
    expect: { kind: "refuse", body: expect.stringMatching(/^NOT_AN_INTEGER/) },
  },
  {
    name: 'x-fibrpc-reply-format = "json" on a decimal request (a pipeline\'s): a JSON reply, naming its n',
    delivery: delivery("30", { headers: { "x-fibrpc-reply-format": "json" } }),
    expect: { kind: "compute", n: 30, format: "json" },
  },
  {
    name: 'x-fibrpc-reply-format = "json", the request invalid: the error reply in JSON too',
    delivery: delivery("abc", { headers: { "x-fibrpc-reply-format": "json" } }),
    expect: { kind: "refuse", body: expect.stringMatching(/^\{"error":\{"code":"NOT_AN_INTEGER"/) },
  },
  {
    name: 'x-fibrpc-reply-format = "json", a negative decimal n: the error reply names it, as for a JSON request',
    delivery: delivery("-1", { headers: { "x-fibrpc-reply-format": "json" } }),
    expect: { kind: "refuse", body: expect.stringMatching(/^\{"n":-1,"error":\{"code":"NEGATIVE_N"/) },
  },
  ...["JSON", "text", 1, Buffer.from("json"), { json: true }].map((value) => ({
    name: `x-fibrpc-reply-format = ${JSON.stringify(value)}: ignored, the reply in the request's format`,
    delivery: delivery("30", { headers: { "x-fibrpc-reply-format": value } }),
    expect: { kind: "compute", n: 30, format: "text" },
  })),
  {
    name: "no correlation id: answered without one",
    delivery: delivery("30", { correlationId: undefined }),
    expect: { kind: "compute", correlationId: undefined },
  },
  {
    name: "JSON with parameters",
    delivery: delivery('{"n":7}', { contentType: "Application/JSON; charset=utf-8" }),
    expect: { kind: "compute", n: 7, format: "json" },
  },
  { name: "heavy, pausing", delivery: delivery(String(HEAVY_N)), expect: { kind: "compute", heavy: true } },
  {
    name: "heavy, prefetch 1",
    delivery: delivery(String(HEAVY_N)),
    c: { pauseForHeavy: false },
    expect: { kind: "compute", heavy: false },
  },
  {
    name: "no reply_to",
    delivery: delivery("30", { replyTo: undefined }),
    expect: { kind: "drop", reason: 'it has no reply_to (correlation id "c1"): a caller must say where to reply' },
  },
  {
    name: "no reply_to, nor correlation id",
    delivery: delivery("30", { replyTo: undefined, correlationId: undefined }),
    expect: { kind: "drop", reason: "it has no reply_to (correlation id none): a caller must say where to reply" },
  },
  { name: "empty reply_to", delivery: delivery("30", { replyTo: "" }), expect: { kind: "drop" } },
  { name: "reply_to not UTF-8", delivery: delivery("30", { replyTo: LOSSY }), expect: { kind: "drop" } },
  {
    name: "reply_to 10 bytes of 0xff (fits, but not what was sent)",
    delivery: delivery("30", { replyTo: Buffer.alloc(10, 0xff).toString() }),
    expect: { kind: "drop" },
  },
  { name: "reply_to of another type", delivery: delivery("30", { replyTo: 42 }), expect: { kind: "drop" } },
  {
    name: "correlation id of 100 bytes of 0xff",
    delivery: delivery("30", { correlationId: LOSSY }),
    expect: {
      kind: "refuse",
      correlationId: undefined,
      type: "error",
      body: expect.stringMatching(/^INVALID_PROPERTY: correlation_id "\uFFFD+…" is not valid UTF-8/),
    },
  },
  {
    name: "correlation id of 255 bytes of valid UTF-8",
    delivery: delivery("30", { correlationId: "é".repeat(127) }),
    expect: { kind: "compute", correlationId: "é".repeat(127) },
  },
  {
    name: "content type not UTF-8",
    delivery: delivery("30", { contentType: LOSSY }),
    expect: { kind: "refuse", body: expect.stringMatching(/^UNSUPPORTED_CONTENT_TYPE: /) },
  },
  {
    name: "content type text/plain with parameters not UTF-8",
    delivery: delivery("30", { contentType: `text/plain; x=${LOSSY}` }),
    expect: { kind: "refuse", body: expect.stringMatching(/^UNSUPPORTED_CONTENT_TYPE: /) },
  },
  {
    name: "body not UTF-8",
    delivery: delivery(Buffer.from([0xff, 0xfe])),
    expect: { kind: "refuse", body: "INVALID_UTF8: the request body is not valid UTF-8" },
  },
  {
    name: "body too large",
    delivery: delivery("1".repeat(5000)),
    expect: { kind: "refuse", body: expect.stringMatching(/^REQUEST_TOO_LARGE: /) },
  },
  {
    name: "deadline passed",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": NOW - 5000 } }),
    expect: {
      kind: "expired",
      body: "DEADLINE_EXCEEDED: the caller's deadline passed before a server picked the request up",
    },
  },
  {
    name: "deadline negative",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": -1 } }),
    expect: { kind: "expired" },
  },
  {
    name: "deadline within the skew allowance",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": NOW - 500 } }),
    expect: { kind: "compute" },
  },
  {
    name: "deadline huge",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": 1e300 } }),
    expect: { kind: "compute" },
  },
  {
    name: "deadline a string",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": "soon" } }),
    expect: {
      kind: "refuse",
      body: 'INVALID_PROPERTY: header x-fibrpc-deadline must be a number (ms since the Unix epoch), got string "soon"',
    },
  },
  {
    name: "deadline NaN",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": Number.NaN } }),
    expect: { kind: "refuse", body: expect.stringMatching(/^INVALID_PROPERTY: /) },
  },
  {
    name: "deadline a decimal",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": { "!": "decimal", value: { places: 1, digits: 5 } } } }),
    expect: {
      kind: "refuse",
      body: expect.stringMatching(/must be a number \(ms since the Unix epoch\), got a decimal$/),
    },
  },
  {
    name: "deadline a timestamp (seconds, not ms)",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": { "!": "timestamp", value: 1_900_000_000 } } }),
    expect: {
      kind: "refuse",
      body: expect.stringMatching(/must be a number \(ms since the Unix epoch\), got a timestamp$/),
    },
  },
  {
    name: "deadline a table",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": { at: 5 } } }),
    expect: { kind: "refuse", body: expect.stringMatching(/got a table$/) },
  },
  { name: "headers not a table", delivery: delivery("30", { headers: "nope" }), expect: { kind: "compute" } },
  {
    name: "forged x-delivery-count on a first delivery (classic)",
    delivery: delivery("30", { headers: { "x-delivery-count": 99 } }),
    expect: { kind: "compute" },
  },
  {
    name: "forged x-delivery-count on a first delivery (quorum)",
    delivery: delivery("30", { headers: { "x-delivery-count": 99 } }),
    c: { queueType: "quorum" },
    expect: { kind: "compute" },
  },
  {
    name: "forged x-death",
    delivery: delivery("30", { headers: { "x-death": [{ count: 1e9 }] } }),
    expect: { kind: "compute" },
  },
  {
    name: "forged attempts, negative",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": -1e15 } }),
    expect: { kind: "compute" },
  },
  {
    name: "forged attempts, huge",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": 1e15 } }),
    expect: {
      kind: "poison",
      body: expect.stringMatching(/^POISON_REQUEST: the request was redelivered 1000000000000000 times/),
    },
  },
  {
    name: "classic, redelivered: put back with a count",
    delivery: delivery("30", {}, true),
    expect: { kind: "republish", redeliveries: 1 },
  },
  {
    name: "classic, redelivered copy",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": 2 } }, true),
    expect: { kind: "republish", redeliveries: 3 },
  },
  {
    name: "classic, copy with a count below the limit",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": 19 } }),
    expect: { kind: "compute", attempts: 19 },
  },
  // What a copy put back keeps travels in the fate (the executor reads no headers).
  {
    name: "classic, redelivered with a deadline: the copy keeps it",
    delivery: delivery("30", { headers: { "x-fibrpc-deadline": NOW + 5000 } }, true),
    expect: { kind: "republish", redeliveries: 1, deadline: NOW + 5000 },
  },
  {
    name: "a first delivery: no count, no deadline",
    delivery: delivery("30"),
    expect: { kind: "compute", deadline: undefined, attempts: undefined },
  },
  {
    name: "forged attempts not a count: none kept",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": 1.5 } }),
    expect: { kind: "compute", attempts: undefined },
  },
  {
    name: "classic, redelivered 20 times: backstop",
    delivery: delivery("30", { headers: { "x-fibrpc-attempts": 19 } }, true),
    expect: { kind: "poison" },
  },
  {
    name: "quorum, redelivered 3 times by lost connections: answered",
    delivery: delivery("30", { headers: { "x-delivery-count": 3 } }, true),
    c: { queueType: "quorum" },
    expect: { kind: "compute" },
  },
  {
    name: "quorum, redelivered 20 times: backstop",
    delivery: delivery("30", { headers: { "x-delivery-count": 20 } }, true),
    c: { queueType: "quorum" },
    expect: { kind: "poison" },
  },
  {
    name: "crashed workers twice: tried again",
    delivery: delivery("30", {}, true),
    c: { crashes: 2, queueType: "quorum" },
    expect: { kind: "compute" },
  },
  {
    name: "crashed workers 3 times: poison",
    delivery: delivery("30", {}, true),
    c: { crashes: 3 },
    expect: { kind: "poison", body: "POISON_REQUEST: the request crashed a server 3 times; it is not tried again" },
  },
  {
    name: "a __proto__ header key cannot plant a deadline",
    delivery: delivery("30", { headers: JSON.parse('{"__proto__": {"x-fibrpc-deadline": 1}}') }),
    expect: { kind: "compute" },
  },
  {
    name: "headers too deep to decode (amqplib-internals.ts)",
    delivery: delivery("30", { headers: unreadable() }),
    expect: {
      kind: "refuse",
      body: "INVALID_PROPERTY: the headers table cannot be read (nested too deeply, or a field type this server does not know)",
    },
  },
  {
    name: "a malformed Direct Reply-to address",
    delivery: delivery("30", { replyTo: "amq.rabbitmq.reply-to.g1hkAA==.AAAA" }),
    expect: { kind: "drop", reason: expect.stringContaining("not a Direct Reply-to address the broker issued") },
  },
  {
    name: "invalid and redelivered: refused, not counted",
    delivery: delivery("abc", {}, true),
    c: { crashes: 5 },
    expect: { kind: "refuse", body: expect.stringMatching(/^NOT_AN_INTEGER/) },
  },
];

describe("decide", () => {
  for (const { name, delivery: d, c, expect: expected } of cases) {
    test(name, () => {
      expect(summary(decide(d, { ...base, firstDelivery: isFirstDelivery(d), ...c }))).toMatchObject(expected);
    });
  }
});

describe("a persistent request's answer", () => {
  test("is addressed as persistent (delivery_mode 2: a pipeline's durable reply queue keeps it); a transient one's is not", () => {
    const c = { ...base, firstDelivery: true };
    const of = (fate: Fate) => (fate.kind === "drop" || fate.kind === "republish" ? undefined : fate.to.persistent);
    expect(of(decide(delivery("30", { deliveryMode: 2 }), c))).toBe(true);
    expect(of(decide(delivery("-1", { deliveryMode: 2 }), c))).toBe(true);
    expect(of(decide(delivery("30", { deliveryMode: 1 }), c))).toBeUndefined();
    expect(of(decide(delivery("30"), c))).toBeUndefined();
  });
});

describe("isFaithfulShortString", () => {
  test.each([
    ["", true],
    ["rpc_queue", true],
    ["é".repeat(127), true],
    ["é".repeat(128), false],
    ["\uFFFD", false],
    [LOSSY, false],
  ])("%p → %p", (value, faithful) => {
    expect(isFaithfulShortString(value)).toBe(faithful);
  });
});
