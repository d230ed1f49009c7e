/**
 * stdout carries results only. Writes resolve once the data is handed to the OS, so that exiting
 * right after cannot cut off a large result (fib(1000000) is 208,988 digits) on a pipe.
 */
import { FibrpcError } from "./errors.ts";

export function writeStdout(text: string): Promise<void> {
  // Bun reports a failed write both to its callback and as the stream's "error" event, which would
  // otherwise be an uncaught exception: the callback is where it is handled.
  if (process.stdout.listenerCount("error") === 0) process.stdout.on("error", reportedByCallback);
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (err) => (err ? reject(err) : resolve()));
  });
}

const reportedByCallback = () => {};

/**
 * Writes a command's results: false if stdout's reader went away (`| head`: the end of the output, no
 * error); a write that fails otherwise throws the error a user reads (stdoutError, exit 74).
 */
export async function writeResults(text: string): Promise<boolean> {
  try {
    await writeStdout(text);
    return true;
  } catch (err) {
    if (isReaderGone(err)) return false;
    throw stdoutError(err);
  }
}

/** stdout's reader went away (`| head -3`: EPIPE): the end of the output, not an error. */
export function isReaderGone(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === "EPIPE";
}

/** A write to stdout that failed otherwise (no space left, a device error): the results are lost (exit 74). */
export function stdoutError(err: unknown): FibrpcError {
  return new FibrpcError("IO_ERROR", `cannot write to stdout: ${osMessage(err)}`, {
    reason: "write-stdout",
  });
}

/** A read of stdin that failed (call - < a directory, a device error): exit 74, not a bug. */
export function stdinError(err: unknown): FibrpcError {
  return new FibrpcError("IO_ERROR", `cannot read the n from stdin: ${osMessage(err)}`, { reason: "read-stdin" });
}

/** "ENOSPC: no space left on device", without the system call Bun appends (", write"). */
function osMessage(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).replace(/, (write|read|fstat|open)$/, "");
}
