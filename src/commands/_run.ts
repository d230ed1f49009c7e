/**
 * Runs a command: resolves its options (options.ts), runs its body, and turns the outcome into an
 * exit code. An error a user can cause is one line on stderr — what happened and why, and the
 * hint of what to do (_hints.ts) — never a stack trace; an unexpected one is one line too, with
 * the stack only at --log-level debug (Bun would otherwise print an excerpt of the minified
 * source of the compiled binary). Every line is masked (mask.ts).
 */
import { ExitCode, FibrpcError } from "../errors.ts";
import { showsDebug } from "../log.ts";
import { maskSecrets } from "../mask.ts";
import { loadOptions, OPTIONS, type CommandName, type Options } from "../options.ts";
import { withHint } from "./_hints.ts";

export interface RunExtras {
  /** How a token like "-5" is reported (see scanFlags). */
  onNegativeNumber?: (token: string) => never;
}

/**
 * Resolves `command`'s options from `rawArgs`, the environment and the config file, runs `body`
 * with them, and exits with its code, or with the code of the error it threw.
 */
export async function runAction<C extends CommandName>(command: C, rawArgs: readonly string[], body: (options: Options<C>) => Promise<ExitCode>, extras: RunExtras = {}): Promise<never> {
  let debug = debugAsked;
  let code: ExitCode;
  try {
    const options = await loadOptions(command, { rawArgs, env: process.env, onNegativeNumber: extras.onNegativeNumber });
    const level = (options as { logLevel?: string }).logLevel;
    if (level !== undefined) {
      const wanted = showsDebug(level);
      debug = () => wanted;
      // Crashes from here on follow the level resolved (it may come from the config file).
      installCrashHandlers(debug);
    }
    code = await body(options);
  } catch (err) {
    code = reportError(err, { command, debug: debug() });
  }
  process.exit(code);
}

/** One line, masked: a message must not break the one-line rule with its own line breaks. */
function line(text: string): string {
  return maskSecrets(text.replace(/\s*[\r\n]+\s*/g, " "));
}

/** The log level asked for on the command line or in the environment, before options are resolved. */
function debugAsked(): boolean {
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--log-level") return showsDebug(argv[i + 1]);
    if (arg.startsWith("--log-level=")) return showsDebug(arg.slice("--log-level=".length));
  }
  return showsDebug(process.env[OPTIONS["log-level"].env]);
}

/**
 * Writes the line for an error and returns its exit code. A FibrpcError is its message and the
 * hint for `command`; anything else is an internal error (the stack only if `debug`).
 */
export function reportError(err: unknown, o: { command?: CommandName; debug?: boolean } = {}): ExitCode {
  if (err instanceof FibrpcError) {
    process.stderr.write(`fibrpc: ${line(withHint(err, o.command))}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
  if (o.debug ?? debugAsked()) {
    const stack = err instanceof Error && err.stack ? err.stack : message;
    process.stderr.write(`fibrpc: internal error: ${line(message)} (a bug; please report it with this stack trace)\n${maskSecrets(stack)}\n`);
  } else {
    process.stderr.write(`fibrpc: internal error: ${line(message)} (rerun with --log-level debug for the stack trace; please report it)\n`);
  }
  return ExitCode.INTERNAL;
}

const CRASH_HANDLER = Symbol.for("fibrpc.crashHandler");

/**
 * Errors nothing caught (an exception in a callback, a rejected promise nobody awaited) in the
 * main thread: reported like any internal error, then exit 70. Installing again replaces the
 * handlers installed before (runAction does, once the log level is known). In serve's worker
 * threads an uncaught error ends the worker; the supervisor logs it in one line and restarts it.
 */
export function installCrashHandlers(debug: () => boolean = debugAsked): void {
  for (const event of ["uncaughtException", "unhandledRejection"] as const) {
    for (const listener of process.listeners(event)) {
      if (CRASH_HANDLER in listener) process.off(event, listener as never);
    }
    const crash = Object.assign((err: unknown) => process.exit(reportError(err, { debug: debug() })), { [CRASH_HANDLER]: true });
    process.on(event, crash);
  }
}
