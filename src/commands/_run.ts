/**
 * Runs a command's action and turns its outcome into an exit code. An error a user can cause
 * is one line on stderr, never a stack trace; an unexpected one is one line too, with the stack
 * only at --log-level debug (Bun would otherwise print an excerpt of the minified source of the
 * compiled binary). Every line is masked (mask.ts).
 */
import { fromEnv } from "../config.ts";
import { ExitCode, FibrpcError } from "../errors.ts";
import { activeLogLevel, showsDebug } from "../log.ts";
import { maskSecrets } from "../mask.ts";

export async function runAction(action: () => Promise<ExitCode>): Promise<never> {
  let code: ExitCode;
  try {
    code = await action();
  } catch (err) {
    code = reportError(err);
  }
  process.exit(code);
}

/** One line, masked: a message must not break the one-line rule with its own line breaks. */
function line(text: string): string {
  return maskSecrets(text.replace(/\s*[\r\n]+\s*/g, " "));
}

/** The log level asked for, even when the error came before the logger was made. */
function debugWanted(): boolean {
  const active = activeLogLevel();
  if (active !== undefined) return showsDebug(active);
  const argv = process.argv;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--log-level") return showsDebug(argv[i + 1]);
    if (arg.startsWith("--log-level=")) return showsDebug(arg.slice("--log-level=".length));
  }
  try {
    return showsDebug(fromEnv(undefined, "FIBRPC_LOG_LEVEL"));
  } catch {
    return false;
  }
}

export function reportError(err: unknown): ExitCode {
  if (err instanceof FibrpcError) {
    process.stderr.write(`fibrpc: ${line(err.message)}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
  if (debugWanted()) {
    const stack = err instanceof Error && err.stack ? err.stack : message;
    process.stderr.write(`fibrpc: internal error: ${line(message)} (a bug; please report it with this stack trace)\n${maskSecrets(stack)}\n`);
  } else {
    process.stderr.write(`fibrpc: internal error: ${line(message)} (rerun with --log-level debug for the stack trace; please report it)\n`);
  }
  return ExitCode.INTERNAL;
}

/**
 * Errors nothing caught (an exception in a callback, a rejected promise nobody awaited) in the
 * main thread: reported like any internal error, then exit 70. Worker threads have their own
 * (serve/worker.ts).
 */
export function installCrashHandlers(): void {
  const crash = (err: unknown) => process.exit(reportError(err));
  process.on("uncaughtException", crash);
  process.on("unhandledRejection", crash);
}
