/**
 * Turns what amqplib and the socket layer throw into one FibrpcError: a code, one line saying
 * what happened and why, and the details (reason, broker) the commands pick their hint by. Used
 * by both `call` and `serve`.
 */
import { displayUrl, type BrokerUrl } from "../broker-url.ts";
import { FibrpcError, type ErrorReason } from "../errors.ts";

interface ErrorLike {
  code?: unknown;
  message?: unknown;
}

function describe(err: unknown): { code: string; message: string } {
  const e = (err ?? {}) as ErrorLike;
  return { code: typeof e.code === "string" || typeof e.code === "number" ? String(e.code) : "", message: typeof e.message === "string" ? e.message : String(err) };
}

/** A failure to open a connection (TCP, TLS or the AMQP handshake). */
export function connectError(err: unknown, url: BrokerUrl): FibrpcError {
  const { code, message } = describe(err);
  const broker = displayUrl(url);
  const host = url.hostname;
  const error = (errorCode: FibrpcError["code"], reason: ErrorReason, text: string) => new FibrpcError(errorCode, text, { reason, broker });
  if (TLS_VERIFY_CODES.has(code) || /certificate|self.signed/i.test(message)) {
    return error("TLS_REFUSED", "certificate", `the TLS certificate of the broker at ${broker} could not be verified (${code || message})`);
  }
  switch (code) {
    case "ECONNREFUSED":
      return error("BROKER_UNREACHABLE", "connection-refused", `cannot reach the broker at ${broker}: connection refused`);
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return error("BROKER_UNREACHABLE", "host-not-found", `cannot reach the broker at ${broker}: host name ${JSON.stringify(host)} does not resolve`);
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return error("BROKER_UNREACHABLE", "network", `cannot reach the broker at ${broker}: ${code === "ETIMEDOUT" ? "connection timed out" : "no route to host"}`);
    case "ECONNRESET":
    case "EPIPE":
      return error("BROKER_UNREACHABLE", "handshake", `the broker at ${broker} closed the connection during the handshake`);
  }
  if (/ACCESS.REFUSED|\b403 \(/.test(message)) {
    return error("ACCESS_REFUSED", "login", `the broker at ${broker} refused the login: wrong user name or password`);
  }
  if (/NOT.ALLOWED|\b530 \(/.test(message)) {
    return error("ACCESS_REFUSED", "vhost", `the broker at ${broker} refused access to the vhost: it does not exist or the user has no permission on it`);
  }
  // RabbitMQ 4.x on Khepri: a node cut off from the majority of its cluster cannot change the
  // cluster's metadata (declare a queue) and closes the connection, 541, after its timeout.
  if (/metadata store operation timed out/i.test(message)) {
    return error("BROKER_UNREACHABLE", "no-majority", `the broker at ${broker} could not declare the queue: ${brokerReason(err)} (a node cut off from the majority of its cluster cannot change the cluster's metadata)`);
  }
  // A queue whose record the broker has but whose process does not answer: seen on RabbitMQ 4.3
  // after a declaration that timed out while the node lacked its cluster's majority was committed
  // once the majority came back (404 "failed to perform operation on queue … due to timeout").
  const unresponsive = /failed to perform operation on queue '([^']*)'.*due to timeout/i.exec(message);
  if (unresponsive) {
    return new FibrpcError("BROKER_UNREACHABLE", `the broker at ${broker} could not declare queue ${JSON.stringify(unresponsive[1])}: it has a record of the queue, but the queue does not answer (${brokerReason(err)})`, { reason: "queue-unresponsive", broker, queue: unresponsive[1] });
  }
  if (/Handshake terminated|Socket closed abruptly|Unexpected close/i.test(message)) {
    return error("BROKER_UNREACHABLE", "handshake", `the broker at ${broker} closed the connection during the handshake (${message})`);
  }
  return new FibrpcError("BROKER_UNREACHABLE", `cannot connect to the broker at ${broker}: ${message}`, { broker });
}

const TLS_VERIFY_CODES = new Set([
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "CERT_HAS_EXPIRED",
  "CERT_UNTRUSTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
]);

/** amqplib reports a channel closed by the broker as "... 406 (PRECONDITION-FAILED) with message ...". */
export function isPreconditionFailed(err: unknown): boolean {
  const { code, message } = describe(err);
  return code === "406" || /PRECONDITION.FAILED/.test(message);
}

/** A 406 whose reason is a declaration that differs from an existing queue's ("inequivalent arg ..."). */
export function isInequivalent(err: unknown): boolean {
  return isPreconditionFailed(err) && /inequivalent/i.test(describe(err).message);
}

/**
 * RabbitMQ 4.x denying a deprecated feature (e.g. 4.3: transient non-exclusive queues, global
 * QoS): a connection or channel close, 541 INTERNAL_ERROR or 406, "Feature `...` is deprecated".
 */
export function deprecatedFeature(err: unknown): string | undefined {
  return /Feature `?([\w-]+)`? is deprecated/i.exec(describe(err).message)?.[1];
}

/**
 * What serve does when the broker refuses its set-up in a way waiting will not fix: one line
 * naming the refusal (the remedy is the command's hint). Undefined for other errors.
 */
export function brokerRefusal(err: unknown, queue: string): FibrpcError | undefined {
  const feature = deprecatedFeature(err);
  if (feature !== undefined) {
    return new FibrpcError("BROKER_REFUSED", `the broker refused serve's set-up on queue ${JSON.stringify(queue)}: it denies the deprecated feature ${JSON.stringify(feature)} (${brokerReason(err)})`, {
      reason: "deprecated-feature",
      queue,
      feature,
    });
  }
  if (isPreconditionFailed(err)) {
    return new FibrpcError("BROKER_REFUSED", `the broker refused serve's set-up on queue ${JSON.stringify(queue)} (${brokerReason(err)})`, { reason: "set-up-refused", queue });
  }
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  const { code, message } = describe(err);
  return code === "404" || /NOT.FOUND/.test(message);
}

/** The broker's own words from a channel error, e.g. "inequivalent arg 'durable' for queue ...". */
export function brokerReason(err: unknown): string {
  const { message } = describe(err);
  const match = /with message "([^"]*)"/.exec(message);
  return (match?.[1] ?? message).replace(/^[A-Z_]+ - /, "");
}
