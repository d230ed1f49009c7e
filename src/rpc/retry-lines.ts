/**
 * --retry's "retrying" lines, kept readable when many calls retry at once: during an outage every call in flight
 * retries (`call -` keeps --in-flight of them: a hundred lines a window, hundreds over a broker restart), and one
 * line says what each of them would. So a call gets its first line only if no other call's line for the same code
 * came in the last QUIET_MS; a call that had a line has all its later ones (its progress is followed, as a single
 * call's always is). The lines left out are counted, in the next line for their code, or at the end in one line.
 */
import type { ClientLog } from "./client.ts";

/** At most one new call's line per code in this long. */
export const QUIET_MS = 1_000;

export class RetryLines {
  /** When a line for each code was last written. */
  private readonly lastAt = new Map<string, number>();
  /** Lines left out per code since its last line. */
  private readonly left = new Map<string, number>();
  /** Calls (correlation ids) that had a line, until they end. */
  private readonly followed = new Set<string>();

  constructor(
    private readonly log: ClientLog,
    private readonly now: () => number,
  ) {}

  /** The line `line` for the call `call` retrying after `code`, or counted; `fields` as for the log. */
  retrying(call: string, code: string, line: string, ...fields: unknown[]): void {
    const now = this.now();
    const last = this.lastAt.get(code);
    if (!this.followed.has(call) && last !== undefined && now - last < QUIET_MS) {
      this.left.set(code, (this.left.get(code) ?? 0) + 1);
      return;
    }
    this.followed.add(call);
    this.lastAt.set(code, now);
    const more = this.left.get(code) ?? 0;
    this.left.delete(code);
    this.log.info(more === 0 ? line : `${line}; ${others(more)} after ${code} since the last such line`, ...fields);
  }

  /** The call ended: nothing more to follow of it. */
  ended(call: string): void {
    this.followed.delete(call);
  }

  /** The lines still left out, one per code: at the end of the run. */
  flush(): void {
    for (const [code, more] of this.left) this.log.info(`${others(more)} after ${code} since the last such line`);
    this.left.clear();
  }
}

const others = (count: number) => `${count} other call${count === 1 ? "" : "s"} retried`;
