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

/**
 * When stderr is not a terminal (a log file, journald, a container runtime), one plain line per
 * entry: "<ISO time> <LEVEL> [tag] message". consola's own reporters draw badges and blank
 * lines around warnings, which log pipelines split into several records.
 */
const lineReporter: ConsolaReporter = {
  log: (logObj) => {
    const level = (logObj.type === "log" ? "info" : logObj.type).toUpperCase().padEnd(5);
    const tag = logObj.tag ? ` [${logObj.tag}]` : "";
    const text = logObj.args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(" ");
    process.stderr.write(`${logObj.date.toISOString()} ${level}${tag} ${text}\n`);
  },
};

export function createLogger(level: LogLevelName, tag?: string): Logger {
  const logger = createConsola({
    level: LEVEL_NUMBER[level],
    stdout: process.stderr,
    stderr: process.stderr,
  });
  const reporters = process.stderr.isTTY ? logger.options.reporters : [lineReporter];
  logger.setReporters(reporters.map(maskingReporter));
  return tag ? logger.withTag(tag) : logger;
}
