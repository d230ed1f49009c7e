/**
 * Every option of every command, declared once: its flag (the key), environment variable,
 * default, value hint, help text and parser. From this table come
 * - citty's argument definitions of each command (argsOf), which list the options it takes;
 * - the text of --help, with the variable and the default taken from the same record the code
 *   resolves, so that help and code cannot disagree (helpOf);
 * - the strict reading of the command line (scanFlags), short flags (-w) included;
 * - a command's options, resolved flag > environment > config file > default into one typed,
 *   frozen object (resolveOptions), the config file read once and passed in as a value.
 * The README's options table is checked against it row by row (test/unit/options.test.ts).
 */
import { availableParallelism } from "node:os";
import type { ArgsDef } from "citty";
import { parseNSpec } from "./bench/stats.ts";
import { ordinal, parseBrokerUrls, type BrokerUrl } from "./broker-url.ts";
import {
  DEFAULT_DRAIN_TIMEOUT_MS,
  DEFAULT_PREFETCH,
  DEFAULT_QUEUE,
  DEFAULT_TIMEOUT_MS,
  DEFAULT_URL,
  formatDuration,
  MAX_MAX_N,
  parseDuration,
  parseHost,
  parseSwitch,
  parseWholeNumber,
  readConfigFile,
  type ConfigKeys,
} from "./config.ts";
import { usageError, type FibrpcError } from "./errors.ts";
import { LOG_FORMATS, LOG_LEVELS } from "./log.ts";
import { maskSecrets } from "./mask.ts";
import type { ReplyQueueMode } from "./rpc/client.ts";
import { HEAVY_N } from "./rpc/delivery.ts";
import { DEFAULT_MAX_N } from "./rpc/protocol.ts";
import { QUEUE_TYPES } from "./rpc/queue.ts";
import { STATUS_HEARTBEAT_MS } from "./serve/status.ts";
import { closest } from "./suggest.ts";

export const COMMANDS = ["serve", "call", "bench", "health", "completion"] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Where a value came from: a flag, the environment, the --config file, or the default. */
export type Source = "flag" | "env" | "file" | "default";

/** What a parser is told about the value it reads. */
export interface ValueAt {
  /** The flag without its dashes, e.g. "max-n" (messages name the option by it). */
  flag: string;
  env: string;
  /** The source, as messages name it: "--url", "FIBRPC_URL", "FIBRPC_URL in the --config file", "default". */
  where: string;
}

export interface OptionDef<T> {
  /** Its environment variable, also its name in a --config file. */
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

function withDefault<T>(def: OptionDef<T> & { default: string | (() => string) }): OptionDef<T> {
  return def;
}
function optional<T>(def: OptionDef<T> & { defaultText: string }): OptionDef<T | undefined> {
  return def;
}
function onOff(def: { env: string; short?: string; help: OptionDef<boolean>["help"] }): OptionDef<boolean> {
  return { ...def, kind: "switch", default: "false", defaultText: "off", parse: (text, at) => parseSwitch(at.env, text) };
}

// Parsers shared by several options.
const text = (value: string): string => value;
const duration = (value: string, at: ValueAt): number => parseDuration(at.flag, value);
const whole =
  (min: number, max?: number) =>
  (value: string, at: ValueAt): number =>
    parseWholeNumber(at.flag, value, min, max);
function oneOf<const V extends string>(values: readonly V[], say = `one of ${values.join(", ")}`) {
  return (value: string, at: ValueAt): V => {
    if ((values as readonly string[]).includes(value)) return value as V;
    throw usageError(`--${at.flag} must be ${say}, got ${JSON.stringify(value)}`);
  };
}
/** A value from a fixed set: its hint, its parser and the set (for shell completion), from one list. */
function choiceOf<const V extends string>(values: readonly V[], say?: string) {
  return { valueHint: values.join("|"), choices: values, parse: oneOf(values, say) };
}
function brokerUrls(values: readonly { text: string; where: string }[]): readonly BrokerUrl[] {
  // Their secrets are masked in every line of the run (commands/_run.ts builds its Masker from them).
  return Object.freeze(parseBrokerUrls(values.map((v) => ({ text: v.text, source: v.where }))));
}

const REPLY_QUEUE_MODES: readonly ReplyQueueMode[] = ["direct", "exclusive"];

export const OPTIONS = {
  // The broker, for serve, call and bench.
  url: withDefault({
    env: "FIBRPC_URL",
    kind: "value",
    valueHint: "amqp-url[,amqp-url...]",
    help: "Broker URL amqp[s]://user:password@host:port/vhost (percent-encode @ : / , # % and space in the password); several (repeated, or comma-separated) are tried in order, with failover",
    default: DEFAULT_URL,
    repeatable: true,
    parse: (value, at) => brokerUrls([{ text: value, where: at.where }]),
    parseAll: brokerUrls,
  }),
  queue: withDefault({
    env: "FIBRPC_QUEUE",
    kind: "value",
    valueHint: "name",
    help: "Request queue",
    default: DEFAULT_QUEUE,
    parse: (value) => {
      if (Buffer.byteLength(value, "utf8") > 255) throw usageError("--queue must be at most 255 bytes long (UTF-8)");
      return value;
    },
  }),
  "tls-ca": optional({
    env: "FIBRPC_TLS_CA",
    kind: "value",
    valueHint: "file",
    // Measured with Bun 1.4.5 (test/integration/tls-default-ca.test.ts): without `ca`, Bun trusts
    // its built-in Mozilla roots plus OpenSSL's default locations (SSL_CERT_FILE, SSL_CERT_DIR,
    // else /etc/ssl/certs), and NODE_EXTRA_CA_CERTS; with `ca`, that CA alone. The image, FROM
    // scratch, has no /etc/ssl: there the built-in roots are all.
    help: "PEM CA certificate(s) to verify an amqps:// broker with, then the only ones trusted. The system's CAs are those of SSL_CERT_FILE, SSL_CERT_DIR or /etc/ssl/certs (none in the container image); NODE_EXTRA_CA_CERTS adds to the default",
    defaultText: "Bun's built-in Mozilla roots + system CAs",
    parse: text,
  }),
  "tls-cert": optional({ env: "FIBRPC_TLS_CERT", kind: "value", valueHint: "file", help: "PEM client certificate, for brokers that require one", defaultText: "none", parse: text }),
  "tls-key": optional({ env: "FIBRPC_TLS_KEY", kind: "value", valueHint: "file", help: "PEM private key of --tls-cert", defaultText: "none", parse: text }),
  // Logs and the config file, for every command.
  "log-level": withDefault({ env: "FIBRPC_LOG_LEVEL", kind: "value", ...choiceOf(LOG_LEVELS), help: "Log level on stderr", default: "info" }),
  "log-format": withDefault({
    env: "FIBRPC_LOG_FORMAT",
    kind: "value",
    ...choiceOf(LOG_FORMATS),
    help: "pretty: one line of text per entry; json: one JSON object per line",
    default: "pretty",
  }),
  config: optional({
    env: "FIBRPC_CONFIG",
    kind: "value",
    valueHint: "file",
    help: "File of FIBRPC_*=value lines (dotenv format), below flags and environment; any command's variables may be in it, any other key is an error",
    defaultText: "none",
    inFile: false,
    parse: text,
  }),
  // serve
  workers: withDefault({
    env: "FIBRPC_WORKERS",
    kind: "value",
    short: "w",
    valueHint: "count",
    help: "Bun Workers in this process, each with its own connection and consumer",
    default: () => String(availableParallelism()),
    defaultText: "number of CPUs",
    parse: whole(1, 256),
  }),
  prefetch: withDefault({
    env: "FIBRPC_PREFETCH",
    kind: "value",
    valueHint: "count",
    help: `Unacknowledged requests the broker may push to each worker; while computing a heavy request (n ≥ ${HEAVY_N}) a worker takes no new ones; 1 is the tutorial's strict fair dispatch`,
    default: String(DEFAULT_PREFETCH),
    parse: whole(1, 65_535),
  }),
  "max-n": withDefault({
    env: "FIBRPC_MAX_N",
    kind: "value",
    valueHint: "n",
    help: `Largest n this server computes (at most ${MAX_MAX_N}); larger requests get an N_TOO_LARGE error reply`,
    default: String(DEFAULT_MAX_N),
    parse: whole(0, MAX_MAX_N),
  }),
  "queue-type": withDefault({
    env: "FIBRPC_QUEUE_TYPE",
    kind: "value",
    ...choiceOf(QUEUE_TYPES),
    help: "classic: durable (an existing queue, e.g. the tutorial's, is joined as it is); quorum: durable and replicated, for clusters",
    default: "classic",
  }),
  "drain-timeout": withDefault({
    env: "FIBRPC_DRAIN_TIMEOUT",
    kind: "value",
    valueHint: "duration",
    help: "On SIGTERM/SIGINT, how long to finish requests in progress before stopping anyway: exit 0 once drained, 75 if this ran out (the unfinished requests go back to the queue); a second SIGINT/SIGTERM stops at once, exit 130/143",
    default: formatDuration(DEFAULT_DRAIN_TIMEOUT_MS),
    parse: duration,
  }),
  "http-port": optional({ env: "FIBRPC_HTTP_PORT", kind: "value", valueHint: "port", help: "Serve /metrics (Prometheus), /healthz and /readyz on this port", defaultText: "off", parse: whole(1, 65_535) }),
  "http-host": withDefault({
    env: "FIBRPC_HTTP_HOST",
    kind: "value",
    valueHint: "address",
    help: "Address --http-port listens on; 0.0.0.0 for every interface",
    default: "127.0.0.1",
    imageDefault: "0.0.0.0",
    parse: (value, at) => parseHost(at.flag, value),
  }),
  "status-file": optional({
    env: "FIBRPC_STATUS_FILE",
    kind: "value",
    valueHint: "path",
    help: {
      serve: "Keep this file up to date with the workers' state, for `fibrpc health`; one serve per file (refused, exit 64, while another running serve keeps it)",
      health: "The file `fibrpc serve --status-file` keeps up to date",
    },
    defaultText: "none",
    imageDefault: "/tmp/fibrpc-status.json",
    parse: text,
  }),
  // call and bench
  timeout: withDefault({
    env: "FIBRPC_TIMEOUT",
    kind: "value",
    short: "t",
    valueHint: "duration",
    help: { call: "Give up on a call after this long, e.g. 500ms, 5s, 2m", bench: "Per-call timeout" },
    default: formatDuration(DEFAULT_TIMEOUT_MS),
    parse: duration,
  }),
  json: onOff({
    env: "FIBRPC_JSON",
    short: "j",
    help: {
      call: 'Print one JSON object per n, in order, whatever the outcome: {"n", "result" (a string), "ms"}, or {"n", "error": {code, message}, "ms"}; none for a usage error (exit 64)',
      bench: "Print the summary as one JSON object",
    },
  }),
  // call
  "reply-queue": withDefault({
    env: "FIBRPC_REPLY_QUEUE",
    kind: "value",
    ...choiceOf(REPLY_QUEUE_MODES, "direct or exclusive"),
    help: "direct: RabbitMQ Direct Reply-to (no queue declared); exclusive: the tutorial's exclusive callback queue",
    default: "direct",
  }),
  retry: withDefault({
    env: "FIBRPC_RETRY",
    kind: "value",
    valueHint: "count",
    // One budget, not one per attempt: a user's --timeout is how long the command may take
    // (rpc/retry.ts spreads the attempts over it).
    help: "Send a call again, up to this many times, after a timeout, a lost connection, an unreachable broker, a full queue (REJECTED) or a blocked broker (BROKER_BLOCKED) (same correlation id). --timeout bounds the whole call: its attempts share it, each twice as long as the one before (--retry 3: 1/15, 2/15, 4/15, 8/15 of it), a lost connection reopened within it. Refusals and error replies are not retried",
    default: "0",
    parse: whole(0, 100),
  }),
  "wait-for-server": onOff({ env: "FIBRPC_WAIT_FOR_SERVER", help: "If the request queue has no consumer yet, wait (up to --timeout) for one instead of failing at once" }),
  // bench
  concurrency: withDefault({ env: "FIBRPC_CONCURRENCY", kind: "value", short: "c", valueHint: "count", help: "Calls kept in flight", default: "100", parse: whole(1, 100_000) }),
  // -r, not ab's -n: -n is --n (the n of fib), since a short flag whose letter names another
  // long option is a trap (`bench -n 30` would mean 30 calls, `bench --n 30` fib(30)).
  requests: withDefault({ env: "FIBRPC_REQUESTS", kind: "value", short: "r", valueHint: "count", help: "Stop after this many calls, unless --duration is given", default: "10000", parse: whole(1) }),
  duration: optional({ env: "FIBRPC_DURATION", kind: "value", valueHint: "duration", help: "Stop after this long instead, e.g. 10s", defaultText: "none", parse: duration }),
  rate: optional({
    env: "FIBRPC_RATE",
    kind: "value",
    valueHint: "calls/s",
    help: "Open loop: start calls at this fixed rate whatever the server does, latency measured from each call's intended start (a stall shows); at most --concurrency in flight if given, else 10000, a call due beyond that is counted as missed",
    defaultText: "off",
    parse: (value, at) => {
      const rate = /^\s*\d+(?:\.\d+)?\s*$/.test(value) ? Number(value) : Number.NaN;
      if (!(rate > 0 && rate <= 1_000_000)) throw usageError(`--${at.flag} must be a number of calls per second above 0 and at most 1000000, got ${JSON.stringify(value)}`);
      return rate;
    },
  }),
  n: withDefault({
    env: "FIBRPC_N",
    kind: "value",
    short: "n",
    valueHint: "n|min-max",
    help: `n of every call, or a range to draw from uniformly (256 values spread over it), e.g. 1000-2000; at most ${MAX_MAX_N}, and a server answers n above its --max-n with N_TOO_LARGE`,
    default: "1",
    parse: (value) => {
      const range = parseNSpec(value);
      if (!range) throw usageError(`--n must be a number or a range like 10-20, got ${JSON.stringify(value)}`);
      // The server decides what it computes (serve --max-n; above it, N_TOO_LARGE replies), but
      // bench computes every expected answer itself before the run: up to the largest --max-n
      // any fibrpc server takes, not beyond (fib of a much larger n would never finish).
      if (range.max > MAX_MAX_N) throw usageError(`--n must be at most ${MAX_MAX_N} (the largest serve --max-n), got ${range.max}`);
      return { ...range, text: value };
    },
  }),
  // health
  "max-age": withDefault({
    env: "FIBRPC_MAX_AGE",
    kind: "value",
    valueHint: "duration",
    help: "How old the status may be before serve counts as stuck",
    default: formatDuration(3 * STATUS_HEARTBEAT_MS),
    parse: duration,
  }),
} as const satisfies Record<string, OptionDef<unknown>>;

export type OptionName = keyof typeof OPTIONS;

const BROKER = ["url", "queue", "tls-ca", "tls-cert", "tls-key"] as const;
const LOGS = ["log-level", "log-format", "config"] as const;

/** The options each command takes, in the order --help lists them. */
export const COMMAND_OPTIONS = {
  serve: ["workers", "prefetch", "max-n", "queue-type", "drain-timeout", "http-port", "http-host", "status-file", ...BROKER, ...LOGS],
  call: ["timeout", "json", "reply-queue", "retry", "wait-for-server", ...BROKER, ...LOGS],
  bench: ["concurrency", "requests", "duration", "rate", "n", "timeout", "json", ...BROKER, ...LOGS],
  health: ["status-file", "max-age", "config"],
  completion: [],
} as const satisfies Record<CommandName, readonly OptionName[]>;

type Camel<S extends string> = S extends `${infer A}-${infer B}` ? `${A}${Capitalize<Camel<B>>}` : S;
type ValueOf<D> = D extends OptionDef<infer T> ? T : never;
type NamesOf<C extends CommandName> = (typeof COMMAND_OPTIONS)[C][number];

/** A command's options, resolved: one typed value per option, and where each came from. */
export type Options<C extends CommandName> = { readonly [N in NamesOf<C> as Camel<N>]: ValueOf<(typeof OPTIONS)[N]> } & {
  readonly from: { readonly [N in NamesOf<C> as Camel<N>]: Source };
};

export function camelName(flag: string): string {
  return flag.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

function optionOf(name: OptionName): OptionDef<unknown> {
  return OPTIONS[name];
}

/** Whether `command` takes the option `flag`; any command if none is named. */
export function takes(command: CommandName | undefined, flag: string): boolean {
  if (command === undefined) return flag in OPTIONS;
  return (COMMAND_OPTIONS[command] as readonly string[]).includes(flag);
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

/** citty's argument definitions of a command, from the table. */
export function argsOf(command: CommandName): ArgsDef {
  const args: ArgsDef = {};
  for (const name of COMMAND_OPTIONS[command]) {
    const option = optionOf(name);
    const description = helpOf(name, command);
    // citty needs the short form too, to tell `call -t 2s 10` from the positional n "2s".
    const alias = option.short === undefined ? {} : { alias: [option.short] };
    args[name] = option.kind === "switch" ? { type: "boolean", description, ...alias } : { type: "string", valueHint: option.valueHint, description, ...alias };
  }
  return args;
}

/** Flags every command takes, handled before the command runs; no option's short form may be h or v. */
const ALWAYS = new Set(["help", "h", "version", "v"]);

/** The short form of `name` in `command`'s --help and the README: "-w", or undefined. */
export function shortOf(name: OptionName): string | undefined {
  const short = optionOf(name).short;
  return short === undefined ? undefined : `-${short}`;
}

/**
 * The usage error for a flag `command` does not take, with the closest one it does
 * ("--jsn": did you mean --json?), or the command that takes it ("call --workers").
 */
function unknownFlag(command: CommandName, flag: string): FibrpcError {
  const see = `see fibrpc ${command} --help`;
  const names = COMMAND_OPTIONS[command] as readonly OptionName[];
  const long = flag.startsWith("--");
  const bare = flag.replace(/^--?/, "");
  if (long || bare.length > 1) {
    const longs = names.flatMap((n) => (optionOf(n).kind === "switch" ? [n, `no-${n}`] : [n]));
    const guess = closest(bare, [...longs, "help", "version"]);
    if (guess !== undefined) return usageError(`unknown option ${flag}; did you mean --${guess}? ${see}`);
    const others = COMMANDS.filter((c) => c !== command && (COMMAND_OPTIONS[c] as readonly string[]).includes(bare));
    if (others.length > 0) return usageError(`unknown option ${flag}: it is an option of ${others.join(", ")}, not of ${command}; ${see}`);
  }
  if (!long) {
    const shorts = names.map(shortOf).filter((s) => s !== undefined);
    if (bare.length > 1 && shorts.includes(`-${bare[0]}`)) {
      // Short flags are never bundled (-jt) nor glued to their value (-t2s): say how to write them.
      const split = [...bare].every((c) => shorts.includes(`-${c}`)) ? [...bare].map((c) => `-${c}`).join(" ") : `-${bare[0]} ${bare.slice(1)}`;
      return usageError(`unknown option ${flag}; did you mean ${split}? short flags go one at a time, a value after a space; ${see}`);
    }
    if (bare.length === 1 && shorts.length > 0) return usageError(`unknown option ${flag}; the short flags of ${command} are ${shorts.join(", ")}; ${see}`);
  }
  return usageError(`unknown option ${flag}; ${see}`);
}

/** The values given on the command line: text, on/off, or every --url in order. */
export type GivenFlags = Partial<Record<OptionName, string | boolean | readonly string[]>>;

/**
 * What citty lets through silently, checked in one scan of the command line against the
 * command's options. Each is a usage error with one line:
 * - an unknown flag (a typo such as `--worker 3` must not be ignored);
 * - a flag that needs a value without one: last on the line, followed by another flag
 *   (`--timeout --json`), or empty (`--timeout=`);
 * - a flag given twice (`--timeout 1s --timeout 2s`: citty would keep the last); only --url may
 *   repeat, its values are collected in order;
 * - a value for an on/off flag (`--json=yes`).
 * A token such as "-5" is handed to `onNegativeNumber` if given (call reports it as an invalid n),
 * else is an unknown flag. Nothing after "--" is looked at.
 */
export function scanFlags(command: CommandName, rawArgs: readonly string[], onNegativeNumber?: (token: string) => never): GivenFlags {
  const known = new Map<string, OptionName>();
  const shorts = new Map<string, OptionName>();
  for (const name of COMMAND_OPTIONS[command]) {
    known.set(name, name);
    known.set(camelName(name), name);
    if (optionOf(name).kind === "switch") known.set(`no-${name}`, name);
    const short = optionOf(name).short;
    if (short !== undefined) shorts.set(short, name);
  }
  const given: Record<string, string | boolean | string[]> = {};
  const seen = new Map<OptionName, string>();
  for (let i = 0; i < rawArgs.length; i++) {
    const token = rawArgs[i]!;
    if (token === "--") break;
    if (!token.startsWith("-") || token === "-") continue;
    if (/^-\d/.test(token) && onNegativeNumber) onNegativeNumber(token);
    const eq = token.indexOf("=");
    const flag = eq === -1 ? token : token.slice(0, eq);
    const bare = flag.replace(/^--?/, "");
    if (ALWAYS.has(bare) && (flag.startsWith("--") || bare.length === 1)) continue;
    // -w is --workers: one letter after one dash, its value next or after "=" (never -w3, -jt).
    const name = flag.startsWith("--") ? known.get(bare) : flag.length === 2 ? shorts.get(bare) : undefined;
    if (!name) throw unknownFlag(command, flag);
    const option = optionOf(name);
    const display = `--${name}`;
    if (option.kind === "switch") {
      if (eq !== -1) throw usageError(`${display} takes no value (got ${token}); give ${display}, or leave it out`);
      if (seen.has(name)) throw usageError(`${display} given twice; give it once`);
      seen.set(name, "");
      given[name] = !bare.startsWith("no-");
      continue;
    }
    let value: string | undefined;
    if (eq !== -1) value = token.slice(eq + 1);
    else {
      const next = rawArgs[i + 1];
      // The next token is this flag's value unless it is another flag ("-5" is a value).
      if (next !== undefined && !(next.startsWith("-") && next !== "-" && !/^-\d/.test(next))) {
        value = next;
        i++;
      } else if (next !== undefined) {
        throw usageError(`${display} needs a value${option.valueHint ? ` (${option.valueHint})` : ""} before ${next.split("=", 1)[0]}`);
      }
    }
    if (value === undefined || value === "") throw usageError(`${display} needs a value${option.valueHint ? ` (${option.valueHint})` : ""}${value === "" ? `, got an empty one` : ""}`);
    if (option.repeatable) {
      ((given[name] ??= []) as string[]).push(value);
      continue;
    }
    const before = seen.get(name);
    if (before !== undefined) throw usageError(`${display} given twice (${before}, ${value}); give it once`);
    seen.set(name, value);
    given[name] = value;
  }
  return given as GivenFlags;
}

export interface OptionInput {
  /** The command line after the command's name. */
  rawArgs: readonly string[];
  /** The environment (process.env). */
  env: Readonly<Record<string, string | undefined>>;
  /** The FIBRPC_* settings of the --config file, if any (see readConfigFile). */
  file?: Readonly<Record<string, string>>;
  /** How a token like "-5" is reported (call: an invalid n); else it is an unknown option. */
  onNegativeNumber?: (token: string) => never;
}

/** A value and where it came from: flag > environment > config file > default. */
function resolveOne(name: OptionName, flag: string | boolean | readonly string[] | undefined, env: OptionInput["env"], file: Readonly<Record<string, string>>): { value: unknown; source: Source } {
  const option = optionOf(name);
  const at = (where: string): ValueAt => ({ flag: name, env: option.env, where });
  if (typeof flag === "boolean") return { value: flag, source: "flag" };
  if (typeof flag === "string") return { value: option.parse(flag, at(`--${name}`)), source: "flag" };
  if (flag !== undefined) return { value: option.parseAll!(flag.map((text) => ({ text, where: `--${name}` }))), source: "flag" };
  const fromEnv = env[option.env];
  if (fromEnv !== undefined && fromEnv !== "") return { value: option.parse(fromEnv, at(option.env)), source: "env" };
  const fromFile = option.inFile === false ? undefined : file[option.env];
  if (fromFile !== undefined && fromFile !== "") return { value: option.parse(fromFile, at(`${option.env} in the --config file`)), source: "file" };
  const fallback = typeof option.default === "function" ? option.default() : option.default;
  return { value: fallback === undefined ? undefined : option.parse(fallback, at("default")), source: "default" };
}

/** Rules between options of a command, checked once all are read. */
const CHECKS: { readonly [C in CommandName]: (o: Options<C>) => void } = {
  serve: (o) => {
    tlsPair(o);
    // amqplib's recovering connection takes its socket options once, for every URL.
    const timeouts = o.url.map((u) => u.connectionTimeoutMs);
    const differs = timeouts.findIndex((t) => t !== timeouts[0]);
    if (differs !== -1) {
      const shown = (t: number | undefined) => (t === undefined ? "none" : `${t}`);
      throw usageError(`serve uses one connection_timeout for all its broker URLs; the 1st gives ${shown(timeouts[0])}, the ${ordinal(differs + 1)} ${shown(timeouts[differs])}: give the same on each`);
    }
    // The image sets FIBRPC_HTTP_HOST for when a port is given; on the command line it is a mistake.
    if (o.from.httpHost === "flag" && o.httpPort === undefined) throw usageError("--http-host has no effect without --http-port (or FIBRPC_HTTP_PORT)");
  },
  call: (o) => tlsPair(o),
  bench: (o) => {
    tlsPair(o);
    if (o.duration !== undefined && o.from.requests !== "default") throw usageError("give --requests or --duration, not both");
  },
  health: (o) => {
    if (o.statusFile === undefined) throw usageError("give --status-file (or FIBRPC_STATUS_FILE), the file serve was started with");
  },
  completion: () => {},
};

function tlsPair(o: { tlsCert: string | undefined; tlsKey: string | undefined }): void {
  if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw usageError("--tls-cert and --tls-key go together");
}

/**
 * A command's options: the command line scanned strictly (scanFlags), then each option read
 * flag > environment > config file > default and parsed, then the rules between options. One
 * frozen object; usage errors (exit 64) for anything wrong.
 */
export function resolveOptions<C extends CommandName>(command: C, input: OptionInput): Options<C> {
  return resolveScanned(command, scanFlags(command, input.rawArgs, input.onNegativeNumber), input);
}

/** resolveOptions after the scan (loadOptions has scanned already, to find --config). */
function resolveScanned<C extends CommandName>(command: C, given: ReturnType<typeof scanFlags>, input: OptionInput): Options<C> {
  const file = input.file ?? {};
  const values: Record<string, unknown> = {};
  const from: Record<string, Source> = {};
  for (const name of COMMAND_OPTIONS[command]) {
    const { value, source } = resolveOne(name, given[name], input.env, file);
    values[camelName(name)] = value;
    from[camelName(name)] = source;
  }
  const options = Object.freeze({ ...values, from: Object.freeze(from) }) as unknown as Options<C>;
  (CHECKS[command] as (o: Options<C>) => void)(options);
  return options;
}

/** The keys a --config file may hold: every option's variable, whichever command takes it. */
const CONFIG_KEYS: ConfigKeys = {
  known: Object.values(OPTIONS as Record<string, OptionDef<unknown>>).flatMap((o) => (o.inFile === false ? [] : [o.env])),
  notInFile: Object.values(OPTIONS as Record<string, OptionDef<unknown>>).flatMap((o) => (o.inFile === false ? [o.env] : [])),
};

/**
 * resolveOptions with the config file read first (--config, else FIBRPC_CONFIG), once: every
 * other option may come from it. The command line is checked before the file is read.
 */
export async function loadOptions<C extends CommandName>(command: C, input: Omit<OptionInput, "file">): Promise<Options<C>> {
  const given = scanFlags(command, input.rawArgs, input.onNegativeNumber);
  const path = resolveOne("config", given.config, input.env, {}).value as string | undefined;
  const file = path === undefined ? {} : await readConfigFile(path, CONFIG_KEYS);
  return resolveScanned(command, given, { ...input, file });
}
