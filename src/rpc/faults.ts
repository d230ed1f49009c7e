/**
 * Fault injection for the test suite, off unless FIBRPC_TEST_FAULTS is set, e.g.
 * "throw=13,crash=14": computing fib(13) throws (an unexpected server exception), and fib(14)
 * crashes the worker with an uncaught error. Lets tests prove that the worker keeps serving,
 * that crashed workers are restarted and that poison requests stop. Not a user feature.
 */
export interface Faults {
  throwOn?: number;
  crashOn?: number;
}

export function parseFaults(spec: string | undefined): Faults | undefined {
  if (!spec) return undefined;
  const faults: Faults = {};
  for (const part of spec.split(",")) {
    const [kind, value] = part.split("=");
    const n = Number(value);
    if (kind === "throw") faults.throwOn = n;
    else if (kind === "crash") faults.crashOn = n;
  }
  return faults;
}

/** Called before computing fib(n). */
export function injectFault(faults: Faults, n: number): void {
  if (n === faults.throwOn) throw new Error(`injected exception for n=${n}`);
  if (n === faults.crashOn) {
    // Thrown outside any handler, so it ends the worker like a real crash would.
    setTimeout(() => {
      throw new Error(`injected crash for n=${n}`);
    });
    // Stop this delivery here: no reply, no ack, as if the worker had died mid-computation.
    throw new InjectedCrash();
  }
}

export class InjectedCrash extends Error {}
