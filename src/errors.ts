/**
 * Every failure a user can meet, as a value with a code. Three tables say what a code means:
 * EXIT_FOR, the process's exit code; RETRYABLE, whether `call --retry` sends the call again
 * (FibrpcError.retryable, read by rpc/retry.ts); REFUSALS, whether it is a refusal that nothing
 * retries (FibrpcError.refusal: not call, not bench's reconnection, not serve at start-up). The
 * hint a user sees with it is added by the command that reports it (hints.ts).
 *
 * Exit codes follow BSD sysexits(3) (also used by Postfix, sendmail and many CLIs), so scripts
 * can tell "you called me wrong" (64) from "the service is not there" (69) from "try again" (75).
 * EXIT_CODES is that table: each code with its sysexits name and what it means, which the root
 * --help prints as it is (commands/_help.ts).
 */
export const EXIT_CODES = {
  OK: { code: 0, name: "OK", meaning: "every call answered (serve: drained cleanly after SIGTERM/SIGINT)" },
  USAGE: {
    code: 64,
    name: "EX_USAGE",
    meaning: "bad command line or configuration (unknown flag, invalid n, bad duration, malformed URL)",
  },
  BROKER_UNREACHABLE: {
    code: 68,
    name: "EX_NOHOST",
    meaning:
      "broker unreachable: connection refused, host not found, timed out (bench: still so at the end of the run)",
  },
  NO_SERVER: {
    code: 69,
    name: "EX_UNAVAILABLE",
    meaning: "no server: the request queue does not exist or has no consumer",
  },
  INTERNAL: {
    code: 70,
    name: "EX_SOFTWARE",
    meaning: "a bug in fibrpc (please report it); serve: a worker crashed repeatedly",
  },
  IO_ERROR: {
    code: 74,
    name: "EX_IOERR",
    meaning:
      "stdout could not be written (no space left, a device error: the results not written are lost) " +
      "or stdin read (call -: a directory, a read error)",
  },
  TEMPORARY: {
    code: 75,
    name: "EX_TEMPFAIL",
    meaning:
      "timed out, connection dropped, broker blocking publishers or queue full: retrying later may succeed " +
      "(bench: such failures, a run cut short; serve: drain timed out)",
  },
  REMOTE_ERROR: { code: 76, name: "EX_PROTOCOL", meaning: "the server answered with an error reply" },
  ACCESS_REFUSED: {
    code: 77,
    name: "EX_NOPERM",
    meaning:
      "the broker refused access: the login, the vhost (no permission, or no such vhost), " +
      "a permission on a queue or exchange, a reserved queue name (amq.)",
  },
  CONFIG: {
    code: 78,
    name: "EX_CONFIG",
    meaning:
      "the broker refuses what fibrpc needs (a limit reached, a queue locked or unusable as it is, " +
      "a deprecated feature), " +
      "or its TLS certificate is not trusted",
  },
  // A second signal during serve's drain: the shell's 128 + signal number, as if the signal had
  // killed it (the first one drains, see serve/supervisor.ts).
  SIGINT_AGAIN: {
    code: 130,
    name: "SIGINT",
    meaning:
      "serve: a second SIGINT during the drain stopped it at once; the requests in progress go back to the queue " +
      "(call, bench: SIGINT ended them early; what was done is printed)",
  },
  SIGTERM_AGAIN: {
    code: 143,
    name: "SIGTERM",
    meaning:
      "serve: a second SIGTERM during the drain stopped it at once; the requests in progress go back to the queue " +
      "(call, bench: SIGTERM ended them early; what was done is printed)",
  },
} as const;

/** The exit codes by name (ExitCode.USAGE is 64), from EXIT_CODES. */
export const ExitCode = Object.fromEntries(Object.entries(EXIT_CODES).map(([key, entry]) => [key, entry.code])) as {
  readonly [K in keyof typeof EXIT_CODES]: (typeof EXIT_CODES)[K]["code"];
};
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/**
 * When several calls of one `fibrpc call` end differently, the most severe exit code wins.
 * Order (most severe first): usage, I/O error, access refused, broker unreachable, config, no server,
 * temporary (timeout / connection lost), remote error, internal, ok.
 * Internal sits low on purpose: it is only chosen when nothing more telling happened.
 */
const SEVERITY: readonly ExitCode[] = [
  ExitCode.USAGE,
  ExitCode.IO_ERROR,
  ExitCode.ACCESS_REFUSED,
  ExitCode.BROKER_UNREACHABLE,
  ExitCode.CONFIG,
  ExitCode.NO_SERVER,
  ExitCode.TEMPORARY,
  ExitCode.REMOTE_ERROR,
  ExitCode.INTERNAL,
  ExitCode.OK,
];

export function mostSevere(codes: Iterable<ExitCode>): ExitCode {
  let best: ExitCode = ExitCode.OK;
  for (const code of codes) {
    if (SEVERITY.indexOf(code) < SEVERITY.indexOf(best)) best = code;
  }
  return best;
}

/** Codes of errors raised on the client side (the server's error codes live in rpc/error-codes.ts). */
export const ClientErrorCode = {
  USAGE: "USAGE",
  BROKER_UNREACHABLE: "BROKER_UNREACHABLE",
  ACCESS_REFUSED: "ACCESS_REFUSED",
  QUEUE_NOT_FOUND: "QUEUE_NOT_FOUND",
  NO_CONSUMER: "NO_CONSUMER",
  TIMEOUT: "TIMEOUT",
  BROKER_BLOCKED: "BROKER_BLOCKED",
  REJECTED: "REJECTED",
  CONNECTION_LOST: "CONNECTION_LOST",
  BROKER_REFUSED: "BROKER_REFUSED",
  TLS_REFUSED: "TLS_REFUSED",
  REMOTE_ERROR: "REMOTE_ERROR",
  IO_ERROR: "IO_ERROR",
  /** A call ended by a second SIGINT or SIGTERM (the run exits 130 or 143). */
  INTERRUPTED: "INTERRUPTED",
  INTERNAL: "INTERNAL",
} as const;
export type ClientErrorCode = (typeof ClientErrorCode)[keyof typeof ClientErrorCode];

const EXIT_FOR: Record<ClientErrorCode, ExitCode> = {
  USAGE: ExitCode.USAGE,
  BROKER_UNREACHABLE: ExitCode.BROKER_UNREACHABLE,
  ACCESS_REFUSED: ExitCode.ACCESS_REFUSED,
  QUEUE_NOT_FOUND: ExitCode.NO_SERVER,
  NO_CONSUMER: ExitCode.NO_SERVER,
  TIMEOUT: ExitCode.TEMPORARY,
  BROKER_BLOCKED: ExitCode.TEMPORARY,
  REJECTED: ExitCode.TEMPORARY,
  CONNECTION_LOST: ExitCode.TEMPORARY,
  BROKER_REFUSED: ExitCode.CONFIG,
  TLS_REFUSED: ExitCode.CONFIG,
  REMOTE_ERROR: ExitCode.REMOTE_ERROR,
  IO_ERROR: ExitCode.IO_ERROR,
  // The run's own exit code is the signal's (call/run.ts); this is the code of the one call.
  INTERRUPTED: ExitCode.TEMPORARY,
  INTERNAL: ExitCode.INTERNAL,
};

/** `call --retry` (rpc/retry.ts) sends such a call again; nothing else is retried. */
const RETRYABLE: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  "TIMEOUT",
  "CONNECTION_LOST",
  "BROKER_UNREACHABLE",
  // The queue was full (a nack): it may have room a moment later, as servers catch up.
  "REJECTED",
  // A resource alarm outlasted the attempt: it may clear before the call's deadline.
  "BROKER_BLOCKED",
]);

/**
 * The broker refuses (access, its configuration, its certificate) or the command line is wrong:
 * retrying cannot fix it, so nothing retries it — not `call --retry`, not bench's reconnection,
 * not serve at start-up.
 */
const REFUSALS: ReadonlySet<ClientErrorCode> = new Set<ClientErrorCode>([
  "USAGE",
  "ACCESS_REFUSED",
  "BROKER_REFUSED",
  "TLS_REFUSED",
]);

/**
 * Which case of a code an error is, where one code covers several that call for different
 * remedies (hints.ts picks the hint by it).
 */
export type ErrorReason =
  | "connection-refused"
  | "host-not-found"
  | "network"
  | "handshake"
  | "wrong-protocol"
  | "no-majority"
  | "queue-unresponsive"
  | "login"
  | "vhost"
  | "vhost-not-found"
  | "permission"
  | "reserved-name"
  | "limit"
  | "locked"
  | "precondition-failed"
  | "certificate"
  | "client-certificate"
  | "tls-handshake"
  | "reply-timed-out"
  | "connect-timed-out"
  | "not-confirmed"
  | "confirm-backlog"
  | "too-short"
  | "blocked"
  | "queue-full"
  | "wait-timed-out"
  | "server-gone"
  | "connection-lost"
  | "client-closed"
  | "answered-earlier"
  | "not-sent"
  | "no-server"
  | "deprecated-feature"
  | "set-up-refused"
  | "dead-letter-queue-differs"
  | "stream-queue"
  | "channel-max"
  | "consumer-timeout"
  | "write-stdout"
  | "read-stdin";

/** What an error is about, as data: for a caller to act on, and for the hint a command adds. */
export interface ErrorDetails {
  /** The TLS alert the broker sent about this client's certificate (TLS_REFUSED, client-certificate). */
  alert?: string;
  /** What a port of the wrong protocol answered in (wrong-protocol): TLS to amqp://, plain AMQP to amqps://. */
  speaks?: "tls" | "amqp";
  reason?: ErrorReason;
  /** The request queue (or, for dead-letter-queue-differs, the dead-letter queue). */
  queue?: string;
  /** The option that names `queue`, when it is not the request queue (call --reply-to's). */
  queueOption?: "reply-to";
  /** A pipeline's request (call --reply-to --no-wait): done once the broker has it, never sent again. */
  pipeline?: true;
  /** The call was sent again already (--retry): its hint does not suggest retrying. */
  retried?: true;
  /** bench: not sent, during an outage (bench/reconnect.ts), whose exit code stands for it. */
  outage?: true;
  /** The broker, as a display URL (password masked). */
  broker?: string;
  /** The time budget that ran out, in milliseconds. */
  timeoutMs?: number;
  /** The deprecated broker feature the broker denies. */
  feature?: string;
  /** Why the broker blocks publishers, in its own words (connection.blocked: "low on memory"). */
  blockedBecause?: string;
  /** The broker user and vhost a refusal is about (from the broker's words, else the URL). */
  user?: string;
  vhost?: string;
  /** The permission the broker refused (permission) or the broker limit reached (limit). */
  permission?: "configure" | "write" | "read";
  /** The queue or exchange the refused permission is about. */
  resource?: { kind: "queue" | "exchange" | "topic"; name: string };
  limit?: BrokerLimit;
  /**
   * With several broker URLs: this broker refused, and another of the list could not be reached
   * (down, restarting), so connecting again may still reach that one (rpc/retry.ts connectWithin).
   */
  anotherUnreachable?: true;
}

/** A limit the broker enforces: `rabbitmqctl set_vhost_limits` / `set_user_limits`, or the cluster's. */
export interface BrokerLimit {
  scope: "vhost" | "user" | "cluster" | "connection";
  /** The limit's key, as rabbitmqctl names it (channel_max: the connection's negotiated channel maximum). */
  key: "max-connections" | "max-channels" | "max-queues" | "channel_max";
}

/**
 * An error with a code. `message` is one line saying what happened and why, and nothing about
 * the command line: the code and `details` say the rest, and whoever reports it adds what to do
 * (hints.ts), so that the core (rpc/) stays usable as a library.
 */
export class FibrpcError extends Error {
  override readonly name = "FibrpcError";
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    readonly details: Readonly<ErrorDetails> = {},
  ) {
    super(message);
  }
  get exitCode(): ExitCode {
    return EXIT_FOR[this.code];
  }
  /** Sending the same request again may succeed (see RETRYABLE). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
  /** Retrying cannot fix it (see REFUSALS). */
  get refusal(): boolean {
    return REFUSALS.has(this.code);
  }
}

export function usageError(message: string): FibrpcError {
  return new FibrpcError("USAGE", message);
}

/** The message of anything thrown, for a log line. */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
