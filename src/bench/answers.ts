/**
 * What a right answer to fib(n) looks like, for bench to check every reply against, worked out before
 * the clock starts. For n below EXACT_BELOW the whole decimal number. Above it, computing each in full
 * took minutes for a range near 10^7 (fib(10^7) has 2,089,877 digits), during which the load generator
 * sent nothing and missed the broker's heartbeats: there an answer is checked by its number of digits
 * and its last TAIL_DIGITS digits, both exact and found in microseconds (fast doubling modulo 10^12; the
 * digits from log10 of Binet's formula). An answer for another n, cut short or garbled fails either.
 */
import { fibDecimal, fibModulo } from "../fib.ts";

/** Below this n the whole answer is kept (fib(99,999) has 20,898 digits: ~1 ms to compute). */
export const EXACT_BELOW = 100_000;
/** How many of an answer's last digits are compared above EXACT_BELOW. */
export const TAIL_DIGITS = 12;
const TAIL_MODULUS = 10n ** BigInt(TAIL_DIGITS);
const LOG10_PHI = Math.log10((1 + Math.sqrt(5)) / 2);
const LOG10_SQRT5 = Math.log10(Math.sqrt(5));

/** The check of one answer: the exact text, or its number of digits (a range, see digitsOf) and last digits. */
export type ExpectedAnswer = string | { digits: readonly [min: number, max: number]; tail: string };

export function expectedAnswer(n: number): ExpectedAnswer {
  if (n < EXACT_BELOW) return fibDecimal(n);
  return { digits: digitsOf(n), tail: fibModulo(n, TAIL_MODULUS).toString().padStart(TAIL_DIGITS, "0") };
}

export function isRightAnswer(answer: string, expected: ExpectedAnswer): boolean {
  if (typeof expected === "string") return answer === expected;
  const { digits, tail } = expected;
  return answer.length >= digits[0] && answer.length <= digits[1] && answer.endsWith(tail) && /^[1-9]\d*$/.test(answer);
}

/**
 * fib(n)'s number of digits, floor(n·log10 φ − log10 √5) + 1 (Binet: fib(n) is φ^n/√5 rounded). A double
 * holds n·log10 φ to ~1e-9 near n = 10^7: within 1e-7 of a whole number either count is accepted.
 */
export function digitsOf(n: number): readonly [number, number] {
  const log = n * LOG10_PHI - LOG10_SQRT5;
  const digits = Math.floor(log) + 1;
  const fraction = log - Math.floor(log);
  if (fraction < 1e-7) return [digits - 1, digits];
  if (fraction > 1 - 1e-7) return [digits, digits + 1];
  return [digits, digits];
}
