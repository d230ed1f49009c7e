/** The bench's --n (a number or a range) and --rate, read by the option table (src/options.ts). */
import { MAX_MAX_N } from "../config.ts";
import { usageError } from "../errors.ts";
import { quote } from "../printable.ts";

/** "1" → always 1; "10-20" → uniformly drawn from 10..20. */
export function parseNSpec(spec: string): { min: number; max: number } | undefined {
  const match = /^\s*(\d+)\s*(?:(?:-|\.\.)\s*(\d+))?\s*$/.exec(spec);
  if (!match) return undefined;
  const min = Number(match[1]);
  const max = match[2] === undefined ? min : Number(match[2]);
  return min <= max ? { min, max } : undefined;
}

/**
 * --n as the option table keeps it: the range, and its text as the summary shows it, written plainly ("5" for
 * " 5" or "05", "3" for "3-3", "10-20" for "10..20").
 */
export function parseNOption(value: string): { min: number; max: number; text: string } {
  const range = parseNSpec(value);
  if (!range) throw usageError(`--n must be a number or a range like 10-20, got ${quote(value)}`);
  // The server decides what it computes (serve --max-n; above it, N_TOO_LARGE replies), but
  // bench computes every expected answer itself before the run: up to the largest --max-n
  // any fibrpc server takes, not beyond (fib of a much larger n would never finish). The largest n shown by its
  // digits as given (nothing to escape): a number past 2^53 read as one is not the one given.
  if (range.max > MAX_MAX_N) {
    const given = /(\d+)\s*$/.exec(value)?.[1] ?? String(range.max);
    throw usageError(`--n must be at most ${MAX_MAX_N} (the largest serve --max-n), got ${given}`);
  }
  return { ...range, text: range.min === range.max ? String(range.min) : `${range.min}-${range.max}` };
}

/** --rate: calls per second in decimal (2000, 0.5, .5), above 0 and at most 1000000. */
export function parseRate(value: string): number {
  const rate = /^\s*(?:\d+(?:\.\d+)?|\.\d+)\s*$/.test(value) ? Number(value) : Number.NaN;
  if (rate > 0 && rate <= 1_000_000) return rate;
  throw usageError(
    "--rate must be a number of calls per second, in decimal (e.g. 2000 or 0.5), above 0 and at most 1000000, " +
      `got ${quote(value)}`,
  );
}
