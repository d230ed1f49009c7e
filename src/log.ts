/**
 * Logging: consola, always on stderr, so stdout carries only results (`fibrpc call 30 | xargs`).
 * Every line goes through maskSecrets, so a password given in a URL never reaches a log line,
 * even inside an error message from the AMQP library.
 */
import { createConsola, type ConsolaInstance, type ConsolaReporter } from "consola";
import { maskSecrets } from "./config.ts";

export const LOG_LEVELS = ["silent", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];
export type Logger = ConsolaInstance;

const LEVEL_NUMBER: Record<LogLevelName, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

export function isLogLevel(value: string): value is LogLevelName {
  return (LOG_LEVELS as readonly string[]).includes(value);
}

function masked(arg: unknown): unknown {
  if (typeof arg === "string") return maskSecrets(arg);
  if (arg instanceof Error) return maskSecrets(arg.message);
  return arg;
}

function maskingReporter(inner: ConsolaReporter): ConsolaReporter {
  return { log: (logObj, ctx) => inner.log({ ...logObj, args: logObj.args.map(masked) }, ctx) };
}

export function createLogger(level: LogLevelName, tag?: string): Logger {
  const logger = createConsola({
    level: LEVEL_NUMBER[level],
    stdout: process.stderr,
    stderr: process.stderr,
  });
  logger.setReporters(logger.options.reporters.map(maskingReporter));
  return tag ? logger.withTag(tag) : logger;
}
