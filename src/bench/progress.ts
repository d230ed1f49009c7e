/**
 * bench's progress on stderr, for a person watching: a bar redrawn in place on a terminal (every 100 ms),
 * else a line a second. Answered calls per second are counted since the previous report (failed calls are
 * not answers).
 */
import type { BenchProgress } from "./run.ts";

export interface ProgressDisplay {
  onProgress: (progress: BenchProgress) => void;
  everyMs: number;
  /** Clears the bar before the summary is printed. */
  done(): void;
}

export function progressDisplay(stderr: { isTTY?: boolean; write(text: string): unknown }): ProgressDisplay {
  const tty = stderr.isTTY === true;
  let lastAnswered = 0;
  let lastAt = 0;
  const rateOf = (p: BenchProgress) => {
    const answered = p.done - p.errors;
    const rate = p.elapsedMs > lastAt ? ((answered - lastAnswered) * 1000) / (p.elapsedMs - lastAt) : 0;
    [lastAnswered, lastAt] = [answered, p.elapsedMs];
    return Math.round(rate);
  };
  const bar = (p: BenchProgress) => {
    const filled = Math.round(p.fraction * 30);
    const percent = (p.fraction * 100).toFixed(0).padStart(3);
    stderr.write(
      `\r\u001b[K[${"#".repeat(filled)}${" ".repeat(30 - filled)}] ${percent}%  ` +
        `${p.done} calls  ${rateOf(p)} calls/s  ${p.errors} errors`,
    );
  };
  const line = (p: BenchProgress) =>
    stderr.write(`${(p.elapsedMs / 1000).toFixed(1)}s: ${p.done} calls, ${rateOf(p)} calls/s, ${p.errors} errors\n`);
  return {
    onProgress: tty ? bar : line,
    everyMs: tty ? 100 : 1000,
    done: () => tty && stderr.write("\r\u001b[K"),
  };
}
