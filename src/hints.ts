/**
 * What a user can do about an error: one table, code (and the reason, where a code covers
 * several cases) → hint. The core (rpc/) says only what happened, with a code and details; the
 * line a user reads is that message, then "; ", then the hint — one line saying what, why and
 * what to do. A hint names only options the command takes (from options.ts). Used by whatever
 * reports an error to a user: report.ts (a command's one line on stderr), call/lines.ts and
 * call/run.ts (call's lines, --json ones too) and serve's workers, whose lines the supervisor logs.
 */
import type { ClientErrorCode, ErrorReason, FibrpcError } from "./errors.ts";
import { OPTIONS, takes, type CommandName } from "./options.ts";
import { quote } from "./printable.ts";

type Hint = (error: FibrpcError, takes: (flag: string) => boolean) => string | undefined;

/** "--url / FIBRPC_URL": the flag and the variable of an option, from the table. */
const both = (flag: keyof typeof OPTIONS) => `--${flag} / ${OPTIONS[flag].env}`;

/** A name in a rabbitmqctl command line, quoted for a POSIX shell where it needs it. */
const sh = (name: string | undefined) =>
  name === undefined ? "?" : /^[\w./:@%+=-]+$/.test(name) ? name : `'${name.replace(/'/g, "'\\''")}'`;

/** The rabbitmqctl command that deletes `queue` of `vhost` (its -p left out for the default vhost, /). */
const deleteQueue = (queue: string | undefined, vhost: string | undefined) =>
  `rabbitmqctl delete_queue${vhost === undefined || vhost === "/" ? "" : ` -p ${sh(vhost)}`} ` +
  // A name that begins with "-" would be read as an option.
  `${queue?.startsWith("-") ? "-- " : ""}${sh(queue)}`;

/** What to do about a permission the broker refused: the user's patterns, and how to set them. */
const grant: Hint = ({ details: { user, vhost, permission, resource, queue } }, has) => {
  // `call --reply-queue exclusive` declares and consumes a server-named queue: a pattern
  // covers them all, and Direct Reply-to (the default) needs no permission on any queue.
  if (resource?.kind === "queue" && resource.name.startsWith("amq.gen-")) {
    return (
      `give user ${JSON.stringify(user)} the ${permission ?? "configure and read"} ` +
      `permission on the reply queues the broker names ` +
      `(a pattern matching ^amq\\.gen-, ` +
      `e.g. rabbitmqctl set_permissions -p ${sh(vhost)} ${sh(user)} CONFIGURE WRITE READ)` +
      `${has("reply-queue") ? ", or use --reply-queue direct, which needs none" : ""}`
    );
  }
  const on = resource
    ? `${resource.kind} ${JSON.stringify(resource.name)}`
    : queue === undefined
      ? "the queue"
      : `queue ${quote(queue)}`;
  return (
    `give user ${JSON.stringify(user)} ${permission ? `the ${permission} permission` : "the permission it lacks"}` +
    ` on ${on} in vhost ${JSON.stringify(vhost)} ` +
    `(its patterns: rabbitmqctl list_user_permissions ${sh(user)}; ` +
    `to set them: rabbitmqctl set_permissions -p ${sh(vhost)} ${sh(user)} CONFIGURE WRITE READ)`
  );
};

/** How many connections serve opens (isolated-replies.ts: the one more). */
const SERVE_CONNECTIONS =
  "(serve opens one per worker, and each worker one more for a while to answer redelivered requests)";

/** What to do about a broker limit reached: which setting, and the command that raises it. */
const raiseLimit: Hint = ({ details: { limit, user, vhost } }) => {
  if (!limit) return undefined;
  const value = `'{"${limit.key}": N}'`;
  switch (limit.scope) {
    case "vhost":
      return (
        `raise the vhost's limit (rabbitmqctl set_vhost_limits -p ${sh(vhost)} ${value}, -1 for none)` +
        `${
          limit.key === "max-queues"
            ? " or delete queues it no longer needs"
            : ` or close other connections to it ${SERVE_CONNECTIONS}`
        }`
      );
    case "user":
      return (
        `raise the user's limit (rabbitmqctl set_user_limits ${sh(user)} ${value}, -1 for none)` +
        `${limit.key === "max-connections" ? ` or close other connections of the user ${SERVE_CONNECTIONS}` : ""}`
      );
    case "cluster":
      return "raise cluster_queue_limit in rabbitmq.conf, or delete queues no longer needed";
    case "connection":
      return "raise channel_max in the broker's rabbitmq.conf, or the URL's channel_max";
  }
};

const startServer: Hint = (_, has) =>
  `start one with \`fibrpc serve\`${has("wait-for-server") ? ", or pass --wait-for-server" : ""}`;
/**
 * A lost connection: --retry, or, for calls that had it, more time for it to come back; a pipeline's requests
 * (--no-wait, which takes no --retry) are to be sent again by hand.
 */
const retry: Hint = ({ details }, has) =>
  details.pipeline
    ? "send the n that failed again (one the broker took unconfirmed may then be answered twice)"
    : details.retried
      ? "raise --timeout, which --retry's reconnections share"
      : has("retry")
        ? "it is safe to retry (--retry)"
        : undefined;

const HINTS: { readonly [C in ClientErrorCode]?: Hint | { readonly [R in ErrorReason]?: Hint } } = {
  BROKER_UNREACHABLE: {
    "connection-refused": () => `start RabbitMQ there or point ${both("url")} at a running broker`,
    "host-not-found": () => `check the host in ${both("url")}`,
    network: () => `check the network and ${both("url")}`,
    handshake: () => "is it an AMQP 0-9-1 port (5672, or 5671 for amqps)?",
    "wrong-protocol": ({ details: { speaks } }) =>
      speaks === "tls"
        ? `write amqps:// in ${both("url")} for that port, or give the broker's plain port (5672 by default)`
        : speaks === "amqp"
          ? `write amqp:// in ${both("url")} for that port, or give the broker's TLS port (5671 by default)`
          : "is it an AMQP 0-9-1 port (5672, or 5671 for amqps)?",
    "queue-unresponsive": (e) =>
      `if it lasts, delete it (${deleteQueue(e.details.queue, e.details.vhost)}) so that serve declares it afresh`,
    "no-majority": () =>
      `bring the cluster's other nodes back (rabbitmqctl cluster_status), ` +
      `or point ${both("url")} at a node that is part of the majority`,
  },
  ACCESS_REFUSED: {
    login: () => `check the user name and password in ${both("url")}`,
    vhost: ({ details: { user, vhost } }) =>
      `give user ${JSON.stringify(user)} permissions on vhost ${JSON.stringify(vhost)} ` +
      `(rabbitmqctl set_permissions -p ${sh(vhost)} ${sh(user)} CONFIGURE WRITE READ), ` +
      `or check the vhost in ${both("url")}`,
    "vhost-not-found": ({ details: { vhost } }) =>
      `check the vhost in ${both("url")}, or create it (rabbitmqctl add_vhost ${sh(vhost)})`,
    permission: grant,
    "reserved-name": () => 'pick a --queue that does not begin with "amq." (for serve and call alike)',
  },
  TLS_REFUSED: {
    certificate: () => "pass --tls-ca with the CA that signed it, or check the host name in the URL",
    "client-certificate": ({ details }) =>
      details.alert === "CERTIFICATE_REQUIRED"
        ? "pass --tls-cert and --tls-key"
        : "check --tls-cert: issued by a CA the broker trusts (its ssl_options.cacertfile), and still valid",
    "tls-handshake": () =>
      "if it requires a client certificate, pass --tls-cert and --tls-key (a TLS 1.2 broker refuses a missing one " +
      "this way); else it allows no TLS version or cipher this client offers (its ssl_options.versions, ciphers)",
  },
  QUEUE_NOT_FOUND: () => "start one with `fibrpc serve` (or check --queue)",
  NO_CONSUMER: {
    "no-server": startServer,
    // Gone while the calls waited: --wait-for-server waits only before sending; --retry sends again.
    "server-gone": ({ details }, has) => {
      const suggest = has("retry") && !details.retried;
      const retrying = suggest ? " (--retry sends calls again until the timeout, for a server that restarts)" : "";
      return `start one with \`fibrpc serve\`${retrying}`;
    },
  },
  TIMEOUT: {
    "reply-timed-out": () => "raise --timeout, or check that the servers keep up",
    "connect-timed-out": () => "raise --timeout (connecting is part of it), or check that the broker can be reached",
    "wait-timed-out": () => "start one with `fibrpc serve`, or raise --timeout",
    "too-short": () => "raise --timeout (connecting is part of it)",
    "confirm-backlog": () => "send fewer at once (`fibrpc call -` keeps --in-flight of them), or raise --timeout",
    "not-confirmed": () =>
      "check the queue's state on the broker (rabbitmqctl list_queues name type state; " +
      "a quorum queue needs a majority of its nodes), " +
      "or raise --timeout",
  },
  BROKER_BLOCKED: ({ details }, has) =>
    `a resource alarm is on (rabbitmqctl status shows it): the broker's operator must free memory or disk; ` +
    `retry once it lifts${has("retry") && !details.retried && !details.pipeline ? " (--retry)" : ""}`,
  REJECTED: ({ details }, has) =>
    `the servers are not keeping up, or the queue's length limit is too small (rabbitmqctl list_policies); ` +
    // A pipeline's requests (--no-wait) are never sent again: --retry does not go with --no-wait.
    `retry later${has("retry") && !details.pipeline && !details.retried ? " (--retry)" : ""}`,
  CONNECTION_LOST: { "connection-lost": retry, "not-sent": retry },
  IO_ERROR: {
    "write-stdout": () => "check where stdout goes (a full disk, a device gone)",
    "read-stdin": () => "give call - the n as a file or a pipe on stdin",
  },
  BROKER_REFUSED: {
    "deprecated-feature": (e) =>
      `fibrpc does not use it itself, so check the queue's policies and arguments, ` +
      `or permit the feature in rabbitmq.conf (deprecated_features.permit.${e.details.feature} = true)`,
    "set-up-refused": () => 'see docs/operations.md, "Broker versions"',
    limit: raiseLimit,
    locked: ({ details: { queue, queueOption = "queue" } }) =>
      `another connection holds queue ${quote(queue ?? "")} for itself (an exclusive queue or consumer): ` +
      `stop that client, or pick another --${queueOption}`,
    "precondition-failed": () =>
      "check the queue's arguments and policies (rabbitmqctl list_queues name arguments policy)",
    "channel-max": () =>
      "raise channel_max in the broker's rabbitmq.conf, or drop a ?channel_max=1 from the broker URL",
    "stream-queue": ({ details: { queue, vhost } }) =>
      `serve a classic or quorum queue: another --queue, or delete this one (${deleteQueue(queue, vhost)})`,
    "dead-letter-queue-differs": (e) =>
      `delete it (${deleteQueue(e.details.queue, e.details.vhost)}) so that serve can declare it as a quorum queue`,
  },
};

/** The hint for an error met by `command` (any command if none is named), if there is one. */
export function hintFor(error: FibrpcError, command?: CommandName): string | undefined {
  const entry = HINTS[error.code];
  const hint =
    typeof entry === "function"
      ? entry
      : error.details.reason === undefined
        ? undefined
        : entry?.[error.details.reason];
  return hint?.(error, (flag) => takes(command, flag));
}

/** The line a user reads: what happened and why (the message), and what to do (the hint). */
export function withHint(error: FibrpcError, command?: CommandName): string {
  const hint = hintFor(error, command);
  return hint === undefined ? error.message : `${error.message}; ${hint}`;
}
