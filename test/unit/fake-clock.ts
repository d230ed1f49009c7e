/**
 * Virtual time for the unit tests of code that waits (bench's scheduler, --retry's back-off): timers
 * fire in order of due time and, between two, every pending promise settles, so a test of a 20 s
 * schedule runs in milliseconds and sees exactly when each thing happened.
 */
export class FakeClock {
  t: number;
  private timers: { at: number; seq: number; fire: () => void }[] = [];
  private seq = 0;
  /**
   * `start`: the time it shows first (ms); `oversleepMs`: how late every sleep wakes up (a busy or
   * slow load generator).
   */
  constructor(
    private readonly oversleepMs = 0,
    start = 0,
  ) {
    this.t = start;
  }
  now(): number {
    return this.t;
  }
  /** Resolves `ms` from now (never, once `signal` is aborted). */
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const timer = { at: this.t + Math.max(0, ms) + this.oversleepMs, seq: this.seq++, fire: resolve };
      this.timers.push(timer);
      signal?.addEventListener("abort", () => (this.timers = this.timers.filter((t) => t !== timer)), { once: true });
    });
  }
  at(time: number, fire: () => void): void {
    this.timers.push({ at: time, seq: this.seq++, fire });
  }
  /** Runs the simulation until `work` settles. */
  async run<T>(work: Promise<T>): Promise<T> {
    let settled = false;
    work.then(
      () => (settled = true),
      () => (settled = true),
    );
    for (;;) {
      // Let every promise chain run to its next wait (a macrotask turn is after all microtasks).
      await new Promise((resolve) => setImmediate(resolve));
      if (settled) return work;
      if (this.timers.length === 0) throw new Error(`deadlock at t=${this.t}: nothing scheduled and the work not done`);
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
      const next = this.timers.shift()!;
      this.t = Math.max(this.t, next.at);
      next.fire();
    }
  }
}
