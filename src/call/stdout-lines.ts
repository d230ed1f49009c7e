/**
 * stdout for a stream of results (call -): lines gathered and written once per event-loop turn, with
 * the pipe's back-pressure obeyed (a slow reader slows the calls down, nothing piles up in memory),
 * and a reader that went away (`| head -3`: EPIPE) seen as the end of the job, not as an error; any other
 * failure ends the output too, and is kept for the command to report (call/run.ts).
 */
import { isReaderGone } from "../output.ts";

export class StdoutLines {
  private pending: string[] = [];
  private scheduled = false;
  private drained: Promise<void> | undefined;
  /** Ends the wait for 'drain' under way (stdout gone: no 'drain' will come). */
  private releaseDrain: (() => void) | undefined;
  private gone = false;
  private readonly onGone: Array<() => void> = [];
  /** Why stdout failed, if not because its reader went away (no space left, a device error): results were lost. */
  failure: Error | undefined;

  constructor(private readonly out: NodeJS.WritableStream = process.stdout) {
    out.on("error", (err: NodeJS.ErrnoException) => {
      // EPIPE: the reader closed its end. Anything else is no better: nothing more can be written.
      this.gone = true;
      this.pending = [];
      this.releaseDrain?.();
      for (const f of this.onGone.splice(0)) f();
      if (!isReaderGone(err)) this.failure ??= err;
    });
  }

  /** stdout is closed (its reader went away): stop making output. */
  get closed(): boolean {
    return this.gone;
  }

  /** Resolves when stdout closes. */
  whenClosed(): Promise<void> {
    return this.gone ? Promise.resolve() : new Promise((resolve) => this.onGone.push(resolve));
  }

  /** Queues a line; wait on `room()` before making many more. */
  write(text: string): void {
    if (this.gone) return;
    this.pending.push(text);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => this.flush());
    }
  }

  /** The pipe's reader is behind: wait on room() before making more. */
  get blocked(): boolean {
    return this.drained !== undefined;
  }

  /** Resolves once the pipe takes more (at once, unless the reader is behind); also when stdout is gone. */
  room(): Promise<void> {
    return this.drained ?? Promise.resolve();
  }

  /** Everything queued handed to the OS (or stdout gone). */
  async end(): Promise<void> {
    this.flush();
    await this.room();
    if (this.gone) return;
    // A failure of this last write may come to its callback before (or without) the "error" event.
    await new Promise<void>((resolve) =>
      this.out.write("", (err) => {
        if (err && !isReaderGone(err)) this.failure ??= err;
        resolve();
      }),
    );
  }

  /** Writes `text` now, after what is queued (stderr's lines: each in its place between stdout's). */
  writeNow(text: string): void {
    if (this.gone) return;
    this.pending.push(text);
    this.flush();
  }

  /** Writes what is queued now: before a line on stderr, so that a terminal showing both keeps their order. */
  flush(): void {
    this.scheduled = false;
    if (this.gone || this.pending.length === 0) return;
    const text = this.pending.join("");
    this.pending = [];
    if (this.out.write(text) || this.drained) return;
    this.drained = new Promise<void>((resolve) => {
      const done = () => {
        this.out.removeListener("drain", done);
        this.drained = undefined;
        this.releaseDrain = undefined;
        resolve();
      };
      this.out.once("drain", done);
      this.releaseDrain = done;
    });
  }
}
