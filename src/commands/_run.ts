/**
 * Runs a command's action and turns its outcome into an exit code. An error a user can cause
 * is one line on stderr, never a stack trace (a thrown error would print minified source from
 * the compiled binary).
 */
import { maskSecrets } from "../config.ts";
import { ExitCode, FibrpcError } from "../errors.ts";

export async function runAction(action: () => Promise<ExitCode>): Promise<never> {
  let code: ExitCode;
  try {
    code = await action();
  } catch (err) {
    code = reportError(err);
  }
  process.exit(code);
}

export function reportError(err: unknown): ExitCode {
  if (err instanceof FibrpcError) {
    process.stderr.write(`fibrpc: ${maskSecrets(err.message)}\n`);
    return err.exitCode;
  }
  const message = err instanceof Error ? err.message : String(err);
  process.stderr.write(`fibrpc: internal error: ${maskSecrets(message)} (this is a bug; please report it with the command you ran)\n`);
  return ExitCode.INTERNAL;
}
