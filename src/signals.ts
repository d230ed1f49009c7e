/**
 * A second SIGINT or SIGTERM ends what the first let finish (serve's drain, call's and bench's calls in
 * flight). But one stop may arrive twice: GNU `timeout` signals its child and then the child's process
 * group, and a supervisor may signal both the process and its group, a few milliseconds apart. The same
 * signal again within ECHO_MS of the first is taken for that echo, not for a second request; a person
 * pressing Ctrl-C twice is slower than that.
 */
export const ECHO_MS = 100;

export interface FirstSignal {
  signal: NodeJS.Signals;
  at: number;
}

/** The first signal, stamped with when it came. */
export function firstSignal(signal: NodeJS.Signals, now = performance.now()): FirstSignal {
  return { signal, at: now };
}

/** Whether `signal` is the first one arriving again (an echo), not a second stop. */
export function isEcho(first: FirstSignal, signal: NodeJS.Signals, now = performance.now()): boolean {
  return signal === first.signal && now - first.at < ECHO_MS;
}

/** How the line for a second signal names it: "SIGINT again", or "SIGINT after SIGTERM". */
export function secondSignalName(first: FirstSignal, signal: NodeJS.Signals): string {
  return signal === first.signal ? `${signal} again` : `${signal} after ${first.signal}`;
}
