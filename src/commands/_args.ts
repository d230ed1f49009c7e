/** Argument fragments shared by several commands, declared once, and checks citty leaves to us. */
import type { ArgsDef } from "citty";
import { DEFAULT_QUEUE, DEFAULT_URL, fromEnv, parseBrokerUrl } from "../config.ts";
import { usageError } from "../errors.ts";
import { createLogger, isLogLevel, LOG_LEVELS, type Logger, type LogLevelName } from "../log.ts";

export const brokerArgs = {
  url: {
    type: "string",
    valueHint: "amqp-url",
    description: `Broker URL [env FIBRPC_URL] (default: ${DEFAULT_URL.replace(/:[^:@/]*@/, ":***@")})`,
  },
  queue: {
    type: "string",
    valueHint: "name",
    description: `Request queue [env FIBRPC_QUEUE] (default: ${DEFAULT_QUEUE})`,
  },
} as const satisfies ArgsDef;

export const logArgs = {
  "log-level": {
    type: "string",
    valueHint: LOG_LEVELS.join("|"),
    description: "Log level on stderr [env FIBRPC_LOG_LEVEL] (default: info)",
  },
} as const satisfies ArgsDef;

export interface BrokerArgs {
  url: string;
  queue: string;
}

export function resolveBroker(args: { url?: string; queue?: string }): BrokerArgs {
  const url = parseBrokerUrl(fromEnv(args.url, "FIBRPC_URL") ?? DEFAULT_URL);
  const queue = fromEnv(args.queue, "FIBRPC_QUEUE") ?? DEFAULT_QUEUE;
  if (queue.length > 255) throw usageError("--queue must be at most 255 bytes long");
  return { url, queue };
}

export function resolveLogLevel(value: string | undefined): LogLevelName {
  const level = fromEnv(value, "FIBRPC_LOG_LEVEL") ?? "info";
  if (!isLogLevel(level)) throw usageError(`--log-level must be one of ${LOG_LEVELS.join(", ")}, got ${JSON.stringify(level)}`);
  return level;
}

export function resolveLogger(args: { "log-level"?: string }, tag?: string): Logger {
  return createLogger(resolveLogLevel(args["log-level"]), tag);
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
