/**
 * Turns what amqplib and the socket layer throw into one FibrpcError: a code, one line saying
 * what happened and why, and the details (reason, broker) the commands pick their hint by. Used
 * by both `call` and `serve`.
 *
 * A refusal by the broker (a connection or channel it closes with a reply code and its reason)
 * is one kind of error per remedy, each with the broker's own words and code in its line: the
 * login, the vhost, a permission, a reserved name (exit 77, ACCESS_REFUSED); a limit, a locked
 * queue, a failed precondition (exit 78, BROKER_REFUSED). None of them is retried: waiting does
 * not grant a permission or raise a limit. RabbitMQ words some reasons differently from release
 * to release (3.10: "access to queue 'q' in vhost 'v' refused for user 'u'", 4.x: "configure
 * access to queue ..."; "user limit of (0)" and "of 0"): the patterns below take both.
 */
import { connectionTimeoutOf, displayUrl, type BrokerUrl } from "../broker-url.ts";
import { FibrpcError, type BrokerLimit, type ErrorDetails, type ErrorReason } from "../errors.ts";
import { quote } from "../printable.ts";

interface ErrorLike {
  code?: unknown;
  message?: unknown;
}

function describe(err: unknown): { code: string; message: string } {
  const e = (err ?? {}) as ErrorLike;
  return {
    code: typeof e.code === "string" || typeof e.code === "number" ? String(e.code) : "",
    message: typeof e.message === "string" ? e.message : String(err),
  };
}

/** A failure to open a connection (TCP, TLS or the AMQP handshake). */
export function connectError(err: unknown, url: BrokerUrl): FibrpcError {
  const { code, message } = describe(err);
  const broker = displayUrl(url);
  const host = url.hostname;
  const error = (errorCode: FibrpcError["code"], reason: ErrorReason, text: string) =>
    new FibrpcError(errorCode, text, { reason, broker });
  // A TLS alert from the broker about this client's certificate (missing, unknown CA, expired): not the broker's
  // certificate, and not a broker out of reach (OpenSSL's "…ALERT_UNKNOWN_CA" carries no code of Node's).
  const alert = CLIENT_CERTIFICATE_ALERT.exec(`${code} ${message}`)?.[1];
  if (alert !== undefined) {
    const what =
      alert === "CERTIFICATE_REQUIRED"
        ? "requires a client certificate, and none was given"
        : `refused this client's TLS certificate (${alert.toLowerCase().replaceAll("_", " ")})`;
    return new FibrpcError("TLS_REFUSED", `the broker at ${broker} ${what}`, {
      reason: "client-certificate",
      broker,
      alert,
    });
  }
  // A handshake failure alert: how a TLS 1.2 broker refuses a client without a certificate when it requires one
  // (1.3 says CERTIFICATE_REQUIRED), or one whose TLS versions or ciphers it shares none of. Neither passes by
  // waiting: not an outage, not retried.
  if (/ALERT_HANDSHAKE_FAILURE/.test(`${code} ${message}`)) {
    return error(
      "TLS_REFUSED",
      "tls-handshake",
      `the broker at ${broker} refused the TLS handshake (handshake failure)`,
    );
  }
  if (TLS_VERIFY_CODES.has(code) || /certificate|self.signed/i.test(message)) {
    return error(
      "TLS_REFUSED",
      "certificate",
      `the TLS certificate of the broker at ${broker} could not be verified (${code || message})`,
    );
  }
  switch (code) {
    case "ECONNREFUSED":
      return error(
        "BROKER_UNREACHABLE",
        "connection-refused",
        `cannot reach the broker at ${broker}: connection refused`,
      );
    case "ENOTFOUND":
    case "EAI_AGAIN":
    case "EAI_NONAME":
      return error(
        "BROKER_UNREACHABLE",
        "host-not-found",
        `cannot reach the broker at ${broker}: host name ${JSON.stringify(host)} does not resolve`,
      );
    case "ETIMEDOUT":
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return error(
        "BROKER_UNREACHABLE",
        "network",
        `cannot reach the broker at ${broker}: ${code === "ETIMEDOUT" ? "connection timed out" : "no route to host"}`,
      );
    case "ECONNRESET":
    case "EPIPE":
      return error(
        "BROKER_UNREACHABLE",
        "handshake",
        `the broker at ${broker} closed the connection during the handshake`,
      );
  }
  const refused = refusal(err, { url });
  if (refused) return refused;
  if (isConsumerTimeout(err)) return error("BROKER_UNREACHABLE", "consumer-timeout", channelClosedReason(err));
  // RabbitMQ 4.x on Khepri: a node cut off from the majority of its cluster cannot change the
  // cluster's metadata (declare a queue) and closes the connection, 541, after its timeout.
  if (/metadata store operation timed out/i.test(message)) {
    return error(
      "BROKER_UNREACHABLE",
      "no-majority",
      `the broker at ${broker} could not declare the queue: ${brokerReason(err)} ` +
        `(a node cut off from the majority of its cluster cannot change the cluster's metadata)`,
    );
  }
  // A queue whose record the broker has but whose process does not answer: seen on RabbitMQ 4.3
  // after a declaration that timed out while the node lacked its cluster's majority was committed
  // once the majority came back (404 "failed to perform operation on queue … due to timeout").
  const unresponsive = /failed to perform operation on queue '(.*)' in vhost '.*' due to timeout/i.exec(message);
  if (unresponsive) {
    return new FibrpcError(
      "BROKER_UNREACHABLE",
      `the broker at ${broker} could not declare queue ${JSON.stringify(unresponsive[1])}: ` +
        `it has a record of the queue, but the queue does not answer (${brokerReason(err)})`,
      { reason: "queue-unresponsive", broker, queue: unresponsive[1], vhost: url.vhost },
    );
  }
  // Without amqplib-internals.ts (another amqplib), a close at connection.open comes without its
  // reason: what it can be, and where the reason is.
  if (/Expected ConnectionOpenOk; got <ConnectionClose/.test(message)) {
    return error(
      "ACCESS_REFUSED",
      "vhost",
      `the broker at ${broker} refused the connection at connection.open ` +
        `(its reason is in the broker's log: no access to the vhost, no such vhost, or a connection limit)`,
    );
  }
  if (/Handshake terminated|Socket closed abruptly|Unexpected close/i.test(message)) {
    return error(
      "BROKER_UNREACHABLE",
      "handshake",
      `the broker at ${broker} closed the connection during the handshake (${message})`,
    );
  }
  // amqplib's bound on the attempt (connection_timeout) ran out before the handshake was done: a frozen broker,
  // or the port of a service that waits for its client to speak first.
  if (message === "connect ETIMEDOUT") {
    return error(
      "BROKER_UNREACHABLE",
      "handshake",
      `the broker at ${broker} did not answer within ${connectionTimeoutOf(url)} ms (connection_timeout)`,
    );
  }
  // A port of another protocol that answers first (an HTTP server, the management UI on 15672, a proxy): amqplib
  // reads its first bytes as a frame header and finds an absurd size ("HTTP/1.1" gives 1345270062).
  const frameSize = /^Frame size (\d+) exceeds maxFrameSize/.exec(message);
  if (frameSize) {
    // amqp:// to a TLS port (RabbitMQ's 5671): its TLS stack answers AMQP's header with an alert record,
    // 15 03 0v 00 02 LL DD, whose bytes 3 to 6 read as a frame size of 0x0002LLDD (LL: level 1 or 2), above
    // the frame_max connectFields bounds inbound frames by (131072 unless the URL raises it).
    const size = Number(frameSize[1]);
    if (url.protocol === "amqp" && size >= 0x2_01_00 && size <= 0x2_02_ff)
      return new FibrpcError(
        "BROKER_UNREACHABLE",
        `the broker at ${broker} answered in TLS: the port is an amqps:// listener, not plain AMQP (amqp://)`,
        { reason: "wrong-protocol", broker, speaks: "tls" },
      );
    return error(
      "BROKER_UNREACHABLE",
      "wrong-protocol",
      `the server at ${broker} did not answer in AMQP 0-9-1: another service listens on that port`,
    );
  }
  // amqps:// to a port that answers in plain AMQP (5672): OpenSSL reads "AMQP" as a record header.
  if (/WRONG_VERSION_NUMBER|wrong version number|packet length too long/i.test(message)) {
    return new FibrpcError(
      "BROKER_UNREACHABLE",
      `the broker at ${broker} did not answer in TLS: the port speaks plain AMQP (amqp://), not amqps://`,
      { reason: "wrong-protocol", broker, speaks: "amqp" },
    );
  }
  // Closed by the broker for a reason of no known kind: its words, as a lost connection is said (lostReason). A 541
  // at this point was seen on a RabbitMQ 3.10 cluster whose quorum request queue had lost its majority.
  const internal = brokerClose(err)?.code === 541 ? "; on a cluster, check that a majority of its nodes run" : "";
  return new FibrpcError(
    "BROKER_UNREACHABLE",
    `cannot connect to the broker at ${broker}: ${lostReason(err)}${internal}`,
    {
      broker,
    },
  );
}

/** A connection attempt that the caller's deadline ended (the call's --timeout), whatever its error was. */
export function connectTimedOut(cause: FibrpcError, url: BrokerUrl): FibrpcError {
  const broker = displayUrl(url);
  return new FibrpcError("TIMEOUT", `the timeout ran out while connecting to the broker at ${broker}`, {
    ...cause.details,
    reason: "connect-timed-out",
    broker,
  });
}

/** The alerts a TLS server sends about the client's certificate (RFC 8446 6.2), as OpenSSL names them. */
const CLIENT_CERTIFICATE_ALERT = new RegExp(
  `ALERT_(${[
    ...["CERTIFICATE_REQUIRED", "UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_EXPIRED", "CERTIFICATE_REVOKED"],
    ...["CERTIFICATE_UNKNOWN", "UNSUPPORTED_CERTIFICATE", "ACCESS_DENIED"],
  ].join("|")})`,
);

const TLS_VERIFY_CODES: ReadonlySet<string> = new Set([
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
 * naming the refusal (the remedy is the command's hint). Undefined for other errors. With the
 * broker's URL, every kind of refusal (refusal()); without it, deprecated features and 406s.
 */
/**
 * The broker closed a channel because a delivery stayed unacknowledged past its consumer_timeout (406, "delivery
 * acknowledgement on channel 1 timed out"): a request computed for longer than that, or replies (and the acks
 * after them) held back by a resource alarm. Not a refusal: the deliveries go back to the queue, and a new
 * channel consumes them again.
 */
export function isConsumerTimeout(err: unknown): boolean {
  return /delivery acknowledgement on channel \d+ timed out/i.test(describe(err).message);
}

/** What serve says when the broker closed its channel: the broker's reason, and for a consumer timeout the remedy. */
export function channelClosedReason(err: unknown): string {
  const why = `the broker closed the channel: ${brokerReason(err)}`;
  return isConsumerTimeout(err)
    ? `${why}; a request was not acknowledged within the broker's consumer_timeout (a long computation, or ` +
        "replies held by a resource alarm): raise consumer_timeout, or lower --prefetch or --max-n"
    : why;
}

export function brokerRefusal(err: unknown, queue: string, url?: BrokerUrl): FibrpcError | undefined {
  if (isConsumerTimeout(err)) return undefined;
  const refused = url === undefined ? undefined : refusal(err, { url, queue });
  // A 406 of no known kind is said as serve's set-up refused (below), with its own hint.
  if (refused && refused.details.reason !== "precondition-failed") return refused;
  const feature = deprecatedFeature(err);
  if (feature !== undefined) {
    return new FibrpcError(
      "BROKER_REFUSED",
      `the broker refused serve's set-up on queue ${quote(queue)}: ` +
        `it denies the deprecated feature ${JSON.stringify(feature)} (${brokerReason(err)})`,
      {
        reason: "deprecated-feature",
        queue,
        feature,
      },
    );
  }
  if (isPreconditionFailed(err)) {
    return new FibrpcError(
      "BROKER_REFUSED",
      `the broker refused serve's set-up on queue ${quote(queue)} (${brokerReason(err)})`,
      { reason: "set-up-refused", queue },
    );
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
  // To the last quote: a vhost or queue name may hold one.
  const match = /with message "([\s\S]*)"/.exec(message);
  return (match?.[1] ?? message).replace(/^[A-Z_]+ - /, "");
}

/** A close the broker sent, of the connection or of a channel, as amqplib reports it. */
export interface BrokerClose {
  /** The AMQP reply code: 403, 530, ... */
  code: number;
  /** Its name, as the broker spells it: ACCESS_REFUSED, NOT_ALLOWED, ... */
  name: string;
  /** The broker's reason, without the leading "NAME - ". */
  text: string;
  /** The method the broker refused, when it says (class and method ids of the close). */
  method?: string;
}

/** The methods fibrpc sends that the broker may refuse, by AMQP class and method id. */
const METHODS: Record<string, string> = {
  "10.40": "connection.open",
  "20.10": "channel.open",
  "50.10": "queue.declare",
  "60.10": "basic.qos",
  "60.20": "basic.consume",
  "60.40": "basic.publish",
};

/**
 * The broker's close in an amqplib error: "Connection closed: 530 (NOT-ALLOWED) with message
 * "NOT_ALLOWED - ..."", "Channel closed by server: 403 ...", "Operation failed: QueueDeclare; 403
 * ...", "Handshake terminated by server: 403 ..." (amqplib-internals.ts gives connection.open's
 * the same form). Undefined for anything else (a socket error, a timeout).
 */
export function brokerClose(err: unknown): BrokerClose | undefined {
  const { message } = describe(err);
  const match = /\b(\d{3}) \(([A-Z-]+)\) with message "([\s\S]*)"$/.exec(message);
  if (!match) return undefined;
  const e = (err ?? {}) as { classId?: unknown; methodId?: unknown };
  const method =
    typeof e.classId === "number" && typeof e.methodId === "number" ? METHODS[`${e.classId}.${e.methodId}`] : undefined;
  return {
    code: Number(match[1]),
    name: match[2]!.replace(/-/g, "_"),
    text: match[3]!.replace(/^[A-Z_]+ - /, ""),
    method,
  };
}

/** Why a connection was lost, as call, bench and serve say it: the broker's words if it closed it, else the error's. */
export function lostReason(err: unknown): string {
  const close = brokerClose(err);
  return close ? `closed by the broker: ${close.text} (${close.code} ${close.name})` : describe(err).message;
}

/** Where a refusal happened: the broker connected to, and the request queue in use. */
export interface RefusalContext {
  url: BrokerUrl;
  queue?: string;
  /** The option that names `queue` when it is not the request queue (ErrorDetails.queueOption). */
  queueOption?: "reply-to";
  /** The queue.declare refused was a passive one (call looks at the request queue; it never declares it). */
  passive?: true;
}

/**
 * The FibrpcError for a refusal by the broker, or undefined if `err` is not one (a socket error, a
 * connection forced closed, a close fibrpc knows nothing to say about).
 */
export function refusal(err: unknown, context: RefusalContext): FibrpcError | undefined {
  const close = brokerClose(err);
  if (!close) return undefined;
  const known =
    loginRefusal(close, context) ??
    vhostRefusal(close, context) ??
    limitRefusal(close, context) ??
    reservedNameRefusal(close, context) ??
    lockRefusal(close, context) ??
    permissionRefusal(close, context) ??
    preconditionRefusal(close, context);
  if (known) return known;
  // Another 530 at connection.open (the handshake's close names no method): the vhost, in words
  // this does not know. A 530 elsewhere is not about access to the vhost.
  if (close.code === 530 && (close.method === undefined || close.method === "connection.open"))
    return refused("ACCESS_REFUSED", "vhost", close, context, "the connection");
  return undefined;
}

/** "... refused WHAT: the broker's reason (CODE NAME)", with the details for the hint. */
function refused(
  code: FibrpcError["code"],
  reason: ErrorReason,
  close: BrokerClose,
  context: RefusalContext,
  what: string,
  details: ErrorDetails = {},
): FibrpcError {
  const broker = displayUrl(context.url);
  return new FibrpcError(code, `the broker at ${broker} refused ${what}: ${close.text} (${close.code} ${close.name})`, {
    reason,
    broker,
    user: context.url.username,
    vhost: context.url.vhost,
    ...(context.queue === undefined ? {} : { queue: context.queue }),
    ...(context.queueOption === undefined ? {} : { queueOption: context.queueOption }),
    ...details,
  });
}

/** What fibrpc asked for, in words, from the method the broker refused. */
function attempted(close: BrokerClose, context: RefusalContext, queue = context.queue): string {
  const named = queue === undefined ? "the queue" : `queue ${quote(queue)}`;
  switch (close.method) {
    case "connection.open":
      return "the connection";
    case "channel.open":
      return "to open a channel";
    case "queue.declare":
      return context.passive ? `access to ${named}` : `to declare ${named}`;
    case "basic.consume":
      return `to consume from ${named}`;
    case "basic.publish":
      return `to publish${queue === undefined ? "" : ` to ${named}`}`;
    default:
      return close.code === 530 ? "the connection" : `an operation on ${named}`;
  }
}

/** 403 at the login (after start-ok): user name, password or authentication mechanism. */
export function loginRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  if (close.code !== 403 || !/\blogin\b|authenticat/i.test(close.text)) return undefined;
  return refused("ACCESS_REFUSED", "login", close, context, "the login");
}

/**
 * 530 at connection.open: the user has no permission on the vhost ("access to vhost 'v' refused
 * for user 'u'"), or there is no such vhost ("vhost v not found"). Both are exit 77 (as RabbitMQ
 * answers both with NOT_ALLOWED): the URL names a vhost this user cannot use.
 */
export function vhostRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  if (close.code !== 530) return undefined;
  // The broker quotes names without escaping them: the user's name runs to the closing quote at the end.
  const denied = /access to vhost '(.*?)' refused for user '(.*)'$/.exec(close.text);
  if (denied)
    return refused("ACCESS_REFUSED", "vhost", close, context, "the connection", { vhost: denied[1], user: denied[2] });
  const missing = /^vhost '?(.*?)'? not found/.exec(close.text);
  if (missing)
    return refused("ACCESS_REFUSED", "vhost-not-found", close, context, "the connection", { vhost: missing[1] });
  return undefined;
}

/**
 * A limit the broker enforces: the vhost's or the user's connections, the user's channels (530
 * NOT_ALLOWED, the connection closed), the vhost's or the cluster's queues (406 on the
 * declaration). Exit 78: a setting of the broker's, which the operator raises.
 */
export function limitRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  const { text } = close;
  const limit = (scope: BrokerLimit["scope"], key: BrokerLimit["key"], extra: ErrorDetails = {}) =>
    refused(
      "BROKER_REFUSED",
      "limit",
      close,
      context,
      key === "max-queues"
        ? // The queue the broker names: an exclusive reply queue (amq.gen-…) is not the request queue.
          attempted(close, context, /cannot declare queue '(.*)': queue limit/.exec(text)?.[1] ?? context.queue)
        : key === "max-connections"
          ? "the connection"
          : "to open a channel",
      { limit: { scope, key }, ...extra },
    );
  const vhostConnections = /access to vhost '(.*)' refused for user '(.*)': connection limit \(\d+\) is reached/.exec(
    text,
  );
  if (vhostConnections)
    return limit("vhost", "max-connections", { vhost: vhostConnections[1], user: vhostConnections[2] });
  const userConnections = /for user '(.*)': user connection limit \(\d+\) is reached/.exec(text);
  if (userConnections) return limit("user", "max-connections", { user: userConnections[1] });
  const userChannels = /number of channels opened for user '(.*)' has reached the maximum allowed user limit/.exec(
    text,
  );
  if (userChannels) return limit("user", "max-channels", { user: userChannels[1] });
  if (/number of channels opened \(\d+\) has reached the negotiated channel_max/.test(text))
    return limit("connection", "channel_max");
  const vhostQueues = /queue limit in vhost '(.*)' \(\d+\) is reached/.exec(text);
  if (vhostQueues) return limit("vhost", "max-queues", { vhost: vhostQueues[1] });
  if (/queue limit in cluster \(\d+\) is reached/.test(text)) return limit("cluster", "max-queues");
  return undefined;
}

/** 403 on a queue name beginning with "amq.": the broker keeps those for itself. */
export function reservedNameRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  if (close.code !== 403) return undefined;
  const m = /name '(.*)' contains reserved prefix/.exec(close.text);
  if (!m) return undefined;
  return refused("ACCESS_REFUSED", "reserved-name", close, context, attempted(close, context, m[1]), { queue: m[1] });
}

/**
 * The queue is another connection's: its exclusive queue (405 RESOURCE_LOCKED), or it has an
 * exclusive consumer (403 "in exclusive use", not a permission). Exit 78.
 */
export function lockRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  const m =
    close.code === 405
      ? /queue '(.*)' in vhost '/.exec(close.text)
      : close.code === 403
        ? /queue '(.*)' in vhost '.*' in exclusive use/.exec(close.text)
        : null;
  if (!m) return undefined;
  return refused("BROKER_REFUSED", "locked", close, context, attempted(close, context, m[1]), { queue: m[1] });
}

/**
 * 403 ACCESS_REFUSED on a queue or exchange: the user lacks a permission. RabbitMQ 4.x names it
 * ("configure access to queue ..."); 3.x does not, and then it follows from the method refused:
 * declaring needs configure, consuming read, publishing write.
 */
export function permissionRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  if (close.code !== 403) return undefined;
  const m = new RegExp(
    String.raw`(?:\b(configure|write|read) )?access to (queue|exchange|topic) '(.*)' ` +
      "in vhost '(.*)' refused for user '(.*)'$",
  ).exec(close.text);
  const permission = (m?.[1] ??
    PERMISSION_OF[close.method ?? ""] ??
    (m?.[2] === "exchange" ? "write" : undefined)) as ErrorDetails["permission"];
  const details: ErrorDetails = m
    ? { vhost: m[4], user: m[5], resource: { kind: m[2] as "queue" | "exchange" | "topic", name: m[3]! } }
    : {};
  const what =
    m?.[2] === "exchange"
      ? close.method === undefined || close.method === "basic.publish"
        ? `to publish to exchange ${JSON.stringify(m[3])}`
        : `an operation on exchange ${JSON.stringify(m[3])}`
      : attempted(close, context, m?.[3]);
  return refused("ACCESS_REFUSED", "permission", close, context, what, {
    ...details,
    ...(permission ? { permission } : {}),
  });
}

const PERMISSION_OF: Record<string, "configure" | "write" | "read"> = {
  "queue.declare": "configure",
  "basic.consume": "read",
  "basic.publish": "write",
};

/**
 * 406 PRECONDITION_FAILED that is not a limit: the broker will not let fibrpc use the queue as it
 * is (serve's own declaration, which joins a queue declared with other arguments, has its own
 * words for it: brokerRefusal). Exit 78.
 */
export function preconditionRefusal(close: BrokerClose, context: RefusalContext): FibrpcError | undefined {
  // A deprecated feature the broker denies has its own words and remedy (brokerRefusal).
  if (close.code !== 406 || /is deprecated/i.test(close.text) || isConsumerTimeout(close.text)) return undefined;
  return refused("BROKER_REFUSED", "precondition-failed", close, context, attempted(close, context));
}

/**
 * `call` on a queue whose name begins with "amq." that does not exist: no server can ever declare
 * it (the broker refuses those names, reservedNameRefusal), so it is not a missing server.
 */
export function reservedQueueName(queue: string, url: BrokerUrl): FibrpcError | undefined {
  if (!queue.startsWith("amq.")) return undefined;
  const broker = displayUrl(url);
  return new FibrpcError(
    "ACCESS_REFUSED",
    `queue ${quote(queue)} does not exist on the broker at ${broker}, and no server can declare it: ` +
      `the broker reserves names beginning with "amq." to itself`,
    {
      reason: "reserved-name",
      broker,
      queue,
    },
  );
}

/**
 * What setting up a client's connection threw (a channel, the reply consumer), as a FibrpcError:
 * a refusal with the broker's reason (see refusal), else the connection went away meanwhile (a
 * broker restarting between the handshake and the set-up), which a new attempt may get past.
 */
export function setUpError(err: unknown, context?: RefusalContext): FibrpcError {
  if (err instanceof FibrpcError) return err;
  const refused = context ? refusal(err, context) : undefined;
  if (refused) return refused;
  return new FibrpcError(
    "CONNECTION_LOST",
    `the connection to the broker closed while it was being set up ` +
      `(${err instanceof Error ? err.message : String(err)})`,
    { reason: "connection-lost" },
  );
}
