/**
 * Every use of amqplib's private internals, in one place, and only on the amqplib version they
 * were read from.
 *
 * fibrpc reaches past amqplib's public API for three things:
 * - the frame writer (wire.ts) writes to the connection's socket (`connection.stream`), on the
 *   channel's number (`channel.ch`), within the negotiated frame size (`connection.frameMax`):
 *   socketOf();
 * - the field-table guard wraps the decoder amqplib's frame parser uses (lib/codec.js
 *   decodeFields), so that headers it cannot decode do not close the connection (see guardFieldTables);
 * - the handshake wrapper wraps Connection.prototype.open (lib/connection.js), so that the
 *   broker's reason for refusing connection.open reaches the error (see keepHandshakeReasons).
 *
 * All three were written against amqplib VERIFIED_AMQPLIB, the version package.json pins. The
 * version in use is read from amqplib's own package.json (bundled at build time into the compiled
 * binary); on any other, none of the three is installed. That falls back loudly: the frame writer
 * does not attach, which each channel says in one log line naming the two versions (outlet.ts
 * OUTLET_FALLBACK_MESSAGE) and serve counts (fibrpc_outlet_fallbacks_total); FIELD_TABLES_GUARDED
 * and HANDSHAKE_REASONS are false. test/unit/amqplib-internals.test.ts fails on a version bump,
 * so that whoever bumps it reads these internals again.
 *
 * amqplib's lib/ files are imported by path: its package exports hide them, and these are the
 * very files amqplib loads. This module must be evaluated before amqplib is, because defs.js
 * copies codec.decodeFields once, when it loads: the entry points (cli.ts, serve/worker.ts) import
 * it first, and it imports codec.js alone, guards it, and only then loads connection.js (and with
 * it defs.js).
 */
import type { Channel, ChannelModel } from "amqplib";
import amqplibPackage from "../../node_modules/amqplib/package.json" with { type: "json" };
// @ts-expect-error -- amqplib's package exports hide lib/ (see above).
import codec from "../../node_modules/amqplib/lib/codec.js";

/** The amqplib version whose internals this module was written against (package.json pins it). */
export const VERIFIED_AMQPLIB = "2.3.1";

/** The amqplib in use. */
export const AMQPLIB_VERSION: string = amqplibPackage.version;

/** Why amqplib's internals are left alone for `installed`, or undefined if they are not. */
export function versionProblem(installed: string, verified: string = VERIFIED_AMQPLIB): string | undefined {
  if (installed === verified) return undefined;
  return `amqplib ${installed} is not ${verified}, the version whose internals fibrpc uses`;
}

/** Why amqplib's internals are left alone in this build (a log line says it), or undefined. */
export const INTERNALS_PROBLEM: string | undefined = versionProblem(AMQPLIB_VERSION);

// ---------------------------------------------------------------------------------------------
// The field-table guard.
//
// amqplib decodes AMQP field tables recursively, while RabbitMQ accepts tables (and arrays)
// nested far deeper than a JS stack holds: 20,000 levels fit in one frame, and amqplib's decoder
// overflows near 10,000 in a Bun Worker. A delivery whose headers overflow it would close the
// consumer's connection, and the broker would redeliver it forever, to every worker. The same
// holds for a field type RabbitMQ accepts and amqplib's decoder does not ('L').
//
// So the decoder is wrapped: a table it cannot decode comes back empty, marked UNREADABLE_TABLE,
// the rest of the frame decodes as usual (the table's length is read by the caller), and `decide`
// (delivery.ts) refuses the request like any other bad input. test/integration/
// hostile-requests.test.ts sends such tables to the compiled binary.

/** Marks a field table amqplib could not decode (nested too deeply, or of an unknown field type). */
export const UNREADABLE_TABLE = Symbol.for("fibrpc.unreadable-table");

function guardFieldTables(): boolean {
  const amqplibCodec = codec as { decodeFields?: (slice: Buffer) => Record<string, unknown>; guarded?: true };
  const decodeFields = amqplibCodec.decodeFields;
  if (typeof decodeFields !== "function") return false;
  if (amqplibCodec.guarded) return true;
  amqplibCodec.decodeFields = (slice) => {
    try {
      return decodeFields(slice);
    } catch {
      // The stack overflowed deep inside (here, at the top, there is room again), or a field type
      // the broker passes on and amqplib does not know ('L', an unsigned 64-bit integer RabbitMQ
      // accepts): either way the table cannot be read, and the delivery must still get through.
      const unreadable: Record<string, unknown> = {};
      Object.defineProperty(unreadable, UNREADABLE_TABLE, { value: true });
      return unreadable;
    }
  };
  amqplibCodec.guarded = true;
  return true;
}

/** Whether tables amqplib cannot decode come back marked UNREADABLE_TABLE (see above). */
export const FIELD_TABLES_GUARDED: boolean = INTERNALS_PROBLEM === undefined && guardFieldTables();

// ---------------------------------------------------------------------------------------------
// The broker's reason for refusing a connection at connection.open, which amqplib drops.
//
// RabbitMQ checks the vhost (its existence, the user's access, its connection limit) and the
// user's connection limit when the client sends connection.open, and refuses with
// connection.close (530 NOT_ALLOWED, "access to vhost 'v' refused for user 'u'"). amqplib 2.3.1
// expects connection.open-ok there and fails with "Expected ConnectionOpenOk; got
// <ConnectionClose channel:0>", without the close's reply code and text (lib/connection.js,
// open(): `expect(defs.ConnectionOpenOk, …)`). A close right after start-ok (a refused login)
// does keep them: "Handshake terminated by server: 403 (ACCESS-REFUSED) with message …".
//
// So Connection.prototype.open is wrapped: while the handshake runs, the frames amqplib reads one
// by one (`step`, used by the handshake only) pass by here, and a connection.close among them
// turns the failure into amqplib's own wording for the other case, with `code` set as amqplib sets
// it on a close after the handshake. Nothing else changes. test/unit/broker-errors.test.ts checks
// that the reason gets through.

interface Frame {
  id?: number;
  fields?: { replyCode?: number; replyText?: string };
}
type StepCallback = (err: Error | null, frame: Frame | null) => void;
type OpenCallback = (err: Error | null, ok?: unknown) => void;
interface ConnectionLike {
  open(fields: unknown, callback?: OpenCallback): unknown;
  step(callback: StepCallback): void;
}

const WRAPPED = Symbol.for("fibrpc.handshake-reasons");

function keepHandshakeReasons(): boolean {
  // Loaded here, after the guard: connection.js loads defs.js (see the top of this module).
  const connectionModule = require("../../node_modules/amqplib/lib/connection.js");
  const defs = require("../../node_modules/amqplib/lib/defs.js");
  const format = require("../../node_modules/amqplib/lib/format.js");
  type Prototype = ConnectionLike & { [WRAPPED]?: true };
  const proto = (connectionModule as { Connection?: { prototype: Prototype } }).Connection?.prototype;
  const CONNECTION_CLOSE = (defs as { ConnectionClose?: number }).ConnectionClose;
  const closeMessage = (format as { closeMessage?: (frame: Frame) => string }).closeMessage;
  if (!proto || typeof proto.open !== "function" || typeof proto.step !== "function") return false;
  if (typeof CONNECTION_CLOSE !== "number" || typeof closeMessage !== "function") return false;
  if (proto[WRAPPED]) return true;
  const open = proto.open;
  proto.open = function (this: ConnectionLike, fields: unknown, callback?: OpenCallback) {
    let close: Frame | undefined;
    // An own property for the handshake's duration, in front of the prototype's step.
    const step = proto.step;
    this.step = (k) =>
      step.call(this, (err, frame) => {
        if (frame?.id === CONNECTION_CLOSE) close = frame;
        k(err, frame);
      });
    return open.call(this, fields, (err, ok) => {
      delete (this as Partial<ConnectionLike>).step;
      if (err && close && /Expected ConnectionOpenOk/.test(err.message)) {
        const reason = new Error(`Handshake terminated by server: ${closeMessage(close)}`);
        err = Object.assign(reason, { code: close.fields?.replyCode });
      }
      callback?.(err, ok);
    });
  };
  proto[WRAPPED] = true;
  return true;
}

/** Whether the broker's reason for a refused connection.open reaches the error (see above). */
export const HANDSHAKE_REASONS: boolean = INTERNALS_PROBLEM === undefined && keepHandshakeReasons();

// ---------------------------------------------------------------------------------------------
// The socket under a channel, for the frame writer (wire.ts).

/** What the frame writer needs of a socket. */
export interface SocketLike {
  write(chunk: Uint8Array): boolean;
  once(event: "drain", listener: () => void): unknown;
  writable?: boolean;
}

/** Where a channel's frames go: the connection's socket, the channel's number, the frame size. */
export interface ChannelSocket {
  stream: SocketLike;
  channelNumber: number;
  frameMax: number;
}

/** The socket under an amqplib channel, or undefined on another amqplib (or if it cannot be found). */
export function socketOf(model: ChannelModel, channel: Channel): ChannelSocket | undefined {
  if (INTERNALS_PROBLEM !== undefined) return undefined;
  const connection = (model as unknown as { connection?: { stream?: SocketLike; frameMax?: number } }).connection;
  const stream = connection?.stream;
  const channelNumber = (channel as unknown as { ch?: unknown }).ch;
  const frameMax = connection?.frameMax;
  if (!stream || typeof stream.write !== "function" || typeof stream.once !== "function") return undefined;
  if (typeof channelNumber !== "number" || typeof frameMax !== "number" || frameMax < 4096) return undefined;
  return { stream, channelNumber, frameMax };
}
