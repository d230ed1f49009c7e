/**
 * Every option of every command, declared once: its flag (the key), default, value hint, help text and
 * parser. Its environment variable, also its key in a --config file, is derived from the flag (--max-n is
 * FIBRPC_MAX_N), as clap and urfave/cli derive theirs, so the two cannot drift apart. The table feeds, in one
 * direction: the scan of the command line (options-scan.ts), the resolution flag > environment > config file
 * > default (options-resolve.ts), --help (commands/_help.ts) and shell completion (completion/). citty's
 * command records hold only the operands. The README's options table is checked against it row by row.
 */
import { availableParallelism } from "node:os";
import { parseNOption, parseRate } from "./bench/stats.ts";
import { parseBrokerUrls, type BrokerUrl } from "./broker-url.ts";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_PREFETCH,
  DEFAULT_QUEUE,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_URL,
  envNameOf,
  formatDuration,
  MAX_MAX_N,
  parseDuration,
  parseHost,
  parseSwitch,
  parseWholeNumber,
} from "./config.ts";
import { usageError } from "./errors.ts";
import { LOG_FORMATS, LOG_LEVELS } from "./log.ts";
import { maskSecrets } from "./mask.ts";
import type { ReplyQueueMode } from "./rpc/client.ts";
import { HEAVY_N } from "./rpc/delivery.ts";
import { DEFAULT_MAX_N } from "./rpc/protocol.ts";
import { QUEUE_TYPES, queueNameProblem } from "./rpc/queue.ts";
import { STATUS_HEARTBEAT_MS } from "./serve/status.ts";
import { otlpEndpointProblem } from "./tracing/settings.ts";
import { quote } from "./printable.ts";

export const COMMANDS = ["serve", "call", "bench", "health", "completion"] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Where a value came from: a flag, the environment, the --config file, or the default. */
export type Source = "flag" | "env" | "file" | "default";
/** How near to the command a source is: the nearer wins where two options exclude each other. */
export const NEARNESS: Readonly<Record<Source, number>> = { default: 0, file: 1, env: 2, flag: 3 };

/** What a parser is told about the value it reads. */
export interface ValueAt {
  /** The flag without its dashes, e.g. "max-n" (messages name the option by it). */
  flag: string;
  env: string;
  /** The source, as messages name it: "--url", "FIBRPC_URL", "FIBRPC_URL in the --config file", "default". */
  where: string;
}

export interface OptionDef<T> {
  /** Derived from the flag (envNameOf); also its key in a --config file. */
  env: string;
  /** "switch": on/off, given without a value (--json, --no-json); "value": takes one. */
  kind: "value" | "switch";
  /** A one-letter form for the common options (-w for --workers), read by the same scan. */
  short?: string;
  /** What the value looks like, in --help and in "needs a value" errors. */
  valueHint?: string;
  /** The only values it takes, when they are a fixed set (shell completion offers them). */
  choices?: readonly string[];
  /** Help text, or one per command where the option means something different to each. */
  help: string | { readonly [C in CommandName]?: string };
  /** The default as text, read by `parse` like any other value; a function if computed at run time. */
  default?: string | (() => string);
  /** How --help and the README show the default when it is not a value to quote ("number of CPUs", "off"). */
  defaultText?: string;
  /** The default of the container image (its Dockerfile's ENV). */
  imageDefault?: string;
  /** False for --config itself: a config file cannot name another one. */
  inFile?: false;
  /** Only --url: may be given several times, every value kept in order. */
  repeatable?: true;
  /** Value text → typed value, or a usage error. */
  parse(text: string, at: ValueAt): T;
  /** Every value of a repeated flag at once (repeatable options only). */
  parseAll?(values: readonly { text: string; where: string }[]): T;
}

/** A record as the table writes it: the variable is added from the key, the kind by the helpers below. */
type Spec<T> = Omit<OptionDef<T>, "env" | "kind">;
type Written<T> = Omit<OptionDef<T>, "env">;

type Default = { default: string | (() => string) };
const withDefault = <T>(spec: Spec<T> & Default): Written<T> => ({ kind: "value", ...spec });
const optional = <T>(spec: Spec<T> & { defaultText: string }): Written<T | undefined> => ({ kind: "value", ...spec });
function onOff(spec: { short?: string; help: OptionDef<boolean>["help"] }): Written<boolean> {
  // Named by where the value came from: FIBRPC_JSON, or FIBRPC_JSON in the --config file (a flag takes no value).
  const parse = (text: string, at: ValueAt) => parseSwitch(at.where, text);
  return { ...spec, kind: "switch", default: "false", defaultText: "off", parse };
}

// Parsers shared by several options.
const text = (value: string): string => value;
const duration = (value: string, at: ValueAt): number => parseDuration(at.flag, value);
const whole =
  (min: number, max?: number) =>
  (value: string, at: ValueAt): number =>
    parseWholeNumber(at.flag, value, min, max);
/** The kinds of value most options take: each its hint (--help, "needs a value" errors) with its parser. */
const FILE = { valueHint: "file", parse: text };
const DURATION = { valueHint: "duration", parse: duration };
const count = (min: number, max?: number) => ({ valueHint: "count", parse: whole(min, max) });
/** A value from a fixed set: its hint, its parser and the set (for shell completion), from one list. */
function choiceOf<const V extends string>(values: readonly V[], say = `one of ${values.join(", ")}`) {
  const parse = (value: string, at: ValueAt): V => {
    if ((values as readonly string[]).includes(value)) return value as V;
    throw usageError(`--${at.flag} must be ${say}, got ${quote(value)}`);
  };
  return { valueHint: values.join("|"), choices: values, parse };
}
function brokerUrls(values: readonly { text: string; where: string }[]): readonly BrokerUrl[] {
  // Their secrets are masked in every line of the run (commands/_run.ts builds its Masker from them).
  return Object.freeze(parseBrokerUrls(values.map((v) => ({ text: v.text, source: v.where }))));
}

/** The table's records with their variable, derived from the key. */
function named<T extends Record<string, Written<unknown>>>(
  specs: T,
): { readonly [K in keyof T]: T[K] & { env: string } } {
  const entries = Object.entries(specs).map(([flag, spec]) => [flag, { ...spec, env: envNameOf(flag) }]);
  return Object.fromEntries(entries);
}

const REPLY_QUEUE_MODES: readonly ReplyQueueMode[] = ["direct", "exclusive"];

export const OPTIONS = named({
  // The broker, for serve, call and bench.
  url: withDefault({
    valueHint: "amqp-url[,amqp-url...]",
    help:
      "Broker URL amqp[s]://user:password@host:port/vhost (percent-encode @ : / , # % and space in the password); " +
      "several (repeated, or comma-separated) are tried in order, with failover",
    default: DEFAULT_URL,
    repeatable: true,
    parse: (value, at) => brokerUrls([{ text: value, where: at.where }]),
    parseAll: brokerUrls,
  }),
  queue: withDefault({
    valueHint: "name",
    help: "Request queue",
    default: DEFAULT_QUEUE,
    parse: (value) => {
      const problem = queueNameProblem(value);
      if (problem !== undefined) throw usageError(`--queue ${problem}`);
      return value;
    },
  }),
  "tls-ca": optional({
    ...FILE,
    // Measured with Bun 1.4.5 (test/integration/tls-default-ca.test.ts): without `ca`, Bun trusts
    // its built-in Mozilla roots plus OpenSSL's default locations (SSL_CERT_FILE, SSL_CERT_DIR,
    // else /etc/ssl/certs), and NODE_EXTRA_CA_CERTS; with `ca`, that CA alone. The image, FROM
    // scratch, has no /etc/ssl: there the built-in roots are all.
    help:
      "PEM CA certificate(s) to verify an amqps:// broker with, then the only ones trusted. " +
      "The system's CAs are those of SSL_CERT_FILE, SSL_CERT_DIR or /etc/ssl/certs (none in the container image); " +
      "NODE_EXTRA_CA_CERTS adds to the default",
    defaultText: "Bun's built-in Mozilla roots + system CAs",
  }),
  "tls-cert": optional({ ...FILE, help: "PEM client certificate, for brokers that require one", defaultText: "none" }),
  "tls-key": optional({ ...FILE, help: "PEM private key of --tls-cert", defaultText: "none" }),
  // Logs and the config file, for every command.
  "log-level": withDefault({ ...choiceOf(LOG_LEVELS), help: "Log level on stderr", default: "info" }),
  "log-format": withDefault({
    ...choiceOf(LOG_FORMATS),
    help: "pretty: one line of text per entry; json: one JSON object per line",
    default: "pretty",
  }),
  config: optional({
    ...FILE,
    help:
      "File of FIBRPC_*=value lines (dotenv format), below flags and environment; " +
      "any command's variables may be in it, any other key is an error",
    defaultText: "none",
    inFile: false,
  }),
  // Tracing, for serve, call and bench: the OTEL_* variables are read too (env-settings.ts).
  "otlp-endpoint": optional({
    valueHint: "url",
    help:
      "Send traces to this OpenTelemetry collector's OTLP/HTTP endpoint, e.g. http://otel-collector:4318 " +
      "(/v1/traces appended, unless the URL ends in it), instead of OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT; " +
      "the other OTEL_* variables apply",
    defaultText: "off, unless OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT is set",
    parse: (value, at) => {
      const problem = otlpEndpointProblem(value);
      if (problem !== undefined) throw usageError(`--${at.flag}: ${problem}`);
      return value;
    },
  }),
  // serve
  workers: withDefault({
    ...count(1, 256),
    short: "w",
    help: "Bun Workers in this process, each with its own connection and consumer",
    default: () => String(availableParallelism()),
    defaultText: "number of CPUs",
  }),
  prefetch: withDefault({
    ...count(1, 65_535),
    help:
      `Unacknowledged requests the broker may push to each worker; ` +
      `while computing a heavy request (n ≥ ${HEAVY_N}) a worker takes no new ones; ` +
      `1 is the tutorial's strict fair dispatch`,
    default: String(DEFAULT_PREFETCH),
  }),
  "max-n": withDefault({
    valueHint: "n",
    help: `Largest n this server computes (at most ${MAX_MAX_N}); larger requests get an N_TOO_LARGE error reply`,
    default: String(DEFAULT_MAX_N),
    parse: whole(0, MAX_MAX_N),
  }),
  "queue-type": withDefault({
    ...choiceOf(QUEUE_TYPES),
    help:
      "classic: durable (an existing queue, e.g. the tutorial's, is joined as it is); " +
      "quorum: durable and replicated, for clusters",
    default: "classic",
  }),
  "drain-timeout": withDefault({
    ...DURATION,
    help:
      "On SIGTERM/SIGINT, how long to finish requests in progress before stopping anyway: " +
      "exit 0 once drained, 75 if this ran out (the unfinished requests go back to the queue); " +
      "a second SIGINT/SIGTERM stops at once, exit 130/143",
    default: formatDuration(DEFAULT_DRAIN_TIMEOUT_MS),
  }),
  "http-port": optional({
    valueHint: "port",
    help: "Serve /metrics (Prometheus), /healthz and /readyz on this port",
    defaultText: "off",
    parse: whole(1, 65_535),
  }),
  "http-host": withDefault({
    valueHint: "address",
    help: "Address --http-port listens on; 0.0.0.0 for every interface",
    default: "127.0.0.1",
    imageDefault: "0.0.0.0",
    parse: (value, at) => parseHost(at.flag, value),
  }),
  "status-file": optional({
    valueHint: "path",
    help: {
      serve:
        "Keep this file up to date with the workers' state, for `fibrpc health`; " +
        "one serve per file (refused, exit 64, while another running serve keeps it)",
      health: "The file `fibrpc serve --status-file` keeps up to date",
    },
    defaultText: "none",
    imageDefault: "/tmp/fibrpc-status.json",
    parse: text,
  }),
  // call and bench
  timeout: withDefault({
    ...DURATION,
    short: "t",
    help: { call: "Give up on a call after this long, e.g. 500ms, 5s, 2m", bench: "Per-call timeout" },
    default: formatDuration(DEFAULT_TIMEOUT_MS),
  }),
  json: onOff({
    short: "j",
    help: {
      call:
        "Print one JSON object per n, in order, whatever the outcome: " +
        '{"n", "result" (a string), "ms"}, or {"n", "error": {code, message}, "ms"}, "ms" counted from sending ' +
        "the request (connecting not included); none for a usage error (exit 64)",
      bench:
        'Print the summary as one JSON object, or {"error": {code, message}} when the run could not start; ' +
        "none for a usage error (exit 64)",
    },
  }),
  // call
  "reply-queue": withDefault({
    ...choiceOf(REPLY_QUEUE_MODES, "direct or exclusive"),
    help: "direct: RabbitMQ Direct Reply-to (no queue declared); exclusive: the tutorial's exclusive callback queue",
    default: "direct",
  }),
  retry: withDefault({
    ...count(0, 100),
    // One budget, not one per attempt: a user's --timeout is how long the command may take
    // (rpc/retry.ts spreads the attempts over it).
    help:
      "Send a call again, up to this many times, " +
      "after a timeout, a lost connection, an unreachable broker, " +
      "a full queue (REJECTED) or a blocked broker (BROKER_BLOCKED) (same correlation id). " +
      "--timeout bounds the whole call: " +
      "its attempts share it, each twice as long as the one before " +
      "(--retry 3: 1/15, 2/15, 4/15, 8/15 of it; the first at least 1 s if the timeout allows), " +
      "a lost connection reopened within it. " +
      "Refusals and error replies are not retried",
    default: "0",
  }),
  "in-flight": withDefault({
    ...count(1, 100_000),
    help:
      "call -: calls kept in flight while reading stdin " +
      "(results are printed in input order through a window of twice as many)",
    default: "100",
  }),
  unordered: onOff({
    help: "call -: print each result as it comes back, naming its n (`30 832040`), instead of in input order",
  }),
  "reply-to": optional({
    valueHint: "queue",
    help:
      "With --no-wait: the replies go to this queue (declared durable if missing), for another program to " +
      "consume; each reply is JSON with its n, and carries the request's correlation id",
    defaultText: "none",
    parse: (value) => {
      if (value === "" || Buffer.byteLength(value, "utf8") > 255)
        throw usageError("--reply-to must be a queue name of 1 to 255 bytes (UTF-8)");
      const problem = queueNameProblem(value);
      if (problem !== undefined) throw usageError(`--reply-to ${problem}`);
      // amq.rabbitmq.reply-to is Direct Reply-to, whose replies die with this caller, which does not
      // wait for them; any other amq.* name is reserved by the broker and cannot be declared.
      if (value.startsWith("amq."))
        throw usageError(
          `--reply-to ${quote(value)}: names that begin with "amq." are the broker's ` +
            "(amq.rabbitmq.reply-to is Direct Reply-to, for a caller that waits); name a queue of your own",
        );
      return value;
    },
  }),
  "no-wait": onOff({
    help: "With --reply-to: exit once the broker has confirmed every request, without waiting for replies",
  }),
  "wait-for-server": onOff({
    help: "If the request queue has no consumer yet, wait (up to --timeout) for one instead of failing at once",
  }),
  // bench
  concurrency: withDefault({ ...count(1, 100_000), short: "c", help: "Calls kept in flight", default: "100" }),
  // -r, not ab's -n: -n is --n (the n of fib), since a short flag whose letter names another
  // long option is a trap (`bench -n 30` would mean 30 calls, `bench --n 30` fib(30)).
  requests: withDefault({
    ...count(1),
    short: "r",
    help: "Stop after this many calls, unless --duration is given",
    default: "10000",
  }),
  duration: optional({ ...DURATION, help: "Stop after this long instead, e.g. 10s", defaultText: "none" }),
  rate: optional({
    valueHint: "calls/s",
    help:
      "Open loop: start calls at this fixed rate whatever the server does, " +
      "latency measured from each call's intended start (a stall shows); " +
      "at most --concurrency in flight if given, else 10000, a call due beyond that is counted as missed",
    defaultText: "off",
    parse: parseRate,
  }),
  n: withDefault({
    short: "n",
    valueHint: "n|min-max",
    help:
      `n of every call, or a range to draw from uniformly (256 values spread over it), e.g. 1000-2000; ` +
      `at most ${MAX_MAX_N}, and a server answers n above its --max-n with N_TOO_LARGE`,
    default: "1",
    parse: parseNOption,
  }),
  // health
  "max-age": withDefault({
    valueHint: "duration",
    help:
      "How old the status may be before serve counts as stuck " +
      `(serve rewrites it every ${formatDuration(STATUS_HEARTBEAT_MS)})`,
    default: formatDuration(3 * STATUS_HEARTBEAT_MS),
    // Shorter than serve's rewrite (and a second of slack) would call a healthy serve stuck half the time.
    parse: (value, at) =>
      parseDuration(at.flag, value, {
        ms: STATUS_HEARTBEAT_MS + 1_000,
        why:
          `serve rewrites its status every ${formatDuration(STATUS_HEARTBEAT_MS)}, ` +
          "so a shorter one calls a healthy serve stuck",
      }),
  }),
});

export type OptionName = keyof typeof OPTIONS;

const SERVE = ["workers", "prefetch", "max-n", "queue-type", "drain-timeout", "http-port", "http-host"] as const;
const BROKER = ["url", "queue", "tls-ca", "tls-cert", "tls-key"] as const;
const LOGS = ["log-level", "log-format", "config"] as const;

/** The options each command takes, in the order --help lists them. */
export const COMMAND_OPTIONS = {
  serve: [...SERVE, "status-file", ...BROKER, "otlp-endpoint", ...LOGS],
  call: [
    "timeout",
    "json",
    "reply-queue",
    "retry",
    "in-flight",
    "unordered",
    "reply-to",
    "no-wait",
    "wait-for-server",
    ...BROKER,
    "otlp-endpoint",
    ...LOGS,
  ],
  bench: [
    "concurrency",
    "requests",
    "duration",
    "rate",
    "n",
    "timeout",
    "json",
    "reply-queue",
    ...BROKER,
    "otlp-endpoint",
    ...LOGS,
  ],
  health: ["status-file", "max-age", "config"],
  completion: [],
} as const satisfies Record<CommandName, readonly OptionName[]>;

type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type ValueOf<D> = D extends Written<infer T> ? T : never;
type NamesOf<C extends CommandName> = (typeof COMMAND_OPTIONS)[C][number];

/** A command's options, resolved: one typed value per option, and where each came from. */
export type Options<C extends CommandName> = {
  readonly [N in NamesOf<C> as Camel<N>]: ValueOf<(typeof OPTIONS)[N]>;
} & {
  readonly from: { readonly [N in NamesOf<C> as Camel<N>]: Source };
};

export function camelName(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

export function optionOf(name: OptionName): OptionDef<unknown> {
  return OPTIONS[name];
}

/** The options `command` takes. */
export function optionsOf(command: CommandName): readonly OptionName[] {
  return COMMAND_OPTIONS[command];
}

/** Whether `command` takes the option `flag`; any command if none is named. */
export function takes(command: CommandName | undefined, flag: string): boolean {
  return command === undefined ? flag in OPTIONS : (optionsOf(command) as readonly string[]).includes(flag);
}

/** The default as --help and the README show it, e.g. "30s", "number of CPUs", "off". */
export function defaultShown(name: OptionName): string | undefined {
  const option = optionOf(name);
  if (option.defaultText !== undefined) return option.defaultText;
  return typeof option.default === "function" ? option.default() : option.default;
}

/** The help line of an option in `command`'s --help: text, variable, default (passwords masked). */
export function helpOf(name: OptionName, command: CommandName): string {
  const option = optionOf(name);
  const help = typeof option.help === "string" ? option.help : option.help[command];
  if (help === undefined) throw new Error(`option --${name} has no help text for ${command}`);
  const shown = defaultShown(name);
  const image = option.imageDefault === undefined ? "" : `; ${option.imageDefault} in the container image`;
  return maskSecrets(`${help} [env ${option.env}]${shown === undefined ? "" : ` (default: ${shown}${image})`}`);
}

/** The short form of `name` in --help and the README: "-w", or undefined. */
export function shortOf(name: OptionName): string | undefined {
  const short = optionOf(name).short;
  return short === undefined ? undefined : `-${short}`;
}
