/**
 * A minimal AMQP 0-9-1 publisher on a raw TCP socket, for tests that send what amqplib cannot:
 * short strings of any bytes (invalid UTF-8, exactly 255 bytes), header tables with every field
 * type, any key bytes and nesting as deep as one frame holds.
 *
 * § references are to the AMQP 0-9-1 specification (amqp0-9-1.pdf, 2008-11) and its XML (class
 * and method ids); field-table type tags are RabbitMQ's (its "AMQP 0-9-1 errata" page), which
 * every broker and client in use follows instead of the spec's own table.
 *
 * Scope: connect (PLAIN), one channel in confirm mode, basic.publish to the default exchange, and
 * noticing the broker closing the connection or the channel (with its reply text). Nothing else:
 * no consumers, no heartbeats (tuned to 0), no flow control beyond the socket's.
 *
 * What fibrpc's own frame writer can encode is encoded by it (src/rpc/wire.ts: frames,
 * basic.publish, the properties fibrpc sends, short strings, tables of strings and integers);
 * the encoder here covers only what it cannot: short strings of any bytes, the other properties,
 * and field tables with explicit types, repeated keys, raw bytes and nesting.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import * as wire from "../src/rpc/wire.ts";
import { BROKER_PORT } from "./helpers.ts";

const { FRAME_END, FRAME_METHOD, BASIC } = wire;
// §4.2.3: the heartbeat frame's type (the frame writer sends none).
const FRAME_HEARTBEAT = 8;

// Class and method ids (XML: connection 10, channel 20, basic 60, confirm 85).
const CONNECTION = 10;
const CHANNEL = 20;
const CONFIRM = 85;
const M = {
  connectionStart: [CONNECTION, 10],
  connectionStartOk: [CONNECTION, 11],
  connectionTune: [CONNECTION, 30],
  connectionTuneOk: [CONNECTION, 31],
  connectionOpen: [CONNECTION, 40],
  connectionOpenOk: [CONNECTION, 41],
  connectionClose: [CONNECTION, 50],
  connectionCloseOk: [CONNECTION, 51],
  channelOpen: [CHANNEL, 10],
  channelOpenOk: [CHANNEL, 11],
  channelClose: [CHANNEL, 40],
  channelCloseOk: [CHANNEL, 41],
  basicAck: [BASIC, 80],
  basicNack: [BASIC, 120],
  confirmSelect: [CONFIRM, 10],
  confirmSelectOk: [CONFIRM, 11],
} as const;
type MethodId = readonly [number, number];

/** A short string (§4.2.5.3): text (sent as UTF-8) or raw bytes, at most 255 bytes either way. */
export type ShortStr = string | Uint8Array;

/**
 * A field value with its type tag (RabbitMQ errata): t bool, b/B int8/uint8, s/u int16/uint16,
 * I/i int32/uint32, l int64, f/d float/double, D decimal, S long string, x byte array,
 * A array, F table, T timestamp (uint64), V void. `raw` is pre-encoded bytes: a tag and its value.
 */
export type FieldValue =
  | { t: "t"; v: boolean }
  | { t: "b" | "B" | "s" | "u" | "I" | "i" | "f" | "d"; v: number }
  | { t: "l" | "T"; v: bigint }
  | { t: "D"; scale: number; v: number }
  | { t: "S" | "x"; v: ShortStr }
  | { t: "A"; v: FieldValue[] }
  | { t: "F"; v: FieldTable }
  | { t: "V" }
  | { t: "raw"; bytes: Uint8Array };
/** A field table (§4.2.5.5) as ordered entries: keys may repeat, and be any bytes. */
export type FieldTable = ReadonlyArray<readonly [ShortStr, FieldValue]>;

/** Constructors for field values: `F.table([["x-key", F.i64(5n)]])`. */
export const F = {
  bool: (v: boolean): FieldValue => ({ t: "t", v }),
  i8: (v: number): FieldValue => ({ t: "b", v }),
  u8: (v: number): FieldValue => ({ t: "B", v }),
  i16: (v: number): FieldValue => ({ t: "s", v }),
  u16: (v: number): FieldValue => ({ t: "u", v }),
  i32: (v: number): FieldValue => ({ t: "I", v }),
  u32: (v: number): FieldValue => ({ t: "i", v }),
  i64: (v: bigint | number): FieldValue => ({ t: "l", v: BigInt(v) }),
  f32: (v: number): FieldValue => ({ t: "f", v }),
  f64: (v: number): FieldValue => ({ t: "d", v }),
  /** value × 10^-scale; value is a uint32 on the wire (RabbitMQ reads it as signed). */
  decimal: (scale: number, v: number): FieldValue => ({ t: "D", scale, v }),
  str: (v: ShortStr): FieldValue => ({ t: "S", v }),
  bytes: (v: Uint8Array): FieldValue => ({ t: "x", v }),
  array: (v: FieldValue[]): FieldValue => ({ t: "A", v }),
  table: (v: FieldTable): FieldValue => ({ t: "F", v }),
  timestamp: (v: bigint): FieldValue => ({ t: "T", v }),
  void: (): FieldValue => ({ t: "V" }),
  raw: (bytes: Uint8Array): FieldValue => ({ t: "raw", bytes }),
};

/** basic's content properties (§4.2.6.1; flag bits from the XML, bit 15 first). */
export interface Properties {
  contentType?: ShortStr;
  contentEncoding?: ShortStr;
  /** A table, or a complete pre-encoded one (4-byte length included), sent as is. */
  headers?: FieldTable | Uint8Array;
  deliveryMode?: number;
  priority?: number;
  correlationId?: ShortStr;
  replyTo?: ShortStr;
  expiration?: ShortStr;
  messageId?: ShortStr;
  timestamp?: bigint;
  type?: ShortStr;
  userId?: ShortStr;
  appId?: ShortStr;
  clusterId?: ShortStr;
}

const utf8 = new TextEncoder();
const bytesOf = (s: ShortStr): Uint8Array => (typeof s === "string" ? utf8.encode(s) : s);

/** A growable big-endian byte buffer (§4.2.5.1: integers are in network byte order). */
class Writer {
  private buf = new Uint8Array(256);
  private view = new DataView(this.buf.buffer);
  length = 0;

  /** Reserves n bytes, returns their offset. Call it before reading buf or view: it may replace them. */
  private room(n: number): number {
    if (this.length + n > this.buf.length) {
      const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
      bigger.set(this.buf.subarray(0, this.length));
      this.buf = bigger;
      this.view = new DataView(bigger.buffer);
    }
    const at = this.length;
    this.length += n;
    return at;
  }
  private put(size: number, write: (view: DataView, at: number) => void): this {
    const at = this.room(size);
    write(this.view, at);
    return this;
  }
  u8 = (v: number) => this.put(1, (d, at) => d.setUint8(at, v));
  i8 = (v: number) => this.put(1, (d, at) => d.setInt8(at, v));
  u16 = (v: number) => this.put(2, (d, at) => d.setUint16(at, v));
  i16 = (v: number) => this.put(2, (d, at) => d.setInt16(at, v));
  u32 = (v: number) => this.put(4, (d, at) => d.setUint32(at, v));
  i32 = (v: number) => this.put(4, (d, at) => d.setInt32(at, v));
  u64 = (v: bigint) => this.put(8, (d, at) => d.setBigUint64(at, v));
  i64 = (v: bigint) => this.put(8, (d, at) => d.setBigInt64(at, v));
  f32 = (v: number) => this.put(4, (d, at) => d.setFloat32(at, v));
  f64 = (v: number) => this.put(8, (d, at) => d.setFloat64(at, v));
  bytes(b: Uint8Array): this {
    const at = this.room(b.length);
    this.buf.set(b, at);
    return this;
  }
  /** §4.2.5.3: one length octet, then the bytes. */
  shortstr(s: ShortStr): this {
    if (typeof s === "string") return this.bytes(wire.shortString(s));
    if (s.length > 255) throw new RangeError(`a short string has at most 255 bytes, got ${s.length}`);
    return this.u8(s.length).bytes(s);
  }
  /** §4.2.5.3: a 32-bit length, then the bytes. */
  longstr(s: ShortStr): this {
    const b = bytesOf(s);
    return this.u32(b.length).bytes(b);
  }
  /** Writes a 32-bit length, then whatever `body` writes, and fills in the length. */
  sized(body: () => void): this {
    const at = this.room(4);
    body();
    this.view.setUint32(at, this.length - at - 4);
    return this;
  }
  result(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

function writeValue(w: Writer, value: FieldValue): void {
  if (value.t === "raw") {
    w.bytes(value.bytes);
    return;
  }
  w.u8(value.t.charCodeAt(0));
  switch (value.t) {
    case "t":
      w.u8(value.v ? 1 : 0);
      break;
    case "b":
      w.i8(value.v);
      break;
    case "B":
      w.u8(value.v);
      break;
    case "s":
      w.i16(value.v);
      break;
    case "u":
      w.u16(value.v);
      break;
    case "I":
      w.i32(value.v);
      break;
    case "i":
      w.u32(value.v);
      break;
    case "l":
      w.i64(value.v);
      break;
    case "T":
      w.u64(value.v);
      break;
    case "f":
      w.f32(value.v);
      break;
    case "d":
      w.f64(value.v);
      break;
    case "D":
      w.u8(value.scale).u32(value.v >>> 0);
      break;
    case "S":
    case "x":
      w.longstr(value.v);
      break;
    case "A":
      w.sized(() => {
        for (const item of value.v) writeValue(w, item);
      });
      break;
    case "F":
      writeTable(w, value.v);
      break;
    case "V":
      break;
  }
}

function writeTable(w: Writer, table: FieldTable): void {
  w.sized(() => {
    for (const [key, value] of table) {
      w.shortstr(key);
      writeValue(w, value);
    }
  });
}

/**
 * A pre-encoded table nested `depth` tables deep: the outer table holds one entry `key` → a
 * table holding `key` → … down to an empty table (depth 1 is the empty table). Built without
 * recursion, in one buffer: depth × (6 + key bytes) + 4 bytes - 6 bytes per level with the
 * default empty key.
 */
export function nestedTable(depth: number, key: ShortStr = ""): Uint8Array {
  const k = bytesOf(key);
  if (k.length > 255) throw new RangeError("key over 255 bytes");
  const unit = 4 + 1 + k.length + 1; // length of this table, key, tag 'F'
  const total = (depth - 1) * unit + 4;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  for (let level = 0, at = 0; level < depth; level++, at += unit) {
    view.setUint32(at, total - at - 4);
    if (level === depth - 1) break; // the innermost table is empty
    out[at + 4] = k.length;
    out.set(k, at + 5);
    out[at + 5 + k.length] = 0x46; // 'F'
  }
  return out;
}

/**
 * A field value, tag included, of arrays nested `depth` deep ([[…[]…]], 5 bytes per level), to
 * embed with `F.raw`. Built without recursion, like nestedTable.
 */
export function nestedArray(depth: number): Uint8Array {
  const out = new Uint8Array(depth * 5);
  const view = new DataView(out.buffer);
  for (let at = 0; at < out.length; at += 5) {
    out[at] = 0x41; // 'A'
    view.setUint32(at + 1, out.length - at - 5);
  }
  return out;
}

const PROPERTY_FLAGS: ReadonlyArray<readonly [keyof Properties, number]> = [
  ["contentType", 1 << 15],
  ["contentEncoding", 1 << 14],
  ["headers", 1 << 13],
  ["deliveryMode", 1 << 12],
  ["priority", 1 << 11],
  ["correlationId", 1 << 10],
  ["replyTo", 1 << 9],
  ["expiration", 1 << 8],
  ["messageId", 1 << 7],
  ["timestamp", 1 << 6],
  ["type", 1 << 5],
  ["userId", 1 << 4],
  ["appId", 1 << 3],
  ["clusterId", 1 << 2],
];

/** The properties the frame writer encodes itself (wire.ts), as text; headers are typed here. */
const WIRE_PROPERTIES = new Set<string>(wire.PROPERTY_ORDER.map(([name]) => name).filter((name) => name !== "headers"));

/** §4.2.6.1: the property flags (one 16-bit word: 14 properties, no continuation) and list. */
function encodeProperties(p: Properties): Uint8Array {
  const entries = Object.entries(p).filter(([, value]) => value !== undefined);
  if (entries.every(([name, value]) => WIRE_PROPERTIES.has(name) && typeof value === "string")) {
    return wire.encodeProperties(p as Parameters<typeof wire.encodeProperties>[0]);
  }
  let flags = 0;
  const list = new Writer();
  for (const [name, flag] of PROPERTY_FLAGS) {
    const value = p[name];
    if (value === undefined) continue;
    flags |= flag;
    if (name === "headers") {
      if (value instanceof Uint8Array) list.bytes(value);
      else writeTable(list, value as FieldTable);
    } else if (name === "deliveryMode" || name === "priority") list.u8(value as number);
    else if (name === "timestamp") list.u64(value as bigint);
    else list.shortstr(value as ShortStr);
  }
  return new Writer().u16(flags).bytes(list.result()).result();
}

/** How the broker ended this client's connection or channel. */
export interface CloseReason {
  scope: "connection" | "channel" | "socket";
  /** The reply code of Connection.Close / Channel.Close (XML constants), 0 for a dropped socket. */
  code: number;
  text: string;
  /** The method the broker was handling when it closed ([0, 0] when none). */
  classId: number;
  methodId: number;
}
const describe = (r: CloseReason) =>
  `the broker closed the ${r.scope} (${r.code} ${r.text}${r.classId ? `, on method ${r.classId}.${r.methodId}` : ""})`;

export class BrokerClosed extends Error {
  constructor(readonly reason: CloseReason) {
    super(describe(reason));
  }
}

export interface ConnectOptions {
  host?: string;
  port?: number;
  user?: string;
  password?: string;
  vhost?: string;
  /** Gives up on the handshake after this long. */
  timeoutMs?: number;
  /** Asks for smaller frames than the broker's maximum (at least frame-min-size, 4096), e.g. to split bodies. */
  frameMax?: number;
}

interface Waiter {
  method: MethodId;
  resolve(args: Uint8Array): void;
  reject(err: Error): void;
}

/** One connection with one channel (number 1) in publisher-confirm mode. */
export class RawAmqp {
  /** Largest frame the broker accepts (Connection.Tune), header and frame-end included. */
  frameMax = 4096;
  /** Set once the broker closed the connection or channel, or the socket dropped. */
  closeReason: CloseReason | undefined;
  /** Set once the connection is gone (closed by the broker, or the socket dropped). */
  private gone: CloseReason | undefined;
  /** Resolves with the reason when the broker closes the connection or the channel. */
  readonly closed: Promise<CloseReason>;
  private onClosed!: (r: CloseReason) => void;
  private inbox: Buffer = Buffer.alloc(0);
  private waiters: Waiter[] = [];
  private confirms = new Map<number, { resolve(): void; reject(err: Error): void }>();
  private nextSeq = 1;
  private closing = false;

  private constructor(private readonly socket: Socket) {
    this.closed = new Promise((resolve) => (this.onClosed = resolve));
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => this.receive(chunk));
    socket.on("error", () => {}); // reported by "close"
    socket.on("close", () => this.ended({ scope: "socket", code: 0, text: "socket closed", classId: 0, methodId: 0 }));
  }

  /** Opens a connection (§2.2.4 negotiation) and channel 1 in confirm mode. */
  static async connect(options: ConnectOptions = {}): Promise<RawAmqp> {
    const {
      host = "127.0.0.1",
      port = BROKER_PORT,
      user = "guest",
      password = "guest",
      vhost = "/",
      timeoutMs = 5000,
      frameMax,
    } = options;
    const socket = tcpConnect(port, host);
    const client = new RawAmqp(socket);
    const timer = setTimeout(() => socket.destroy(new Error("handshake timed out")), timeoutMs);
    try {
      await new Promise<void>((resolve, reject) => {
        socket.once("connect", resolve);
        socket.once("error", reject);
      });
      const start = client.expect(M.connectionStart);
      socket.write(Buffer.from("AMQP\x00\x00\x09\x01", "latin1")); // §4.2.2 protocol header
      await start;
      const tune = client.expect(M.connectionTune);
      client.send(
        0,
        M.connectionStartOk,
        new Writer()
          .bytes(wire.encodeTable({ product: "fibrpc test raw-amqp", connection_name: "fibrpc raw-amqp test" }))
          .shortstr("PLAIN")
          .longstr(`\0${user}\0${password}`) // RFC 4616 PLAIN: authzid NUL authcid NUL passwd
          .shortstr("en_US")
          .result(),
      );
      const args = await tune;
      const view = new DataView(args.buffer, args.byteOffset, args.byteLength);
      const channelMax = view.getUint16(0);
      const brokerMax = view.getUint32(2) || 0xffffffff; // 0: no limit
      client.frameMax = Math.min(brokerMax, frameMax ?? brokerMax);
      // Tune-Ok: channel-max, frame-max, heartbeat 0 (none: this client never idles long).
      client.send(0, M.connectionTuneOk, new Writer().u16(channelMax).u32(client.frameMax).u16(0).result());
      const open = client.expect(M.connectionOpenOk);
      client.send(0, M.connectionOpen, new Writer().shortstr(vhost).shortstr("").u8(0).result());
      await open;
      const channelOpen = client.expect(M.channelOpenOk);
      client.send(1, M.channelOpen, new Writer().shortstr("").result());
      await channelOpen;
      const select = client.expect(M.confirmSelectOk);
      client.send(1, M.confirmSelect, new Writer().u8(0).result()); // no-wait: false
      await select;
      return client;
    } catch (err) {
      socket.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * Publishes on channel 1 to the default exchange (§4.2.6: method frame, one content header
   * frame, body frames of at most frameMax - 8 bytes, as wire.ts encodes them). Resolves when the
   * broker confirms the message (it was routed, or dropped as unroutable), rejects with
   * BrokerClosed if the broker closes instead.
   */
  publish(
    routingKey: ShortStr,
    body: Uint8Array,
    properties: Properties = {},
    options: { mandatory?: boolean } = {},
  ): Promise<void> {
    if (this.closeReason) return Promise.reject(new BrokerClosed(this.closeReason));
    const key = bytesOf(routingKey);
    if (key.length > 255) throw new RangeError(`a short string has at most 255 bytes, got ${key.length}`);
    const frames = wire.encodePublish(
      1,
      this.frameMax,
      key,
      body,
      encodeProperties(properties),
      options.mandatory ?? false,
    );
    const seq = this.nextSeq++;
    const confirmed = new Promise<void>((resolve, reject) => this.confirms.set(seq, { resolve, reject }));
    this.socket.write(frames);
    return confirmed;
  }

  /** Closes the connection (connection.close / close-ok, §2.2.4), waiting at most `ms` for the broker. */
  async close(ms = 2000): Promise<void> {
    if (!this.gone && !this.closing) {
      this.closing = true;
      const ok = this.expect(M.connectionCloseOk).catch(() => {});
      this.send(0, M.connectionClose, new Writer().u16(200).shortstr("bye").u16(0).u16(0).result());
      await Promise.race([ok, Bun.sleep(ms)]);
    }
    this.socket.destroy();
  }

  private expect(method: MethodId): Promise<Uint8Array> {
    if (this.gone) return Promise.reject(new BrokerClosed(this.gone));
    return new Promise((resolve, reject) => this.waiters.push({ method, resolve, reject }));
  }

  private send(channel: number, method: MethodId, args: Uint8Array): void {
    if (!this.socket.destroyed) this.socket.write(wire.encodeFrame(FRAME_METHOD, channel, methodPayload(method, args)));
  }

  /** §4.2.3: type, channel, size, payload, frame-end. */
  private receive(chunk: Buffer): void {
    this.inbox = this.inbox.length === 0 ? chunk : Buffer.concat([this.inbox, chunk]);
    while (this.inbox.length >= 7) {
      const size = this.inbox.readUInt32BE(3);
      if (this.inbox.length < size + 8) return;
      const type = this.inbox[0]!;
      const channel = this.inbox.readUInt16BE(1);
      const payload = this.inbox.subarray(7, 7 + size);
      if (this.inbox[7 + size] !== FRAME_END) {
        this.socket.destroy();
        return;
      }
      this.inbox = this.inbox.subarray(8 + size);
      if (type === FRAME_METHOD) this.onMethod(channel, payload);
      else if (type !== FRAME_HEARTBEAT) {
        // No content is ever sent to this client (no consumers, no mandatory returns handled).
      }
    }
  }

  private onMethod(channel: number, payload: Buffer): void {
    const classId = payload.readUInt16BE(0);
    const methodId = payload.readUInt16BE(2);
    const args = payload.subarray(4);
    const is = (m: MethodId) => classId === m[0] && methodId === m[1];
    if (is(M.connectionClose) || is(M.channelClose)) {
      // reply-code, reply-text, class-id, method-id
      const textLength = args[2]!;
      const reason: CloseReason = {
        scope: is(M.connectionClose) ? "connection" : "channel",
        code: args.readUInt16BE(0),
        text: args.subarray(3, 3 + textLength).toString("utf8"),
        classId: args.readUInt16BE(3 + textLength),
        methodId: args.readUInt16BE(5 + textLength),
      };
      this.send(channel, is(M.connectionClose) ? M.connectionCloseOk : M.channelCloseOk, new Uint8Array(0));
      this.ended(reason);
      if (reason.scope === "connection") this.socket.end();
      return;
    }
    if (is(M.basicAck) || is(M.basicNack)) {
      // delivery-tag, then bits: multiple (and requeue for nack)
      const tag = Number(args.readBigUInt64BE(0));
      const multiple = (args[8]! & 1) === 1;
      for (const [seq, confirm] of this.confirms) {
        if (seq > tag || (!multiple && seq !== tag)) continue;
        this.confirms.delete(seq);
        if (is(M.basicAck)) confirm.resolve();
        else confirm.reject(new Error(`the broker nacked message ${seq}`));
      }
      return;
    }
    const index = this.waiters.findIndex((w) => w.method[0] === classId && w.method[1] === methodId);
    if (index >= 0) this.waiters.splice(index, 1)[0]!.resolve(args);
  }

  /** The first of: the broker's Connection.Close or Channel.Close, or the socket ending. */
  private ended(reason: CloseReason): void {
    if (reason.scope !== "channel") this.gone ??= reason;
    const error = new BrokerClosed(reason);
    for (const w of this.waiters.splice(0)) w.reject(error);
    for (const c of this.confirms.values()) c.reject(error);
    this.confirms.clear();
    if (this.closeReason) return;
    this.closeReason = reason;
    this.onClosed(reason);
  }
}

function methodPayload(method: MethodId, args: Uint8Array): Uint8Array {
  return new Writer().u16(method[0]).u16(method[1]).bytes(args).result();
}
