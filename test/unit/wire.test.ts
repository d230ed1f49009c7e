import { describe, expect, test } from "bun:test";
import { encodeProperties, encodeTable, openWire } from "../../src/rpc/wire.ts";

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

function fakeWire(frameMax = 4096) {
  const written: Uint8Array[] = [];
  const listeners: (() => void)[] = [];
  const model = { connection: { stream: { write: (b: Uint8Array) => written.push(b) > 0 }, frameMax } };
  const channel = { ch: 7, once: (_: string, fn: () => void) => listeners.push(fn) };
  const wire = openWire(model as never, channel as never)!;
  return { wire, written, close: () => listeners.forEach((l) => l()) };
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
    const props = encodeProperties({ contentType: "application/json", headers: { "x-fibrpc-deadline": 1700000000000 }, correlationId: "id", replyTo: "amq.rabbitmq.reply-to", expiration: "500" });
    expect(props.readUInt16BE(0)).toBe((1 << 15) | (1 << 13) | (1 << 10) | (1 << 9) | (1 << 8));
    const table = encodeTable({ a: 1, b: "x" });
    expect(table.readUInt32BE(0)).toBe(table.length - 4);
    expect(table.subarray(4).toString("latin1")).toContain("\u0001al");
    expect(() => encodeTable({ bad: 1.5 })).toThrow(RangeError);
  });

  test("falls back (undefined) when amqplib's internals are not there", () => {
    expect(openWire({} as never, {} as never)).toBeUndefined();
  });
});
