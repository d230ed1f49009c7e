/**
 * What a user can do about an error: one table, code (and the reason, where a code covers
 * several cases) → hint. The core (rpc/) says only what happened, with a code and details; the
 * line a user reads is that message, then "; ", then the hint — one line saying what, why and
 * what to do. A hint names only options the command takes (from options.ts).
 */
import type { ClientErrorCode, ErrorReason, FibrpcError } from "../errors.ts";
import { OPTIONS, takes, type CommandName } from "../options.ts";

type Hint = (error: FibrpcError, takes: (flag: string) => boolean) => string | undefined;

/** "--url / FIBRPC_URL": the flag and the variable of an option, from the table. */
const both = (flag: keyof typeof OPTIONS) => `--${flag} / ${OPTIONS[flag].env}`;

const startServer: Hint = (_, has) => `start one with \`fibrpc serve\`${has("wait-for-server") ? ", or pass --wait-for-server" : ""}`;
const retry: Hint = (_, has) => (has("retry") ? "it is safe to retry (--retry)" : undefined);

const HINTS: { readonly [C in ClientErrorCode]?: Hint | { readonly [R in ErrorReason]?: Hint } } = {
  BROKER_UNREACHABLE: {
    "connection-refused": () => `start RabbitMQ there or point ${both("url")} at a running broker`,
    "host-not-found": () => `check the host in ${both("url")}`,
    network: () => `check the network and ${both("url")}`,
    handshake: () => "is it an AMQP 0-9-1 port (5672, or 5671 for amqps)?",
    "queue-unresponsive": (e) => `if it lasts, delete it (rabbitmqctl delete_queue ${e.details.queue}) so that serve declares it afresh`,
    "no-majority": () => `bring the cluster's other nodes back (rabbitmqctl cluster_status), or point ${both("url")} at a node that is part of the majority`,
  },
  ACCESS_REFUSED: {
    login: () => `check them in ${both("url")}`,
    vhost: () => `check the vhost in ${both("url")}`,
  },
  TLS_REFUSED: () => "pass --tls-ca with the CA that signed it, or check the host name in the URL",
  QUEUE_NOT_FOUND: () => "start one with `fibrpc serve` (or check --queue)",
  NO_CONSUMER: startServer,
  TIMEOUT: {
    "reply-timed-out": () => "raise --timeout, or check that the servers keep up",
    "wait-timed-out": () => "start one with `fibrpc serve`, or raise --timeout",
    "not-confirmed": () => "check the queue's state on the broker (rabbitmqctl list_queues name type state; a quorum queue needs a majority of its nodes), or raise --timeout",
  },
  BROKER_BLOCKED: (_, has) => `a resource alarm is on (rabbitmqctl status shows it): the broker's operator must free memory or disk; retry once it lifts${has("retry") ? " (--retry)" : ""}`,
  REJECTED: (_, has) => `the servers are not keeping up, or the queue's length limit is too small (rabbitmqctl list_policies); retry later${has("retry") ? " (--retry)" : ""}`,
  CONNECTION_LOST: { "connection-lost": retry, "not-sent": retry },
  BROKER_REFUSED: {
    "deprecated-feature": (e) =>
      `fibrpc does not use it itself, so check the queue's policies and arguments, or permit the feature in rabbitmq.conf (deprecated_features.permit.${e.details.feature} = true)`,
    "set-up-refused": () => 'see docs/operations.md, "Broker versions"',
    "dead-letter-queue-differs": (e) => `delete it (rabbitmqctl delete_queue ${e.details.queue}) so that serve can declare it as a quorum queue`,
  },
};

/** The hint for an error met by `command` (any command if none is named), if there is one. */
export function hintFor(error: FibrpcError, command?: CommandName): string | undefined {
  const entry = HINTS[error.code];
  const hint = typeof entry === "function" ? entry : error.details.reason === undefined ? undefined : entry?.[error.details.reason];
  return hint?.(error, (flag) => takes(command, flag));
}

/** The line a user reads: what happened and why (the message), and what to do (the hint). */
export function withHint(error: FibrpcError, command?: CommandName): string {
  const hint = hintFor(error, command);
  return hint === undefined ? error.message : `${error.message}; ${hint}`;
}
