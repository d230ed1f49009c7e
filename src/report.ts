/**
 * How a failure reaches the user: one line on stderr, masked (mask.ts), never a stack trace unasked.
 * An error a user can cause (a FibrpcError) is its message and the hint of what to do (hints.ts); anything
 * else is an internal error, with the stack only at --log-level debug (Bun would otherwise print an excerpt
 * of the minified source of the compiled binary).
 */
import { envNameOf } from "./config.ts";
import { ExitCode, FibrpcError } from "./errors.ts";
import { withHint } from "./hints.ts";
import { showsDebug } from "./log.ts";
import { Masker } from "./mask.ts";
import type { CommandName } from "./options.ts";
import { printable } from "./printable.ts";

/**
 * Whether --log-level debug (or FIBRPC_LOG_LEVEL) was asked for, for a crash before the command line is
 * scanned (loading a command): the one look at argv outside the scan, and only for this.
 */
function debugAsked(): boolean {
  const argv = process.argv;
  const at = argv.findIndex((arg) => arg === "--log-level" || arg.startsWith("--log-level="));
  const level = at === -1 ? process.env[envNameOf("log-level")] : (argv[at]!.split("=")[1] ?? argv[at + 1]);
  return showsDebug(level);
}

/**
 * One line, masked: a message must not break the one-line rule with its own line breaks, nor reach the
 * terminal with control characters of the input it quotes (an n given as an argument, a broker's reason).
 */
function line(text: string, masker: Masker): string {
  return printable(masker.mask(text.replace(/\s*[\r\n]+\s*/g, " ")));
}

/**
 * Writes the line for an error and returns its exit code. A FibrpcError gets the hint for `command`.
 * Masked with `masker` (before the options are resolved: URLs by their shape only).
 */
export function reportError(
  err: unknown,
  o: { command?: CommandName; debug?: boolean; masker?: Masker; json?: boolean } = {},
): ExitCode {
  const masker = o.masker ?? new Masker();
  // serve --log-format json: the line that says why serve did not start is a log entry a pipeline can parse,
  // shaped as serve's other error entries (log.ts); a stack trace goes in it as one more field.
  const write = (text: string, stack?: string) => {
    const entry = { time: new Date().toISOString(), level: "error", message: text, ...(stack && { stack }) };
    process.stderr.write(
      o.json ? `${JSON.stringify(entry)}\n` : `fibrpc: ${text}\n${stack === undefined ? "" : `${stack}\n`}`,
    );
  };
  if (err instanceof FibrpcError) {
    write(line(withHint(err, o.command), masker));
    return err.exitCode;
  }
  const message = err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
  if (o.debug ?? debugAsked()) {
    const stack = err instanceof Error && err.stack ? err.stack : message;
    write(
      `internal error: ${line(message, masker)} (a bug; please report it with this stack trace)`,
      masker.mask(stack),
    );
  } else {
    const hint = "(rerun with --log-level debug for the stack trace; please report it)";
    write(`internal error: ${line(message, masker)} ${hint}`);
  }
  return ExitCode.INTERNAL;
}

const CRASH_HANDLER = Symbol.for("fibrpc.crashHandler");

/**
 * Errors nothing caught (an exception in a callback, a rejected promise nobody awaited) in the main thread:
 * reported like any internal error, then exit 70; with the stack if `debug` (undefined: if asked for on the
 * command line), as a JSON log entry if `json` (serve --log-format json). Installing again replaces the
 * handlers installed before (runAction does, once it knows the log level and format and the URLs to mask). In
 * serve's worker threads an uncaught error ends the worker; the supervisor logs it in one line and restarts it.
 */
export function installCrashHandlers(debug?: boolean, masker = new Masker(), json = false): void {
  for (const event of ["uncaughtException", "unhandledRejection"] as const) {
    for (const listener of process.listeners(event)) {
      if (CRASH_HANDLER in listener) process.off(event, listener as never);
    }
    const crash = (err: unknown) => process.exit(reportError(err, { debug, masker, json }));
    process.on(event, Object.assign(crash, { [CRASH_HANDLER]: true }));
  }
}
