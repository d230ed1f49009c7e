/**
 * Argument fragments shared by several commands, declared once, and the checks citty leaves to
 * us. Every option has an environment variable named after it (--max-n → FIBRPC_MAX_N), shown in
 * --help; precedence is flag > environment > config file (--config) > default.
 */
import { readFileSync } from "node:fs";
import type { ArgsDef } from "citty";
import { DEFAULT_QUEUE, DEFAULT_URL, envNameOf, fromEnv, parseBrokerUrl, setConfigFileValues } from "../config.ts";
import { usageError } from "../errors.ts";
import type { TlsFiles } from "../rpc/broker.ts";
import { createLogger, isLogLevel, LOG_FORMATS, LOG_LEVELS, type LogFormat, type Logger, type LogLevelName } from "../log.ts";

export const brokerArgs = {
  url: {
    type: "string",
    valueHint: "amqp-url[,amqp-url...]",
    description: `Broker URL; several (comma-separated or repeated) are tried in order, with failover [env FIBRPC_URL] (default: ${DEFAULT_URL.replace(/:[^:@/]*@/, ":***@")})`,
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
  urls: string[];
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

export function resolveBroker(args: { url?: string | string[]; queue?: string; "tls-ca"?: string; "tls-cert"?: string; "tls-key"?: string }): BrokerArgs {
  // citty gives a repeated flag as an array.
  const given = Array.isArray(args.url) ? args.url.join(",") : args.url;
  const urls = (fromEnv(given, "FIBRPC_URL") ?? DEFAULT_URL)
    .split(",")
    .map((u) => u.trim())
    .filter(Boolean)
    .map(parseBrokerUrl);
  if (urls.length === 0) throw usageError("--url is empty");
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

/**
 * citty accepts any flag silently; a typo such as `--worker 3` must not be ignored. Throws a
 * usage error naming the first flag the command does not define.
 */
export function rejectUnknownFlags(rawArgs: readonly string[], argsDef: ArgsDef, onNegativeNumber?: (token: string) => never): void {
  const known = new Set<string>(["help", "h", "version", "v"]);
  for (const [name, def] of Object.entries(argsDef)) {
    if (def.type === "positional") continue;
    known.add(name);
    known.add(camel(name));
    if (def.type === "boolean") known.add(`no-${name}`);
  }
  for (const token of rawArgs) {
    if (token === "--") break;
    if (!token.startsWith("-") || token === "-") continue;
    if (/^-\d/.test(token) && onNegativeNumber) onNegativeNumber(token);
    const name = token.replace(/^--?/, "").split("=", 1)[0]!;
    if (!known.has(name)) throw usageError(`unknown option ${token.split("=", 1)[0]}; see --help for the options`);
  }
}
