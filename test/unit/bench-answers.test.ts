/** bench's check of an answer (src/bench/answers.ts): exact below EXACT_BELOW, digits and last digits above. */
import { describe, expect, test } from "bun:test";
import { digitsOf, EXACT_BELOW, expectedAnswer, isRightAnswer } from "../../src/bench/answers.ts";
import { fibDecimal, fibModulo } from "../../src/fib.ts";

describe("fib modulo m", () => {
  test("is fib(n) mod m, for every n up to 1,000 and several m", () => {
    for (const m of [2n, 10n, 1_000_000_007n, 10n ** 12n])
      for (let n = 0; n <= 1000; n++) expect(fibModulo(n, m)).toBe(BigInt(fibDecimal(n)) % m);
  });
});

describe("the number of digits from Binet's formula", () => {
  test("holds the exact count, for every n from 2 to 5,000 and at a few large n", () => {
    const ns = [...Array.from({ length: 4999 }, (_, i) => i + 2), 100_000, 314_159, 1_000_000];
    for (const n of ns) {
      const [min, max] = digitsOf(n);
      const exact = fibDecimal(n).length;
      expect(exact >= min && exact <= max, `n = ${n}`).toBe(true);
      expect(max - min).toBeLessThanOrEqual(1);
    }
  });
});

describe("an answer's check", () => {
  test("below EXACT_BELOW, the whole number", () => {
    expect(expectedAnswer(30)).toBe("832040");
    expect(isRightAnswer("832040", expectedAnswer(30))).toBe(true);
    expect(isRightAnswer("832041", expectedAnswer(30))).toBe(false);
  });

  test("above it: the right answer passes; a neighbour's, one cut short, one with a digit changed do not", () => {
    for (const n of [EXACT_BELOW, 123_457, 1_000_000]) {
      const expected = expectedAnswer(n);
      expect(typeof expected).toBe("object");
      const right = fibDecimal(n);
      expect(isRightAnswer(right, expected)).toBe(true);
      for (const wrong of [
        fibDecimal(n - 1),
        fibDecimal(n + 1),
        right.slice(1),
        right.slice(0, -1),
        `${right.slice(0, -1)}${(Number(right.at(-1)) + 1) % 10}`,
        `-${right}`,
        `0${right.slice(1)}`,
      ])
        expect(isRightAnswer(wrong, expected)).toBe(false);
    }
  });
});
