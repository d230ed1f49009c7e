/**
 * The hot path's writes, encoded here and written straight to the connection's socket.
 *
 * Why: amqplib queues every outgoing frame in a per-channel stream, and a muxer writes them to
 * the socket one chunk per message, a setImmediate later. On loopback that costs an event-loop
 * turn and a TCP segment (and a broker-side read) per publish and per ack. Here a server's reply
 * and its ack, and all the publishes of one event-loop turn, leave in one write, at the end of
 * the turn (a microtask).
 *
 * Only basic.publish and basic.ack are encoded (AMQP 0-9-1 §4.2.3 frames, §4.2.6 content,
 * field tables as RabbitMQ reads them). Everything else — connection, channel and consumer
 * set-up, qos and consumer switches, heartbeats, closing — stays with amqplib, whose frames are
 * whole frames too: the two never interleave inside a frame, and frames of one channel keep their
 * order except while the socket is full (see `blocked`), when amqplib's frames may overtake the
 * held ones. That is harmless for acks and replies, except before channel.close: drain() waits
 * for `flushed()` first.
 *
 * The socket and the channel number come from amqplib-internals.ts, the one module that touches
 * amqplib's private fields; on another amqplib version it finds none, `openWire` returns
 * undefined and callers use amqplib's own publish and ack (outlet.ts), which serve logs and
 * counts (fibrpc_outlet_fallbacks_total). The encoding here is pure and exported: test/raw-amqp.ts
 * builds its frames with it. test/unit/wire.test.ts checks the bytes against amqplib's own
 * encoder; test/integration/outlet.test.ts that the writer attaches to the pinned amqplib. A full
 * socket buffer is respected: frames wait for 'drain'.
 */
import type { Channel, ChannelModel, ConsumeMessage } from "amqplib";
import { socketOf, type SocketLike } from "./amqplib-internals.ts";
import type { Outlet, PublishProperties } from "./outlet.ts";

/** Frame types (AMQP 0-9-1 §4.2.3) and the frame-end octet. */
export const FRAME_METHOD = 1;
export const FRAME_HEADER = 2;
export const FRAME_BODY = 3;
export const FRAME_END = 0xce;
/** The basic class's id, and the two methods encoded here. */
export const BASIC = 60;
const BASIC_PUBLISH = 40;
const BASIC_ACK = 80;

/** The frame writer for an amqplib channel, or undefined if it cannot attach (see above). */
export function openWire(model: ChannelModel, channel: Channel): Outlet | undefined {
  const socket = socketOf(model, channel);
  if (!socket) return undefined;
  const writer = new FrameWriter(socket.stream, socket.channelNumber, socket.frameMax);
  // Frames for a channel the broker has closed would close the whole connection: stop writing.
  channel.once("close", () => writer.close());
  return writer;
}

class FrameWriter implements Outlet {
  readonly kind = "wire";
  /** Bytes of this event-loop turn, written in one go by a microtask. */
  private chunks: Uint8Array[] = [];
  private scheduled = false;
  private closed = false;
  /**
   * The socket said its buffer is full (write returned false): hold what comes until it drains,
   * as amqplib's own muxer does. What can pile up meanwhile is bounded by the prefetch (a server's
   * replies and acks) or the calls in flight (a caller's requests).
   */
  private blocked = false;
  private readonly flush = () => {
    this.scheduled = false;
    // Closed: amqplib reports it, and the broker redelivers what was not acked.
    if (this.closed || this.stream.writable === false) {
      this.chunks = [];
      return;
    }
    if (this.blocked) return;
    if (this.turnAcks.length > 0) this.writeAcks();
    if (this.chunks.length === 0) return;
    const chunks = this.chunks;
    this.chunks = [];
    if (!this.stream.write(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks))) {
      this.blocked = true;
      this.stream.once("drain", this.resume);
    }
  };
  private readonly resume = () => {
    this.blocked = false;
    this.flush();
    if (!this.blocked) for (const waiter of this.waiters.splice(0)) waiter();
  };
  /** Who waits for the held frames to be written (flushed()). */
  private readonly waiters: (() => void)[] = [];
  /** This turn's acks (ack): written after everything published in the turn, merged where they can be. */
  private turnAcks: number[] = [];
  /** Every delivery tag of this channel up to this one is acked (written, or in the turn being written). */
  private ackedThrough = 0;
  /** Tags above ackedThrough acked already, waiting for a tag below them to be acked. */
  private readonly ackedAbove = new Set<number>();
  /** The routing key last published to, and its bytes. */
  private lastKey = "";
  private lastKeyBytes = Buffer.alloc(0);

  constructor(
    private readonly stream: SocketLike,
    private readonly channel: number,
    private readonly frameMax: number,
  ) {}

  close(): void {
    this.closed = true;
    this.chunks = [];
    this.turnAcks = [];
    for (const waiter of this.waiters.splice(0)) waiter();
  }

  flushed(): Promise<void> {
    // Frames of this turn go out in a microtask; after that, only a full socket holds any.
    return Promise.resolve().then(() =>
      this.blocked && !this.closed ? new Promise<void>((resolve) => this.waiters.push(resolve)) : undefined,
    );
  }

  private push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      queueMicrotask(this.flush);
    }
  }

  publish(routingKey: string, body: Uint8Array, properties: PublishProperties, mandatory = false): void {
    // A caller publishes to one queue, a server's worker replies mostly to the same few callers.
    if (routingKey !== this.lastKey) {
      this.lastKeyBytes = Buffer.from(routingKey, "utf8");
      this.lastKey = routingKey;
    }
    const encoded = encodeProperties(properties);
    this.push(encodePublish(this.channel, this.frameMax, this.lastKeyBytes, body, encoded, mandatory));
  }

  /**
   * Acks a delivery with this turn's others, after everything published in the turn (its reply
   * among them): so the broker never has the ack of a delivery before its reply. Acks whose tags,
   * with every tag below them, are all acked go as one basic.ack with `multiple` (the broker's
   * work per ack is per frame); the others one by one.
   */
  ack(msg: ConsumeMessage): void {
    this.turnAcks.push(msg.fields.deliveryTag);
    if (!this.scheduled && !this.blocked) {
      this.scheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Acks a delivery now, before what is published next (see Outlet.ackFirst). */
  ackFirst(msg: ConsumeMessage): void {
    const tag = msg.fields.deliveryTag;
    this.push(ackFrame(this.channel, tag, false));
    this.noteAcked(tag);
  }

  /** This turn's acks, as frames at the end of its chunks. */
  private writeAcks(): void {
    const tags = this.turnAcks.sort((a, b) => a - b);
    this.turnAcks = [];
    const before = this.ackedThrough;
    for (const tag of tags) this.noteAcked(tag);
    // One frame, `multiple`, for the highest tag of this turn that every tag below is acked up to.
    // The broker requires that tag to be unacked (a multiple ack of an acked tag closes the channel):
    // it is one of this turn's, not one acked first (ackFirst).
    let merged = 0;
    for (const tag of tags) if (tag <= this.ackedThrough) merged = tag;
    const mergedAny = merged > before && tags.filter((t) => t <= merged).length > 1;
    if (mergedAny) this.chunks.push(ackFrame(this.channel, merged, true));
    for (const tag of tags) if (!mergedAny || tag > merged) this.chunks.push(ackFrame(this.channel, tag, false));
  }

  private noteAcked(tag: number): void {
    if (tag <= this.ackedThrough) return;
    this.ackedAbove.add(tag);
    while (this.ackedAbove.delete(this.ackedThrough + 1)) this.ackedThrough++;
  }
}

/** basic.ack (§4.2.3 frame, basic class): `multiple` acks every unacked tag up to this one too. */
function ackFrame(channel: number, tag: number, multiple: boolean): Buffer {
  const out = Buffer.allocUnsafe(8 + 13); // 7 bytes of frame header, 13 of payload, 1 frame-end
  let o = writeFrameHead(out, 0, FRAME_METHOD, channel, 13);
  o = out.writeUInt16BE(BASIC, o);
  o = out.writeUInt16BE(BASIC_ACK, o);
  o = writeUInt64(out, o, tag);
  o = out.writeUInt8(multiple ? 1 : 0, o);
  out.writeUInt8(FRAME_END, o);
  return out;
}

/** A frame's type, channel and payload size at `offset` (§4.2.3); returns where the payload goes. */
function writeFrameHead(out: Buffer, offset: number, type: number, channel: number, size: number): number {
  let o = out.writeUInt8(type, offset);
  o = out.writeUInt16BE(channel, o);
  return out.writeUInt32BE(size, o);
}

/** One whole frame (§4.2.3): type, channel, size, payload, frame-end. */
export function encodeFrame(type: number, channel: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(payload.length + 8);
  const o = writeFrameHead(out, 0, type, channel, payload.length);
  out.set(payload, o);
  out.writeUInt8(FRAME_END, o + payload.length);
  return out;
}

/**
 * basic.publish to the default exchange as frames, in one buffer: the method frame, the content
 * header (class, weight, body size, then `properties`: flags and list, see encodeProperties) and
 * the body in frames of at most frameMax - 8 bytes (§4.2.6). `routingKey` is its bytes (at most
 * 255). Throws a RangeError if the content header does not fit in one frame.
 */
export function encodePublish(
  channel: number,
  frameMax: number,
  routingKey: Uint8Array,
  body: Uint8Array,
  properties: Uint8Array,
  mandatory: boolean,
): Buffer {
  // A content header must fit in one frame (AMQP 0-9-1 §4.2.6.1); a bigger one makes the broker
  // close the connection. amqplib's own encoder throws too: nothing is written.
  if (2 + 2 + 8 + properties.length > frameMax - 8) {
    throw new RangeError(
      `message properties of ${properties.length} bytes do not fit in one frame of ${frameMax} bytes`,
    );
  }
  const maxBody = frameMax - 8;
  const bodyFrames = body.length === 0 ? 0 : Math.ceil(body.length / maxBody);
  // method: class, method, reserved short, exchange "" (shortstr), routing key, bits
  const methodSize = 4 + 2 + 1 + 1 + routingKey.length + 1;
  const headerSize = 2 + 2 + 8 + properties.length;
  const total = 8 + methodSize + 8 + headerSize + bodyFrames * 8 + body.length;
  const out = Buffer.allocUnsafe(total);
  let o = writeFrameHead(out, 0, FRAME_METHOD, channel, methodSize);
  o = out.writeUInt16BE(BASIC, o);
  o = out.writeUInt16BE(BASIC_PUBLISH, o);
  o = out.writeUInt16BE(0, o);
  o = out.writeUInt8(0, o); // exchange: the default exchange
  o = out.writeUInt8(routingKey.length, o);
  out.set(routingKey, o);
  o += routingKey.length;
  o = out.writeUInt8(mandatory ? 1 : 0, o);
  o = out.writeUInt8(FRAME_END, o);
  o = writeFrameHead(out, o, FRAME_HEADER, channel, headerSize);
  o = out.writeUInt16BE(BASIC, o);
  o = out.writeUInt16BE(0, o);
  o = writeUInt64(out, o, body.length);
  out.set(properties, o);
  o += properties.length;
  o = out.writeUInt8(FRAME_END, o);
  for (let start = 0; start < body.length; start += maxBody) {
    const slice = body.subarray(start, Math.min(body.length, start + maxBody));
    o = writeFrameHead(out, o, FRAME_BODY, channel, slice.length);
    out.set(slice, o);
    o += slice.length;
    o = out.writeUInt8(FRAME_END, o);
  }
  return out;
}

/**
 * The properties fibrpc sends, in the protocol's order, with their flag bits (AMQP 0-9-1 basic
 * class: content-type is bit 15, headers 13, delivery-mode 12, correlation-id 10, reply-to 9, expiration 8,
 * timestamp 6, type 5).
 */
export const PROPERTY_ORDER = [
  ["contentType", 1 << 15],
  ["headers", 1 << 13],
  ["deliveryMode", 1 << 12],
  ["correlationId", 1 << 10],
  ["replyTo", 1 << 9],
  ["expiration", 1 << 8],
  ["timestamp", 1 << 6],
  ["type", 1 << 5],
] as const;

/** A short string (§4.2.5.3): one length octet, then at most 255 bytes of UTF-8. */
export function shortString(value: string): Buffer {
  const out = Buffer.allocUnsafe(shortStringSize(value));
  writeShortString(out, 0, value);
  return out;
}

/**
 * Property flags and list, in the protocol's order; only the properties fibrpc sends. Sized first,
 * then written into one buffer: a request or reply costs one allocation here, not one per
 * property, table entry and string (a request's encoding took ~3.7 µs that way, docs/benchmarks.md).
 */
export function encodeProperties(p: PublishProperties): Buffer {
  let flags = 0;
  let size = 2;
  for (const [key, flag] of PROPERTY_ORDER) {
    const value = p[key];
    if (value === undefined) continue;
    flags |= flag;
    if (key === "timestamp") size += 8;
    else if (key === "deliveryMode") size += 1;
    else size += typeof value === "string" ? shortStringSize(value) : tableSize(value as Table);
  }
  const out = Buffer.allocUnsafe(size);
  let o = out.writeUInt16BE(flags, 0);
  for (const [key] of PROPERTY_ORDER) {
    const value = p[key];
    if (value === undefined) continue;
    if (key === "timestamp") o = writeUInt64(out, o, value as number);
    else if (key === "deliveryMode") o = out.writeUInt8(value as number, o);
    else o = typeof value === "string" ? writeShortString(out, o, value) : writeTable(out, o, value as Table);
  }
  return out;
}

/**
 * A field table of integers and strings, encoded as amqplib encodes them (codec.js, so the bytes
 * are the same either way, a test checks): an integer as the smallest signed type that holds it
 * ('b' 8, 's' 16, 'I' 32, 'l' 64 bits), a string as 'S' (long string).
 */
export function encodeTable(table: Table): Buffer {
  const out = Buffer.allocUnsafe(tableSize(table));
  writeTable(out, 0, table);
  return out;
}

type Table = Record<string, string | number>;

function shortStringSize(value: string): number {
  const length = Buffer.byteLength(value, "utf8");
  if (length > 255) throw new RangeError(`AMQP short string longer than 255 bytes: ${value.slice(0, 40)}…`);
  return 1 + length;
}

function writeShortString(out: Buffer, offset: number, value: string): number {
  const length = out.write(value, offset + 1, "utf8");
  out.writeUInt8(length, offset);
  return offset + 1 + length;
}

/** A table's bytes, its size field included; throws a RangeError for what it cannot encode. */
function tableSize(table: Table): number {
  let size = 4;
  for (const name of Object.keys(table)) {
    const value = table[name]!;
    size += shortStringSize(name);
    if (typeof value !== "number") size += 5 + Buffer.byteLength(value, "utf8");
    else if (!Number.isSafeInteger(value))
      throw new RangeError(`header ${name}: only integers are encoded, got ${value}`);
    else size += integerSize(value);
  }
  return size;
}

function writeTable(out: Buffer, offset: number, table: Table): number {
  let o = offset + 4;
  for (const name of Object.keys(table)) {
    const value = table[name]!;
    o = writeShortString(out, o, name);
    if (typeof value === "number") o = writeInteger(out, o, value);
    else {
      o = out.writeUInt8(0x53, o); // 'S'
      const length = out.write(value, o + 4, "utf8");
      o = out.writeUInt32BE(length, o) + length;
    }
  }
  out.writeUInt32BE(o - offset - 4, offset);
  return o;
}

/** Its type octet and value: 'b' 8, 's' 16, 'I' 32 or 'l' 64 bits, the smallest that holds it. */
function integerSize(value: number): number {
  if (value >= -0x80 && value < 0x80) return 2;
  if (value >= -0x8000 && value < 0x8000) return 3;
  if (value >= -0x80000000 && value < 0x80000000) return 5;
  return 9;
}

function writeInteger(out: Buffer, o: number, value: number): number {
  switch (integerSize(value)) {
    case 2:
      return out.writeInt8(value, out.writeUInt8(0x62, o)); // 'b'
    case 3:
      return out.writeInt16BE(value, out.writeUInt8(0x73, o)); // 's'
    case 5:
      return out.writeInt32BE(value, out.writeUInt8(0x49, o)); // 'I'
    default:
      return out.writeBigInt64BE(BigInt(value), out.writeUInt8(0x6c, o)); // 'l'
  }
}

/**
 * A 64-bit unsigned integer (§4.2.5.4; a timestamp, a body size, a delivery tag) below 2^53, as two
 * 32-bit halves: no BigInt per frame.
 */
function writeUInt64(out: Buffer, o: number, value: number): number {
  o = out.writeUInt32BE(Math.floor(value / 2 ** 32), o);
  return out.writeUInt32BE(value >>> 0, o);
}
