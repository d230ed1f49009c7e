/**
 * Time for the client side: wall-clock deadlines, sleeping, and a race against a deadline. Plain timers (no
 * Bun API): the library (src/index.ts) runs on Node.js too.
 */

/** Wall-clock time (ms since the epoch, as deadlines are) and waiting: a seam for tests. */
export interface Time {
  now(): number;
  /**
   * Resolves after `ms` (never for Infinity); never, once `signal` is aborted (its timer cleared, so it keeps
   * no process alive).
   */
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}
export const realTime: Time = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      // No end (bench --duration reconnects until it is closed): a timer would fire at once, and warn.
      if (ms === Number.POSITIVE_INFINITY) return;
      const timer = setTimeout(resolve, ms);
      signal?.addEventListener("abort", () => clearTimeout(timer), { once: true });
    }),
};

/** `promise`, or a rejection with `timedOut()` if `timeUp` resolves first (its wait ended once `promise` settles). */
export async function waitUntil<T>(
  promise: Promise<T>,
  timeUp: (signal: AbortSignal) => Promise<void>,
  timedOut: () => Error,
): Promise<T> {
  const done = new AbortController();
  try {
    return await Promise.race([promise, timeUp(done.signal).then(() => Promise.reject(timedOut()))]);
  } finally {
    done.abort();
  }
}
