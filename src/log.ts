/**
 * Logging: consola, always on stderr, so stdout carries only results (`fibrpc call 30 | xargs`).
 * Every line goes through the run's Masker (mask.ts), so a password given in a URL never reaches a
 * log line, even inside an error message from the AMQP library.
 *
 * consola/core with reporters of our own: consola's default entry (fancy and basic reporters)
 * costs ~7 ms of start-up on every `fibrpc call`, a quarter of a cold call.
 */
import { createConsola, type ConsolaInstance, type ConsolaReporter, type LogObject } from "consola/core";
import type { Masker } from "./mask.ts";
import { printable } from "./printable.ts";

export const LOG_LEVELS = ["silent", "error", "warn", "info", "debug", "trace"] as const;
export type LogLevelName = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ["pretty", "json"] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type Logger = ConsolaInstance;

// A log reader that goes away (`fibrpc serve 2>&1 | head`, a collector restarting) must not take
// serve down with it: without a listener, the EPIPE of the next log line is an uncaught error.
// Lines written meanwhile are lost; serving goes on.
process.stderr.on("error", () => {});

const LEVEL_NUMBER: Record<LogLevelName, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4, trace: 5 };

/** Whether `level` shows info entries (info, debug or trace): bench's progress is shown at those only. */
export function showsInfo(level: LogLevelName): boolean {
  return LEVEL_NUMBER[level] >= LEVEL_NUMBER.info;
}

/** Whether `level` shows debug entries (debug or trace). */
export function showsDebug(level: string | undefined): boolean {
  return level === "debug" || level === "trace";
}

/** A plain object passed to a log call carries structured fields (shown by the JSON format). */
function isFields(arg: unknown): arg is Record<string, unknown> {
  return (
    typeof arg === "object" &&
    arg !== null &&
    !(arg instanceof Error) &&
    Object.getPrototypeOf(arg) === Object.prototype
  );
}

function text(logObj: LogObject, masker: Masker): string {
  return masker.mask(
    logObj.args
      // undefined: the fields of a call that has none to give (a span's ids with tracing off).
      .filter((a) => a !== undefined && !isFields(a))
      .map((a) => (typeof a === "string" ? a : a instanceof Error ? a.message : JSON.stringify(a)))
      .join(" "),
  );
}

function levelName(logObj: LogObject): string {
  return logObj.type === "log" || logObj.type === "success" || logObj.type === "start" || logObj.type === "ready"
    ? "info"
    : logObj.type === "fail" || logObj.type === "fatal"
      ? "error"
      : logObj.type;
}

const COLORS: Record<string, string> = { error: "31", warn: "33", info: "36", debug: "90", trace: "90" };

/**
 * "<ISO time> <LEVEL> [tag] message", one line per entry; colored on a terminal. With `erase`, each entry first
 * erases the line it starts on: one drawn in place (bench's progress bar, no newline) would otherwise end in the
 * entry's first words; the bar is drawn again below it.
 */
function prettyReporter(color: boolean, masker: Masker, erase: boolean): ConsolaReporter {
  const erasing = erase ? "\r\u001b[K" : "";
  return {
    log: (logObj) => {
      const level = levelName(logObj);
      const label = level.toUpperCase().padEnd(5);
      const tag = logObj.tag ? ` [${logObj.tag}]` : "";
      const head = color
        ? `\u001b[2m${logObj.date.toISOString()}\u001b[22m \u001b[${COLORS[level] ?? "39"}m${label}\u001b[39m`
        : `${logObj.date.toISOString()} ${label}`;
      // Escaped: text from the broker or a request (a queue name with a newline) cannot break the entry in
      // two, forge a line of its own, or send a terminal its escape sequences.
      process.stderr.write(`${erasing}${head}${tag} ${printable(text(logObj, masker))}\n`);
    },
  };
}

/**
 * One JSON object per line: time, level, worker (the tag), message, trace_id, span_id and trace_flags
 * when the line is about a traced request, and fields if any. The ids come as fields (a span's,
 * tracing/tracer.ts TraceIds) and go at the top level, where OpenTelemetry's spec for trace context in
 * JSON logs puts them and log collectors look for them to link a line to its trace.
 */
function jsonReporter(masker: Masker): ConsolaReporter {
  return {
    log: (logObj) => {
      const entry: Record<string, unknown> = { time: logObj.date.toISOString(), level: levelName(logObj) };
      if (logObj.tag) entry.worker = logObj.tag;
      entry.message = text(logObj, masker);
      const { trace_id, span_id, trace_flags, ...fields } = Object.assign({}, ...logObj.args.filter(isFields));
      if (trace_id !== undefined) Object.assign(entry, { trace_id, span_id, trace_flags });
      if (Object.keys(fields).length > 0) entry.fields = JSON.parse(masker.mask(JSON.stringify(fields)));
      process.stderr.write(`${JSON.stringify(entry)}\n`);
    },
  };
}

export interface LoggerOptions {
  level: LogLevelName;
  format: LogFormat;
  /** The worker's tag ("worker-2"), if any. */
  tag?: string;
  /** The secrets of this run's broker URLs. */
  masker: Masker;
  /** NO_COLOR was set (env-settings.ts): no colors, even on a terminal. */
  noColor: boolean;
  /** Something draws a line in place on stderr when it is a terminal (bench's progress bar): entries erase it. */
  drawsInPlace?: boolean;
}

export function createLogger({ level, format, tag, masker, noColor, drawsInPlace = false }: LoggerOptions): Logger {
  const tty = process.stderr.isTTY === true;
  const color = tty && !noColor;
  const logger = createConsola({
    level: LEVEL_NUMBER[level],
    // No folding of repeated lines into "(repeated N times)": each event is its own line (a
    // dropped request is one line, and counting them must work).
    throttle: 0,
    reporters: [format === "json" ? jsonReporter(masker) : prettyReporter(color, masker, tty && drawsInPlace)],
  });
  return tag ? logger.withTag(tag) : logger;
}
