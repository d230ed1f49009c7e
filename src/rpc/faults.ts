/**
 * Fault injection for the test suite, off unless FIBRPC_TEST_FAULTS is set, e.g.
 * "throw=13,crash=14":
 *   throw=N          computing fib(N) throws (an unexpected server exception);
 *   crash=N          fib(N) crashes the worker with an uncaught error, on every delivery;
 *   crash-first=N    the same, on the first delivery only (the redelivery succeeds);
 *   kill-after-reply=N  the reply to fib(N) is published, then the whole process is SIGKILLed
 *                    before the ack: the window in which the broker redelivers an answered
 *                    request.
 * Lets tests prove that workers keep serving, crashed workers are restarted, poison requests
 * stop, and callers get exactly one answer. Not a user feature.
 */
export interface Faults {
  throwOn?: number;
  crashOn?: number;
  crashFirstOn?: number;
  killAfterReplyOn?: number;
}

export function parseFaults(spec: string | undefined): Faults | undefined {
  if (!spec) return undefined;
  const faults: Faults = {};
  for (const part of spec.split(",")) {
    const [kind, value] = part.split("=");
    const n = Number(value);
    if (kind === "throw") faults.throwOn = n;
    else if (kind === "crash") faults.crashOn = n;
    else if (kind === "crash-first") faults.crashFirstOn = n;
    else if (kind === "kill-after-reply") faults.killAfterReplyOn = n;
  }
  return faults;
}

/** Called before computing fib(n); `firstDelivery` is false for a redelivered request. */
export function injectFault(faults: Faults, n: number, firstDelivery: boolean): void {
  if (n === faults.throwOn) throw new Error(`injected exception for n=${n}`);
  if (n === faults.crashOn || (n === faults.crashFirstOn && firstDelivery)) {
    // Thrown outside any handler, so it ends the worker like a real crash would.
    setTimeout(() => {
      throw new Error(`injected crash for n=${n}`);
    });
    // Stop this delivery here: no reply, no ack, as if the worker had died mid-computation.
    throw new InjectedCrash();
  }
}

export class InjectedCrash extends Error {}

/** After publishing the reply to fib(n): true if the process is to die before acking it. */
export function killAfterReply(faults: Faults, n: number): boolean {
  if (n !== faults.killAfterReplyOn) return false;
  // Late enough for the reply to reach the broker, and nothing is acked in between.
  setTimeout(() => process.kill(process.pid, "SIGKILL"), 100);
  return true;
}
