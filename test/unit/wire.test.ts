import { describe, expect, test } from "bun:test";
import { createRequire } from "node:module";
import { resolve } from "node:path";
import type { PublishProperties } from "../../src/rpc/outlet.ts";
import { encodeProperties, encodeTable, openWire } from "../../src/rpc/wire.ts";

// amqplib's own encoder, as its channel.publish uses it: Connection#sendMessage, with a stand-in
// for the per-channel buffer it writes to.
// (amqplib's package exports hide lib/, so by path.)
const require = createRequire(import.meta.url);
const AMQPLIB = resolve(import.meta.dir, "../../node_modules/amqplib/lib");
const { Connection } = require(`${AMQPLIB}/connection.js`) as {
  Connection: { prototype: Record<string, (...args: unknown[]) => unknown> };
};
const defs = require(`${AMQPLIB}/defs.js`) as { BasicPublish: number; BasicProperties: number };

function amqplibBytes(
  channel: number,
  frameMax: number,
  routingKey: string,
  body: Buffer,
  properties: PublishProperties,
  mandatory: boolean,
): Buffer {
  const written: Buffer[] = [];
  const connection = {
    channels: { [channel]: { buffer: { write: (b: Buffer) => written.push(Buffer.from(b)) > 0 } } },
    frameMax,
    sendContent: Connection.prototype.sendContent,
  };
  Connection.prototype.sendMessage!.call(
    connection,
    channel,
    defs.BasicPublish,
    { ticket: 0, exchange: "", routingKey, mandatory, immediate: false },
    defs.BasicProperties,
    properties,
    body,
  );
  return Buffer.concat(written);
}

/** Splits a byte stream into AMQP frames, checking every frame's size and frame-end octet. */
function frames(bytes: Uint8Array): { type: number; channel: number; payload: Buffer }[] {
  const buf = Buffer.from(bytes);
  const out: { type: number; channel: number; payload: Buffer }[] = [];
  let o = 0;
  while (o < buf.length) {
    const type = buf.readUInt8(o);
    const channel = buf.readUInt16BE(o + 1);
    const size = buf.readUInt32BE(o + 3);
    expect(buf.readUInt8(o + 7 + size)).toBe(0xce);
    out.push({ type, channel, payload: buf.subarray(o + 7, o + 7 + size) });
    o += 8 + size;
  }
  expect(o).toBe(buf.length);
  return out;
}

/** The basic.ack frames of a write: tag and multiple. */
function acksOf(written: Uint8Array): { tag: number; multiple: boolean }[] {
  return frames(written)
    .filter((f) => f.type === 1 && f.payload.readUInt16BE(0) === 60 && f.payload.readUInt16BE(2) === 80)
    .map((f) => ({ tag: Number(f.payload.readBigUInt64BE(4)), multiple: f.payload.readUInt8(12) === 1 }));
}

function fakeWire(frameMax = 4096, full = false) {
  const written: Uint8Array[] = [];
  const listeners: (() => void)[] = [];
  const drains: (() => void)[] = [];
  const socket = {
    /** Whether the socket's buffer is full: write() returns false, and 'drain' comes later. */
    full,
    write: (b: Uint8Array) => written.push(b) > 0 && !socket.full,
    once: (_: "drain", fn: () => void) => drains.push(fn),
    drain: () => {
      socket.full = false;
      for (const fn of drains.splice(0)) fn();
    },
  };
  const model = { connection: { stream: socket, frameMax } };
  const channel = { ch: 7, once: (_: string, fn: () => void) => listeners.push(fn) };
  const wire = openWire(model as never, channel as never)!;
  const close = () => {
    listeners.forEach((l) => {
      l();
    });
  };
  return { wire, written, socket, close };
}

describe("wire", () => {
  test("publish then ack of one turn leave in one write, framed exactly", async () => {
    const { wire, written } = fakeWire();
    wire.publish("reply-queue", Buffer.from("832040"), { correlationId: "c1", type: "error" });
    wire.ack({ fields: { deliveryTag: 42 } } as never);
    expect(written).toHaveLength(0); // written at the end of the turn
    await Promise.resolve();
    expect(written).toHaveLength(1);
    const [method, header, body, ack] = frames(written[0]!);
    expect([method!.type, header!.type, body!.type, ack!.type]).toEqual([1, 2, 3, 1]);
    expect(method!.channel).toBe(7);
    expect(method!.payload.readUInt16BE(0)).toBe(60);
    expect(method!.payload.readUInt16BE(2)).toBe(40);
    expect(method!.payload.subarray(6, 6 + 2 + 11).toString("latin1")).toBe("\u0000\u000breply-queue");
    expect(header!.payload.readBigUInt64BE(4)).toBe(6n);
    expect(body!.payload.toString()).toBe("832040");
    expect(ack!.payload.readUInt16BE(2)).toBe(80);
    expect(ack!.payload.readBigUInt64BE(4)).toBe(42n);
    expect(ack!.payload).toHaveLength(13);
  });

  test("a body larger than a frame is split into frames of frameMax", async () => {
    const { wire, written } = fakeWire(4096);
    const body = Buffer.alloc(10_000, 0x35);
    wire.publish("q", body, {});
    await Promise.resolve();
    const bodies = frames(written[0]!).filter((f) => f.type === 3);
    expect(bodies.map((f) => f.payload.length)).toEqual([4088, 4088, 1824]);
  });

  test("nothing is written for a closed channel", async () => {
    const { wire, written, close } = fakeWire();
    wire.ack({ fields: { deliveryTag: 1 } } as never);
    close();
    await Promise.resolve();
    expect(written).toHaveLength(0);
  });

  test("properties and tables", () => {
    const props = encodeProperties({
      contentType: "application/json",
      headers: { "x-fibrpc-deadline": 1700000000000 },
      correlationId: "id",
      replyTo: "amq.rabbitmq.reply-to",
      expiration: "500",
    });
    expect(props.readUInt16BE(0)).toBe((1 << 15) | (1 << 13) | (1 << 10) | (1 << 9) | (1 << 8));
    const table = encodeTable({ a: 1, b: "x" });
    expect(table.readUInt32BE(0)).toBe(table.length - 4);
    expect(table.subarray(4).toString("latin1")).toContain("\u0001ab\u0001"); // 1 as a signed byte, as amqplib encodes it
    expect(() => encodeTable({ bad: 1.5 })).toThrow(RangeError);
  });

  describe("writes the same bytes as amqplib's own encoder", () => {
    const cases: { name: string; properties: PublishProperties; body: Buffer; mandatory?: boolean }[] = [
      { name: "no properties", properties: {}, body: Buffer.from("30") },
      { name: "content type", properties: { contentType: "application/json" }, body: Buffer.from('{"n":30}') },
      { name: "correlation id", properties: { correlationId: "9d3c.1a" }, body: Buffer.from("832040") },
      {
        name: "reply to",
        properties: { replyTo: "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMjM0NTY3OAAAc6wAAAAAZgd7ow==" },
        body: Buffer.from("30"),
      },
      { name: "expiration", properties: { expiration: "29999" }, body: Buffer.from("30") },
      { name: "type", properties: { type: "error" }, body: Buffer.from("N_TOO_LARGE: n must be at most 1000000") },
      { name: "timestamp (seconds)", properties: { timestamp: 1_800_000_000 }, body: Buffer.from("30") },
      {
        name: "persistent, with a timestamp past 2^32 (both halves of the 64 bits)",
        properties: { deliveryMode: 2, timestamp: 2 ** 33 + 5 },
        body: Buffer.from("30"),
      },
      {
        name: "headers: every integer size and a string",
        properties: { headers: { b: 1, s: -300, i: 70_000, l: 1_800_000_000_000, neg: -5_000_000_000, str: "wörd" } },
        body: Buffer.from("1"),
      },
      {
        name: "every property at once, mandatory",
        properties: {
          contentType: "text/plain",
          headers: { "x-fibrpc-deadline": 1_800_000_000_000, "x-fibrpc-attempts": 2 },
          correlationId: "c",
          replyTo: "r",
          expiration: "1",
          timestamp: 1_800_000_000,
          type: "error",
        },
        body: Buffer.from("7"),
        mandatory: true,
      },
      {
        name: "UTF-8 in short strings",
        properties: { correlationId: "é".repeat(127), replyTo: "файл" },
        body: Buffer.from("1"),
      },
      { name: "empty body", properties: { type: "error" }, body: Buffer.alloc(0) },
      { name: "a body of several frames", properties: { correlationId: "big" }, body: Buffer.alloc(20_000, 0x37) },
      { name: "a body of exactly one frame", properties: {}, body: Buffer.alloc(4096 - 8, 0x31) },
    ];
    for (const { name, properties, body, mandatory = false } of cases) {
      test(name, async () => {
        const { wire, written } = fakeWire(4096);
        wire.publish("some-queue", body, properties, mandatory);
        await Promise.resolve();
        expect(Buffer.from(written[0]!).equals(amqplibBytes(7, 4096, "some-queue", body, properties, mandatory))).toBe(
          true,
        );
      });
    }
  });

  test("each publish has its own routing key, however they alternate", async () => {
    const { wire, written } = fakeWire(4096);
    const keys = ["rpc_queue", "amq.rabbitmq.reply-to.a", "rpc_queue", "ключ"];
    for (const key of keys) wire.publish(key, Buffer.from("1"), { correlationId: key });
    await Promise.resolve();
    const expected = keys.map((key) => amqplibBytes(7, 4096, key, Buffer.from("1"), { correlationId: key }, false));
    expect(Buffer.from(written[0]!).equals(Buffer.concat(expected))).toBe(true);
  });

  test("a short string over 255 bytes is refused before anything is written", async () => {
    const { wire, written } = fakeWire(4096);
    expect(() => wire.publish("q", Buffer.from("1"), { correlationId: "é".repeat(128) })).toThrow(RangeError);
    expect(() => wire.publish("q", Buffer.from("1"), { headers: { ["k".repeat(256)]: 1 } })).toThrow(RangeError);
    await Promise.resolve();
    expect(written).toHaveLength(0);
  });

  test("a full socket is respected: nothing more is written until it drains, then all of it, in order", async () => {
    const { wire, written, socket } = fakeWire(4096, true);
    wire.ack({ fields: { deliveryTag: 1 } } as never);
    await Promise.resolve();
    expect(written).toHaveLength(1); // written, and the socket says it is full
    wire.ack({ fields: { deliveryTag: 2 } } as never);
    wire.publish("q", Buffer.from("5"), {});
    wire.ack({ fields: { deliveryTag: 3 } } as never);
    await Promise.resolve();
    await Promise.resolve();
    expect(written).toHaveLength(1); // held
    socket.drain();
    expect(written).toHaveLength(2);
    const held = frames(written[1]!);
    // The publish, then the held acks as one (every tag up to 3 acked): see "acks of a turn".
    expect(held.map((f) => f.type)).toEqual([1, 2, 3, 1]);
    expect(acksOf(written[1]!)).toEqual([{ tag: 3, multiple: true }]);
  });

  describe("acks of a turn: after its publishes, one frame with `multiple` where every tag below is acked", () => {
    const ack = (wire: { ack(m: never): void }, tag: number) => wire.ack({ fields: { deliveryTag: tag } } as never);
    const turn = async (written: Uint8Array[]) => {
      const before = written.length;
      await Promise.resolve();
      return written.slice(before).flatMap((w) => acksOf(w));
    };

    test("replies and acks interleaved: the replies first, then one ack for all", async () => {
      const { wire, written } = fakeWire();
      for (const tag of [1, 2, 3]) {
        wire.publish("reply", Buffer.from(String(tag)), {});
        ack(wire, tag);
      }
      await Promise.resolve();
      expect(frames(written[0]!).map((f) => f.type)).toEqual([1, 2, 3, 1, 2, 3, 1, 2, 3, 1]);
      expect(acksOf(written[0]!)).toEqual([{ tag: 3, multiple: true }]);
    });

    test("a tag not acked yet (a request still computing) keeps the ones above it single", async () => {
      const { wire, written } = fakeWire();
      for (const tag of [1, 3, 4]) ack(wire, tag);
      expect(await turn(written)).toEqual([
        { tag: 1, multiple: false },
        { tag: 3, multiple: false },
        { tag: 4, multiple: false },
      ]);
      ack(wire, 2);
      expect(await turn(written)).toEqual([{ tag: 2, multiple: false }]);
      for (const tag of [5, 6]) ack(wire, tag);
      expect(await turn(written)).toEqual([{ tag: 6, multiple: true }]);
    });

    test("merged up to the gap, single above it", async () => {
      const { wire, written } = fakeWire();
      for (const tag of [1, 2, 4]) ack(wire, tag);
      expect(await turn(written)).toEqual([
        { tag: 2, multiple: true },
        { tag: 4, multiple: false },
      ]);
    });

    test("ackFirst goes out in order, before the publish after it, and is never the tag of a merged ack", async () => {
      const { wire, written } = fakeWire();
      ack(wire, 1);
      wire.ackFirst({ fields: { deliveryTag: 2 } } as never);
      wire.publish("reply", Buffer.from("2"), {});
      await Promise.resolve();
      expect(frames(written[0]!).map((f) => f.type)).toEqual([1, 1, 2, 3, 1]);
      // ackFirst's, then the publish, then the turn's ack of 1 alone (2 is acked, but not by this turn).
      expect(acksOf(written[0]!)).toEqual([
        { tag: 2, multiple: false },
        { tag: 1, multiple: false },
      ]);
      for (const tag of [3, 4]) ack(wire, tag);
      expect(await turn(written)).toEqual([{ tag: 4, multiple: true }]);
    });
  });

  test("properties that do not fit in one frame are refused, with nothing written", async () => {
    const { wire, written } = fakeWire(4096);
    expect(() => wire.publish("q", Buffer.from("1"), { headers: { big: "x".repeat(5000) } })).toThrow(RangeError);
    await Promise.resolve();
    expect(written).toHaveLength(0);
  });

  test("falls back (undefined) when amqplib's internals are not there", () => {
    expect(openWire({} as never, {} as never)).toBeUndefined();
  });
});
