/**
 * Argument fragments shared by several commands, declared once, and the checks citty leaves to
 * us. Every option has an environment variable named after it (--max-n → FIBRPC_MAX_N), shown in
 * --help; precedence is flag > environment > config file (--config) > default.
 */
import { readFileSync } from "node:fs";
import type { ArgsDef } from "citty";
import { parseBrokerUrls, type BrokerUrl } from "../broker-url.ts";
import { DEFAULT_QUEUE, DEFAULT_URL, envNameOf, fromEnv, setConfigFileValues } from "../config.ts";
import { usageError } from "../errors.ts";
import { registerBrokerUrl } from "../mask.ts";
import type { TlsFiles } from "../rpc/broker.ts";
import { createLogger, isLogLevel, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevelName } from "../log.ts";

export const brokerArgs = {
  url: {
    type: "string",
    valueHint: "amqp-url[,amqp-url...]",
    description: `Broker URL amqp[s]://user:password@host:port/vhost (percent-encode @ : / , # % and space in the password); several (repeated, or comma-separated) are tried in order, with failover [env FIBRPC_URL] (default: ${DEFAULT_URL.replace(/:[^:@/]*@/, ":***@")})`,
  },
  queue: {
    type: "string",
    valueHint: "name",
    description: `Request queue [env FIBRPC_QUEUE] (default: ${DEFAULT_QUEUE})`,
  },
  "tls-ca": {
    type: "string",
    valueHint: "file",
    description: "PEM CA certificate(s) to verify an amqps:// broker with, instead of the system's [env FIBRPC_TLS_CA]",
  },
  "tls-cert": {
    type: "string",
    valueHint: "file",
    description: "PEM client certificate, for brokers that require one [env FIBRPC_TLS_CERT]",
  },
  "tls-key": {
    type: "string",
    valueHint: "file",
    description: "PEM private key of --tls-cert [env FIBRPC_TLS_KEY]",
  },
} as const satisfies ArgsDef;

export const logArgs = {
  "log-level": {
    type: "string",
    valueHint: LOG_LEVELS.join("|"),
    description: "Log level on stderr [env FIBRPC_LOG_LEVEL] (default: info)",
  },
  "log-format": {
    type: "string",
    valueHint: LOG_FORMATS.join("|"),
    description: "pretty: one line of text per entry; json: one JSON object per line [env FIBRPC_LOG_FORMAT] (default: pretty)",
  },
  config: {
    type: "string",
    valueHint: "file",
    description: "File of FIBRPC_*=value lines (dotenv format), below flags and environment [env FIBRPC_CONFIG]",
  },
} as const satisfies ArgsDef;

export interface BrokerArgs {
  /** One or more broker URLs, in the order they are tried. */
  urls: BrokerUrl[];
  queue: string;
  tls: TlsFiles;
}

/**
 * Loads --config first: every other option may come from it. dotenv is loaded only when a
 * config file is given, to keep it off a cold `fibrpc call`.
 */
export async function loadConfigFile(value: string | undefined): Promise<void> {
  const path = fromEnv(value, "FIBRPC_CONFIG");
  if (!path) return;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw usageError(`cannot read --config ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
  const { parse: parseDotenv } = await import("dotenv");
  const values = parseDotenv(text);
  const unknown = Object.keys(values).filter((k) => !k.startsWith("FIBRPC_"));
  if (unknown.length > 0) throw usageError(`--config ${JSON.stringify(path)}: only FIBRPC_* settings belong there, found ${unknown.join(", ")}`);
  setConfigFileValues(values);
}

function readPem(flag: string, value: string | undefined): Buffer | undefined {
  const path = fromEnv(value, envNameOf(flag));
  if (!path) return undefined;
  try {
    return readFileSync(path);
  } catch (err) {
    throw usageError(`cannot read --${flag} ${JSON.stringify(path)}: ${(err as Error).message}`);
  }
}

/**
 * The broker options. `urlFlags` are the values of every --url, in order (see checkFlags); without
 * any, FIBRPC_URL from the environment, then from the config file, then the default. Every URL is
 * parsed here, in the main thread, so a bad one is a usage error before anything starts, and
 * registered with the masking.
 */
export function resolveBroker(urlFlags: readonly string[], args: { queue?: string; "tls-ca"?: string; "tls-cert"?: string; "tls-key"?: string }): BrokerArgs {
  const fromFlags = urlFlags.map((text) => ({ text, source: "--url" }));
  const env = process.env.FIBRPC_URL;
  const fromFile = fromEnv(undefined, "FIBRPC_URL");
  const values =
    fromFlags.length > 0
      ? fromFlags
      : env !== undefined && env !== ""
        ? [{ text: env, source: "FIBRPC_URL" }]
        : fromFile !== undefined
          ? [{ text: fromFile, source: "FIBRPC_URL in the --config file" }]
          : [{ text: DEFAULT_URL, source: "default" }];
  const urls = parseBrokerUrls(values);
  for (const url of urls) registerBrokerUrl(url);
  const queue = fromEnv(args.queue, "FIBRPC_QUEUE") ?? DEFAULT_QUEUE;
  if (Buffer.byteLength(queue, "utf8") > 255) throw usageError("--queue must be at most 255 bytes long (UTF-8)");
  const tls = { ca: readPem("tls-ca", args["tls-ca"]), cert: readPem("tls-cert", args["tls-cert"]), key: readPem("tls-key", args["tls-key"]) };
  if ((tls.cert === undefined) !== (tls.key === undefined)) throw usageError("--tls-cert and --tls-key go together");
  return { urls, queue, tls };
}

export function resolveLogLevel(value: string | undefined): LogLevelName {
  const level = fromEnv(value, "FIBRPC_LOG_LEVEL") ?? "info";
  if (!isLogLevel(level)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(level)}`);
  return level;
}

export function resolveLogFormat(value: string | undefined): LogFormat {
  const format = fromEnv(value, "FIBRPC_LOG_FORMAT") ?? "pretty";
  if (!(LOG_FORMATS as readonly string[]).includes(format)) throw usageError(`--log-format must be one of ${LOG_FORMATS.join(", ")}, got ${JSON.stringify(format)}`);
  return format as LogFormat;
}

export function resolveLogger(args: { "log-level"?: string; "log-format"?: string }, tag?: string): Logger {
  return createLogger(resolveLogLevel(args["log-level"]), tag, resolveLogFormat(args["log-format"]));
}

const camel = (s: string) => s.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** Flags every command takes, handled before the command runs. */
const ALWAYS = new Set(["help", "h", "version", "v"]);

export interface CheckedFlags {
  /** The values of every --url, in the order given (citty keeps only the last). */
  urls: string[];
}

/**
 * What citty lets through silently, checked in one scan of the command line against the
 * command's definitions. Each is a usage error with one line:
 * - an unknown flag (a typo such as `--worker 3` must not be ignored);
 * - a flag that needs a value without one: last on the line, followed by another flag
 *   (`--timeout --json`), or empty (`--timeout=`);
 * - a flag given twice (`--timeout 1s --timeout 2s`: citty would keep the last); only --url may
 *   repeat, its values are collected here in order;
 * - a value for a boolean flag (`--json=yes`).
 * A token such as "-5" is handed to `onNegativeNumber` if given (call reports it as an invalid n),
 * else is an unknown flag. Nothing after "--" is looked at.
 */
export function checkFlags(rawArgs: readonly string[], argsDef: ArgsDef, onNegativeNumber?: (token: string) => never): CheckedFlags {
  const defs = new Map<string, { name: string; type: string; valueHint?: string }>();
  for (const [name, def] of Object.entries(argsDef)) {
    if (def.type === "positional") continue;
    const entry = { name, type: def.type ?? "string", valueHint: "valueHint" in def ? def.valueHint : undefined };
    defs.set(name, entry);
    defs.set(camel(name), entry);
    if (def.type === "boolean") defs.set(`no-${name}`, entry);
  }
  const seen = new Map<string, string>();
  const urls: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const token = rawArgs[i]!;
    if (token === "--") break;
    if (!token.startsWith("-") || token === "-") continue;
    if (/^-\d/.test(token) && onNegativeNumber) onNegativeNumber(token);
    const eq = token.indexOf("=");
    const flag = eq === -1 ? token : token.slice(0, eq);
    const name = flag.replace(/^--?/, "");
    if (ALWAYS.has(name) && (flag.startsWith("--") || name.length === 1)) continue;
    const def = flag.startsWith("--") ? defs.get(name) : undefined;
    if (!def) throw usageError(`unknown option ${flag}; see --help for the options`);
    const display = `--${def.name}`;
    if (def.type === "boolean") {
      if (eq !== -1) throw usageError(`${display} takes no value (got ${token}); give ${display}, or leave it out`);
      if (seen.has(def.name)) throw usageError(`${display} given twice; give it once`);
      seen.set(def.name, "");
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
        throw usageError(`${display} needs a value${def.valueHint ? ` (${def.valueHint})` : ""} before ${next.split("=", 1)[0]}`);
      }
    }
    if (value === undefined || value === "") throw usageError(`${display} needs a value${def.valueHint ? ` (${def.valueHint})` : ""}${value === "" ? `, got an empty one` : ""}`);
    if (def.name === "url") {
      urls.push(value);
      continue;
    }
    const before = seen.get(def.name);
    if (before !== undefined) throw usageError(`${display} given twice (${before}, ${value}); give it once`);
    seen.set(def.name, value);
  }
  return { urls };
}
