import { describe, expect, test } from "bun:test";
import {
  BATCH_REPLY_TYPE,
  checkN,
  decodeBatch,
  decodeReply,
  encodeBatchEntry,
  encodeBatchOf,
  decodeRequest,
  encodeError,
  encodeRequest,
  encodeResult,
  ERROR_REPLY_TYPE,
  MAX_PROTOCOL_N,
  MAX_REQUEST_BYTES,
  parseN,
} from "../../src/rpc/protocol.ts";

const MAX = 1_000_000;
const bytes = (s: string) => Buffer.from(s);

describe("decodeRequest", () => {
  const cases: { name: string; body: Buffer; contentType?: string; n?: number; code?: string; format?: string }[] = [
    { name: "tutorial text", body: bytes("30"), n: 30, format: "text" },
    { name: "zero", body: bytes("0"), n: 0 },
    { name: "max", body: bytes("1000000"), n: MAX },
    { name: "whitespace around (Python int() accepts it)", body: bytes(" 30\n"), n: 30 },
    { name: "leading zeros", body: bytes("007"), n: 7 },
    { name: "text/plain", body: bytes("12"), contentType: "text/plain; charset=utf-8", n: 12 },
    { name: "json", body: bytes('{"n": 30}'), contentType: "application/json", n: 30, format: "json" },
    {
      name: "json with charset",
      body: bytes('{"n":5}'),
      contentType: "application/json; charset=utf-8",
      n: 5,
      format: "json",
    },
    { name: "empty", body: bytes(""), code: "EMPTY_REQUEST" },
    { name: "blank", body: bytes("  \n"), code: "EMPTY_REQUEST" },
    { name: "word", body: bytes("abc"), code: "NOT_AN_INTEGER" },
    { name: "fraction", body: bytes("3.5"), code: "NOT_AN_INTEGER" },
    { name: "exponent", body: bytes("1e3"), code: "NOT_AN_INTEGER" },
    { name: "plus sign", body: bytes("+5"), code: "NOT_AN_INTEGER" },
    { name: "negative", body: bytes("-5"), code: "NEGATIVE_N" },
    { name: "above max", body: bytes("1000001"), code: "N_TOO_LARGE" },
    { name: "huge", body: bytes("9".repeat(40)), code: "N_TOO_LARGE" },
    { name: "oversized", body: Buffer.alloc(MAX_REQUEST_BYTES + 1, 0x31), code: "REQUEST_TOO_LARGE" },
    { name: "non-UTF-8", body: Buffer.from([0xff, 0xfe, 0x33]), code: "INVALID_UTF8" },
    {
      name: "json not json",
      body: bytes("{n:1"),
      contentType: "application/json",
      code: "INVALID_JSON",
      format: "json",
    },
    { name: "json array", body: bytes("[30]"), contentType: "application/json", code: "INVALID_JSON_SHAPE" },
    { name: "json without n", body: bytes('{"x":1}'), contentType: "application/json", code: "INVALID_JSON_SHAPE" },
    {
      name: "json n as string",
      body: bytes('{"n":"30"}'),
      contentType: "application/json",
      code: "INVALID_JSON_SHAPE",
    },
    { name: "json n fraction", body: bytes('{"n":2.5}'), contentType: "application/json", code: "NOT_AN_INTEGER" },
    { name: "json n negative", body: bytes('{"n":-1}'), contentType: "application/json", code: "NEGATIVE_N" },
    { name: "json n too large", body: bytes('{"n":1e9}'), contentType: "application/json", code: "N_TOO_LARGE" },
    { name: "other content type", body: bytes("30"), contentType: "application/xml", code: "UNSUPPORTED_CONTENT_TYPE" },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const decoded = decodeRequest(c.body, c.contentType, MAX);
      if (c.code) {
        expect(decoded.ok).toBe(false);
        if (!decoded.ok) {
          expect(decoded.code).toBe(c.code as never);
          expect(decoded.message.length).toBeGreaterThan(5);
        }
      } else {
        expect(decoded).toMatchObject({ ok: true, n: c.n });
      }
      if (c.format) expect(decoded.format).toBe(c.format as never);
    });
  }

  test("the server's own --max-n is enforced", () => {
    expect(decodeRequest(bytes("100"), undefined, 99)).toMatchObject({ ok: false, code: "N_TOO_LARGE" });
    expect(decodeRequest(bytes("99"), undefined, 99)).toMatchObject({ ok: true, n: 99 });
  });

  test("an n refused for its value is kept, and a JSON error reply names it (a pipeline's next stage reads it)", () => {
    for (const [n, code] of [
      [100, "N_TOO_LARGE"],
      [-1, "NEGATIVE_N"],
      [1.5, "NOT_AN_INTEGER"],
    ] as const) {
      const request = decodeRequest(bytes(JSON.stringify({ n })), "application/json", 99);
      expect(request).toMatchObject({ ok: false, code, n });
      if (request.ok) continue;
      const reply = encodeError(request.format, request.code, request.message, request.n);
      expect(JSON.parse(reply.body.toString())).toMatchObject({ n, error: { code } });
    }
    // Not a number, or one JSON cannot write back (1e999 is Infinity): there is no n to name.
    expect(decodeRequest(bytes('{"n":"5"}'), "application/json", 99)).not.toHaveProperty("n");
    expect(decodeRequest(bytes('{"n":1e999}'), "application/json", 99)).not.toHaveProperty("n");
  });
});

describe("parseN / checkN (the client's rule is the server's)", () => {
  test("same verdicts", () => {
    for (const text of ["30", "-1", "x", "", "1000001", "1.5"]) {
      const fromClient = parseN(text, MAX);
      const fromServer = decodeRequest(bytes(text), undefined, MAX);
      expect(fromClient.ok).toBe(fromServer.ok);
      if (!fromClient.ok && !fromServer.ok) expect(fromClient.code).toBe(fromServer.code);
    }
    expect(checkN(MAX, MAX).ok).toBe(true);
  });
});

describe("the protocol's bound on n (what `fibrpc call` lets through; the server's --max-n decides the rest)", () => {
  test("is the largest safe integer, and every n up to it travels exactly, as text and as JSON", () => {
    expect(MAX_PROTOCOL_N).toBe(2 ** 53 - 1);
    for (const n of [0, 1_000_001, 10_000_001, MAX_PROTOCOL_N]) {
      expect(parseN(String(n), MAX_PROTOCOL_N)).toEqual({ ok: true, n });
      for (const format of ["text", "json"] as const) {
        const { body, contentType } = encodeRequest(n, format);
        expect(decodeRequest(body, contentType, MAX_PROTOCOL_N)).toMatchObject({ ok: true, n });
      }
    }
  });
  test("above it, N_TOO_LARGE quoting the digits as given (not the number they round to)", () => {
    const cases: [string, string][] = [
      ["9007199254740992", '"9007199254740992"'],
      ["9007199254740993", '"9007199254740993"'],
      ["9999999999999999", '"9999999999999999"'],
      ["00009007199254740993", '"00009007199254740993"'],
      ["1".repeat(30), `"${"1".repeat(30)}"`],
    ];
    for (const [text, quoted] of cases) {
      expect(parseN(text, MAX_PROTOCOL_N)).toEqual({
        ok: false,
        code: "N_TOO_LARGE",
        message: `n must be at most ${MAX_PROTOCOL_N}, got ${quoted}`,
      });
      // A server (max-n far lower) gives the same code and quotes it the same way.
      expect(decodeRequest(bytes(text), undefined, MAX)).toMatchObject({
        ok: false,
        code: "N_TOO_LARGE",
        message: `n must be at most ${MAX}, got ${quoted}`,
      });
    }
    // As JSON, the same: the request's own digits quoted, and no n in the error reply rather than the
    // neighbour the number rounds to (a next stage matching replies by n would find one never sent).
    for (const [json, quoted, code] of [
      ['{"n": 9007199254740993}', '"9007199254740993"', "N_TOO_LARGE"],
      ['{"x": {"n": 1}, "n": 12345678901234567890}', '"12345678901234567890"', "N_TOO_LARGE"],
      ['{"n": -9007199254740993}', '"-9007199254740993"', "NEGATIVE_N"],
      ['{"n": 1e999}', '"1e999"', "N_TOO_LARGE"],
    ] as const) {
      const request = decodeRequest(bytes(json), "application/json", MAX);
      const rule = code === "N_TOO_LARGE" ? `n must be at most ${MAX}` : "n must not be negative";
      expect(request).toEqual({ ok: false, code, message: `${rule}, got ${quoted}`, format: "json" });
      if (request.ok) continue;
      const reply = JSON.parse(encodeError(request.format, request.code, request.message, request.n).body.toString());
      expect(reply).not.toHaveProperty("n");
    }
    // A negative text n read exactly is kept for the JSON error reply (x-fibrpc-reply-format), as a JSON request's;
    // past 2^53 it is not; "-0" is a sign the rule does not allow, not a negative number.
    expect(parseN(" -5 ", MAX)).toEqual({
      ok: false,
      code: "NEGATIVE_N",
      message: 'n must not be negative, got "-5"',
      n: -5,
    });
    expect(parseN("-9007199254740993", MAX)).not.toHaveProperty("n");
    for (const zero of ["-0", " -000 "])
      expect(parseN(zero, MAX)).toEqual({
        ok: false,
        code: "NOT_AN_INTEGER",
        message: `n must be a decimal integer without a sign, got ${JSON.stringify(zero.trim())}`,
      });
    // Leading zeros do not count: a safe integer written with them is still that integer.
    expect(parseN("0009007199254740991", MAX_PROTOCOL_N)).toEqual({ ok: true, n: MAX_PROTOCOL_N });
  });
});

describe("replies", () => {
  test("text result is bare decimal, like the tutorial's server", () => {
    const reply = encodeResult("text", 30, "832040");
    expect(reply.body.toString()).toBe("832040");
    expect(reply.contentType).toBeUndefined();
    expect(reply.type).toBeUndefined();
    expect(decodeReply(reply.body, reply)).toEqual({ ok: true, result: "832040" });
  });
  test("json result", () => {
    const reply = encodeResult("json", 30, "832040");
    expect(JSON.parse(reply.body.toString())).toEqual({ n: 30, result: "832040" });
    expect(decodeReply(reply.body, reply)).toEqual({ ok: true, result: "832040" });
  });
  test("errors are marked by type and carry code and message", () => {
    for (const format of ["text", "json"] as const) {
      const reply = encodeError(format, "N_TOO_LARGE", "n must be at most 10, got 11", 11);
      expect(reply.type).toBe(ERROR_REPLY_TYPE);
      expect(decodeReply(reply.body, reply)).toEqual({
        ok: false,
        code: "N_TOO_LARGE",
        message: "n must be at most 10, got 11",
      });
    }
  });
  test("a reply that is not a number is reported, not printed", () => {
    expect(decodeReply(bytes("oops"), {})).toMatchObject({ ok: false, code: "INVALID_REPLY" });
  });
  test("requests: text as the tutorial sends, or JSON", () => {
    expect(encodeRequest(30, "text").body.toString()).toBe("30");
    expect(encodeRequest(30, "json")).toMatchObject({ contentType: "application/json" });
  });
});

describe("batched replies", () => {
  test("a batch round-trips: each correlation id with its result, the server span's headers ignored", () => {
    const traced = { traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" };
    const body = encodeBatchOf([
      encodeBatchEntry("a.1", bytes("832040")),
      encodeBatchEntry('quote " and \\ and ✓', bytes("0"), traced),
    ]);
    expect(JSON.parse(body.toString())[1][2]).toEqual(traced);
    expect(BATCH_REPLY_TYPE).toBe("batch");
    expect(decodeBatch(body)).toEqual([
      { correlationId: "a.1", reply: { ok: true, result: "832040" } },
      { correlationId: 'quote " and \\ and ✓', reply: { ok: true, result: "0" } },
    ]);
  });
  test("an entry's length is its size in the body, escapes included", () => {
    const entry = encodeBatchEntry("c\u0000\n1", bytes("55"));
    expect(encodeBatchOf([entry, entry]).length).toBe(2 * entry.length + 3);
  });
  test("a result the server made an object, null or a nested array is INVALID_REPLY, described by its type", () => {
    const deep = `${"[".repeat(100_000)}${"]".repeat(100_000)}`;
    // However deep, it answers no call, and never throws (it runs inside amqplib's frame loop).
    expect(decodeBatch(bytes(deep)) ?? []).toEqual([]);
    const body = bytes(
      JSON.stringify([
        ["a", { toString: 0 }],
        ["b", null],
        ["c", [[1]]],
      ]),
    );
    expect(decodeBatch(body)!.map((r) => (r.reply.ok ? "" : r.reply.message))).toEqual([
      expect.stringMatching(/a JSON object$/),
      expect.stringMatching(/a JSON null$/),
      expect.stringMatching(/a JSON array$/),
    ]);
  });
  test("a body that is not a JSON array is no batch", () => {
    for (const text of ["", "oops", "{}", '{"0":["a","1"]}', "1", "null", "[", "\u00ff"])
      expect(decodeBatch(bytes(text))).toBeUndefined();
  });
  test("an entry that names no call is left out; a result that is not decimal is INVALID_REPLY for its call", () => {
    const body = bytes(
      JSON.stringify([["a", "1"], "x", [], [7, "1"], [null], ["b", 5], ["c", "1e3"], ["d"], ["e", "12"]]),
    );
    const results = decodeBatch(body)!;
    expect(results.map((r) => r.correlationId)).toEqual(["a", "b", "c", "d", "e"]);
    expect(results.map((r) => r.reply.ok)).toEqual([true, false, false, false, true]);
    expect(results[1]!.reply).toMatchObject({ code: "INVALID_REPLY" });
  });
});
