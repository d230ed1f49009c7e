/**
 * Exact Fibonacci numbers by fast doubling:
 *   F(2k)   = F(k) * (2 F(k+1) - F(k))
 *   F(2k+1) = F(k)^2 + F(k+1)^2
 * O(log n) BigInt multiplications; fib(1_000_000) takes a few milliseconds plus the decimal
 * conversion. Knows nothing of AMQP.
 */
export function fib(n: number): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`fib: n must be a non-negative safe integer, got ${n}`);
  let a = 0n; // F(k)
  let b = 1n; // F(k+1)
  // Walk the bits of n from the most significant one down; k starts at 0 and becomes n.
  for (const bit of n.toString(2)) {
    const f2k = a * ((b << 1n) - a);
    const f2k1 = a * a + b * b;
    if (bit === "1") {
      a = f2k1;
      b = f2k + f2k1;
    } else {
      a = f2k;
      b = f2k1;
    }
  }
  return a;
}

/** fib(n) as decimal text, the form results travel in. */
export function fibDecimal(n: number): string {
  return fib(n).toString(10);
}

/** fib(n) modulo `m`, by the same fast doubling: O(log n) steps on numbers below m², whatever n is. */
export function fibModulo(n: number, m: bigint): bigint {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`fib: n must be a non-negative safe integer, got ${n}`);
  let a = 0n;
  let b = 1n % m;
  for (const bit of n.toString(2)) {
    const f2k = (a * (((b << 1n) - a + m) % m)) % m;
    const f2k1 = (a * a + b * b) % m;
    if (bit === "1") {
      a = f2k1;
      b = (f2k + f2k1) % m;
    } else {
      a = f2k;
      b = f2k1;
    }
  }
  return a;
}
