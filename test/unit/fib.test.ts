import { describe, expect, test } from "bun:test";
import { fib, fibDecimal } from "../../src/fib.ts";

/** Reference: plain iteration, independent of the fast-doubling formulas. */
function* fibIterative(): Generator<bigint> {
  let a = 0n;
  let b = 1n;
  for (;;) {
    yield a;
    [a, b] = [b, a + b];
  }
}

describe("fib", () => {
  const known: [number, string][] = [
    [0, "0"],
    [1, "1"],
    [2, "1"],
    [3, "2"],
    [10, "55"],
    [30, "832040"],
    [50, "12586269025"],
    [93, "12200160415121876738"],
    [100, "354224848179261915075"],
    [300, "222232244629420445529739893461909967206666939096499764990979600"],
  ];
  for (const [n, expected] of known) {
    test(`fib(${n}) = ${expected}`, () => expect(fibDecimal(n)).toBe(expected));
  }

  test("every n from 0 to 3000 matches plain iteration", () => {
    const reference = fibIterative();
    for (let n = 0; n <= 3000; n++) expect(fib(n)).toBe(reference.next().value as bigint);
  });

  test("fib(50000) matches plain iteration", () => {
    const reference = fibIterative();
    let value = 0n;
    for (let n = 0; n <= 50_000; n++) value = reference.next().value as bigint;
    expect(fib(50_000)).toBe(value);
  });

  test("fib(1000000) has 208,988 digits and the right last 30 digits", () => {
    const digits = fibDecimal(1_000_000);
    expect(digits.length).toBe(208_988);
    // Reference for the tail: iterate modulo 10^30.
    const mod = 10n ** 30n;
    let a = 0n;
    let b = 1n;
    for (let n = 0; n < 1_000_000; n++) [a, b] = [b, (a + b) % mod];
    expect(digits.slice(-30)).toBe(a.toString().padStart(30, "0"));
  });

  test("refuses n that is not a non-negative safe integer", () => {
    for (const bad of [-1, 1.5, Number.NaN, 2 ** 60]) expect(() => fib(bad)).toThrow(RangeError);
  });
});
