/**
 * `call -`: n read from a stream (stdin), at most `inFlight` calls outstanding, each result written as
 * it comes back: in input order, through a reorder window of twice that many, or in completion order
 * (--unordered). Memory is bounded by the window, not by the stream: reading waits while the window is
 * full or stdout's reader is behind. It ends on the stream's end, on stdout closing (`| head -3`: at
 * once, quietly), or when told to stop (a signal, no server): then nothing more is read, and the calls
 * in flight finish (or end with the error given) and are printed before it returns.
 */
import { ExitCode, mostSevere, type FibrpcError } from "../errors.ts";
import type { CallOutcome, SendOutcome } from "../rpc/client.ts";
import { MAX_PROTOCOL_N, parseN } from "../rpc/protocol.ts";
import { quote } from "../printable.ts";
import { errorLine, linesOf, type LineStyle, type Printed } from "./lines.ts";
import type { StdoutLines } from "./stdout-lines.ts";
import type { Token } from "./tokens.ts";

export interface StreamJob {
  /** The words of the input, a chunk's at a time (tokens.ts). */
  tokens: AsyncIterable<Token[]>;
  /** One call (or, --no-wait, one send), by its own deadline; never rejects. */
  call(n: number): Promise<CallOutcome | SendOutcome>;
  out: StdoutLines;
  /** A line for stderr. */
  err(line: string): void;
  /** While stderr's reader is behind, what resolves once it takes more: a wait before making more lines. */
  errRoom?(): Promise<void> | undefined;
  style: LineStyle;
  inFlight: number;
  unordered: boolean;
  /** Wait for the calls in flight even once stdout's reader is gone (a pipeline's sends, whose confirms count). */
  settleAll?: boolean;
}

/** Why reading stopped early: a signal (the calls in flight finish), or an error all of them end with. */
export type Stop = { signal: "SIGINT" | "SIGTERM" } | { error: FibrpcError };

/** One n (or bad word) of the input, in input order: its lines once known. */
interface Entry {
  printed?: Printed;
}

export class CallStream {
  private running = 0;
  private worst: ExitCode = ExitCode.OK;
  /** Ordered output: entries not printed yet, oldest first (at most `window`). */
  private readonly queue: Entry[] = [];
  private wake: (() => void) | undefined;
  private stopped: Stop | undefined;
  /** Ends the wait of unlessHalted under way, if any. */
  private halt: (() => void) | undefined;
  /** The calls made (bad words are none) and those that succeeded (--no-wait: confirmed by the broker). */
  private readonly counted = { calls: 0, ok: 0 };

  constructor(private readonly job: StreamJob) {}

  /** Stops reading; the calls in flight finish (a signal) or are ended by the caller's close (an error). */
  stop(why: Stop): void {
    this.stopped ??= why;
    this.notify();
  }

  get stoppedBy(): Stop | undefined {
    return this.stopped;
  }

  get tally(): { readonly calls: number; readonly ok: number } {
    return this.counted;
  }

  /** Runs the stream to its end; the exit code of the worst outcome (a bad word is a usage error, 64). */
  async run(): Promise<ExitCode> {
    const { job } = this;
    const window = job.unordered ? job.inFlight : 2 * job.inFlight;
    job.out.whenClosed().then(() => this.notify());
    const chunks = job.tokens[Symbol.asyncIterator]();
    let words: Token[] = [];
    let next = 0;
    for (;;) {
      while (!this.done() && (this.running >= job.inFlight || this.queue.length >= window)) await this.next();
      if (job.out.blocked) await this.unlessHalted(job.out.room());
      const errBehind = job.errRoom?.();
      if (errBehind) await this.unlessHalted(errBehind);
      if (this.done()) break;
      if (next === words.length) {
        const chunk = await this.unlessHalted(chunks.next());
        if (chunk === undefined || chunk.done || this.done()) break;
        words = chunk.value;
        next = 0;
        continue;
      }
      this.start(words[next++]!);
    }
    // Not awaited: a read under way (a terminal, an idle producer) may never end.
    void chunks.return?.(undefined);
    // A pipeline's requests are published already: their confirms are what the command counts, reader or not.
    while (this.running > 0 && (!job.out.closed || job.settleAll)) await this.next();
    await job.out.end();
    return this.worst;
  }

  private done(): boolean {
    return this.stopped !== undefined || this.job.out.closed;
  }

  private start(token: Token): void {
    const entry: Entry = {};
    if (!this.job.unordered) this.queue.push(entry);
    const parsed = token.cut ? undefined : parseN(token.text, MAX_PROTOCOL_N, token.written);
    if (parsed?.ok) {
      this.running++;
      void this.job.call(parsed.n).then((outcome) => {
        this.running--;
        this.counted.calls++;
        if (outcome.ok) this.counted.ok++;
        const printed = linesOf(outcome, this.job.style);
        // Ended by the error that stopped the stream: said once, by the command, not once per call.
        if (!outcome.ok && this.stopped && "error" in this.stopped && outcome.error === this.stopped.error)
          printed.stderr = undefined;
        this.settled(entry, printed);
        this.notify();
      });
      return;
    }
    const why = parsed === undefined ? "longer than any n" : parsed.message;
    this.settled(entry, this.badWord(token, why));
  }

  private badWord(token: Token, why: string): Printed {
    const shown = token.written;
    // The word and `why` (which quotes it too) with every control character escaped (quote).
    const message = `invalid n ${quote(shown)}: ${why}`;
    const { json, masker } = this.job.style;
    return {
      stderr: `line ${token.line}: ${message}\n`,
      stdout: json ? errorLine({ input: shown, line: token.line }, "USAGE", message, 0, masker) : undefined,
      code: ExitCode.USAGE,
    };
  }

  private settled(entry: Entry, printed: Printed): void {
    if (this.job.unordered) {
      this.emit(printed);
      return;
    }
    entry.printed = printed;
    while (this.queue[0]?.printed) this.emit(this.queue.shift()!.printed!);
  }

  private emit(printed: Printed): void {
    // stdout's reader went away: the job is over, and the calls ended by the close that follows say nothing.
    if (this.job.out.closed) return;
    this.worst = mostSevere([this.worst, printed.code]);
    if (printed.stderr) {
      this.job.out.flush();
      this.job.err(printed.stderr);
    }
    if (printed.stdout) this.job.out.write(printed.stdout);
  }

  /** Resolves at the next call settled, stop, or stdout closing. */
  private next(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  /**
   * `p`, or undefined as soon as the stream is stopped or stdout closes: stopping must not wait for the
   * next word (stdin may be a terminal, or an idle producer). One waiter at a time, in its own promise:
   * racing every read against one long-lived promise would pile a reaction on it per word.
   */
  private unlessHalted<T>(p: Promise<T>): Promise<T | undefined> {
    if (this.done()) return Promise.resolve(undefined);
    return new Promise<T | undefined>((resolve, reject) => {
      // Replaced by the next wait; calling it once its promise has settled does nothing.
      this.halt = () => resolve(undefined);
      p.then(resolve, reject);
    });
  }

  private notify(): void {
    if (this.done()) this.halt?.();
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}
