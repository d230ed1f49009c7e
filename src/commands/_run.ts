/**
 * Runs a command: resolves its options (options.ts) and the rest of what it reads from the
 * environment (env-settings.ts), runs its body, and turns the outcome into an exit code. An
 * error a user can cause is one line on stderr — what happened and why, and the hint of what to
 * do (hints.ts) — never a stack trace; an unexpected one is one line too, with the stack only at
 * --log-level debug (Bun would otherwise print an excerpt of the minified source of the compiled
 * binary). Every line is masked (mask.ts): by shape until the options are resolved, then with
 * the secrets of the broker URLs they hold.
 */
import type { BrokerUrl } from "../broker-url.ts";
import { envSettings, type EnvSettings } from "../env-settings.ts";
import { ExitCode, FibrpcError } from "../errors.ts";
import { withHint } from "../hints.ts";
import { showsDebug } from "../log.ts";
import { Masker } from "../mask.ts";
import { loadOptions, OPTIONS, type CommandName, type Options } from "../options.ts";

export interface RunExtras {
  /** How a token like "-5" is reported (see scanFlags). */
  onNegativeNumber?: (token: string) => never;
}

/** What a command's body is given besides its options, all resolved once by runAction. */
export interface RunContext {
  /** The secrets of the broker URLs of the options: whatever the command prints goes through it. */
  masker: Masker;
  /** What the run reads from the environment that is not an option. */
  env: EnvSettings;
}

/**
 * Resolves `command`'s options from `rawArgs`, the environment and the config file, runs `body`
 * with them, and exits with its code, or with the code of the error it threw.
 */
export async function runAction<C extends CommandName>(command: C, rawArgs: readonly string[], body: (options: Options<C>, run: RunContext) => Promise<ExitCode>, extras: RunExtras = {}): Promise<never> {
  let debug = debugAsked;
  let masker = new Masker();
  let code: ExitCode;
  try {
    const options = await loadOptions(command, { rawArgs, env: process.env, onNegativeNumber: extras.onNegativeNumber });
    masker = new Masker((options as { url?: readonly BrokerUrl[] }).url);
    const level = (options as { logLevel?: string }).logLevel;
    if (level !== undefined) {
      const wanted = showsDebug(level);
      debug = () => wanted;
    }
    // Crashes from here on follow the level resolved (it may come from the config file), and
    // mask the URLs the options hold.
    installCrashHandlers(debug, masker);
    code = await body(options, { masker, env: envSettings(process.env) });
  } catch (err) {
    code = reportError(err, { command, debug: debug(), masker });
  }
  process.exit(code);
}

/** One line, masked: a message must not break the one-line rule with its own line breaks. */
function line(text: string, masker: Masker): string {
  return masker.mask(text.replace(/\s*[\r\n]+\s*/g, " "));
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
 * hint for `command`; anything else is an internal error (the stack only if `debug`). Masked with
 * `masker` (before the options are resolved: URLs by their shape only).
 */
export function reportError(err: unknown, o: { command?: CommandName; debug?: boolean; masker?: Masker } = {}): ExitCode {
  const masker = o.masker ?? new Masker();
  if (err instanceof FibrpcError) {
    process.stderr.write(`fibrpc: ${line(withHint(err, o.command), masker)}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? `${err.name === "Error" ? "" : `${err.name}: `}${err.message}` : String(err);
  if (o.debug ?? debugAsked()) {
    const stack = err instanceof Error && err.stack ? err.stack : message;
    const head = `fibrpc: internal error: ${line(message, masker)} (a bug; please report it with this stack trace)`;
    process.stderr.write(`${head}\n${masker.mask(stack)}\n`);
  } else {
    const hint = "(rerun with --log-level debug for the stack trace; please report it)";
    process.stderr.write(`fibrpc: internal error: ${line(message, masker)} ${hint}\n`);
  }
  return ExitCode.INTERNAL;
}

const CRASH_HANDLER = Symbol.for("fibrpc.crashHandler");

/**
 * Errors nothing caught (an exception in a callback, a rejected promise nobody awaited) in the
 * main thread: reported like any internal error, masked with `masker`, then exit 70. Installing
 * again replaces the handlers installed before (runAction does, once the options are resolved).
 * In serve's worker threads an uncaught error ends the worker; the supervisor logs it in one line
 * and restarts it.
 */
export function installCrashHandlers(debug: () => boolean = debugAsked, masker = new Masker()): void {
  for (const event of ["uncaughtException", "unhandledRejection"] as const) {
    for (const listener of process.listeners(event)) {
      if (CRASH_HANDLER in listener) process.off(event, listener as never);
    }
    const crash = Object.assign((err: unknown) => process.exit(reportError(err, { debug: debug(), masker })), { [CRASH_HANDLER]: true });
    process.on(event, crash);
  }
}
