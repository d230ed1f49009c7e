/**
 * The broker's reason for refusing a connection at connection.open, which amqplib drops.
 *
 * RabbitMQ checks the vhost (its existence, the user's access, its connection limit) and the
 * user's connection limit when the client sends connection.open, and refuses with
 * connection.close (530 NOT_ALLOWED, "access to vhost 'v' refused for user 'u'"). amqplib 2.3.1
 * expects connection.open-ok there and fails with "Expected ConnectionOpenOk; got
 * <ConnectionClose channel:0>", without the close's reply code and text
 * (node_modules/amqplib/lib/connection.js, open(): `expect(defs.ConnectionOpenOk, …)`). A close
 * right after start-ok (a refused login) does keep them: "Handshake terminated by server: 403
 * (ACCESS-REFUSED) with message …".
 *
 * So Connection.prototype.open is wrapped: while the handshake runs, the frames amqplib reads
 * one by one (`step`, used by the handshake only) pass by here, and a connection.close among them
 * turns the failure into amqplib's own wording for the other case, with `code` set as amqplib sets
 * it on a close after the handshake. Nothing else changes. If amqplib's internals are not what
 * this expects (another version), nothing is wrapped and `HANDSHAKE_REASONS` is false: the reason
 * is then missing from the line, which test/unit/broker-errors.test.ts would catch.
 */
// @ts-expect-error -- amqplib's package exports hide lib/; this is the very file amqplib loads.
import connectionModule from "../../node_modules/amqplib/lib/connection.js";
// @ts-expect-error -- as above.
import defs from "../../node_modules/amqplib/lib/defs.js";
// @ts-expect-error -- as above.
import format from "../../node_modules/amqplib/lib/format.js";

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
const proto = (connectionModule as { Connection?: { prototype: ConnectionLike & { [WRAPPED]?: true } } }).Connection?.prototype;
const CONNECTION_CLOSE = (defs as { ConnectionClose?: number }).ConnectionClose;
const closeMessage = (format as { closeMessage?: (frame: Frame) => string }).closeMessage;

/** Whether the broker's reason for a refused connection.open reaches the error (see above). */
export const HANDSHAKE_REASONS: boolean = (() => {
  if (!proto || typeof proto.open !== "function" || typeof proto.step !== "function" || typeof CONNECTION_CLOSE !== "number" || typeof closeMessage !== "function") return false;
  if (proto[WRAPPED]) return true;
  const open = proto.open;
  proto.open = function (this: ConnectionLike, fields: unknown, callback?: OpenCallback) {
    let close: Frame | undefined;
    // An own property for the handshake's duration, in front of the prototype's step.
    const step = proto.step;
    this.step = (k) => step.call(this, (err, frame) => {
      if (frame?.id === CONNECTION_CLOSE) close = frame;
      k(err, frame);
    });
    return open.call(this, fields, (err, ok) => {
      delete (this as Partial<ConnectionLike>).step;
      if (err && close && /Expected ConnectionOpenOk/.test(err.message)) {
        err = Object.assign(new Error(`Handshake terminated by server: ${closeMessage(close)}`), { code: close.fields?.replyCode });
      }
      callback?.(err, ok);
    });
  };
  proto[WRAPPED] = true;
  return true;
})();
