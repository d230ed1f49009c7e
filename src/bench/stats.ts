/** The bench's --n: a number or a range. Pure; the option table (src/options.ts) reads it. */

/** "1" → always 1; "10-20" → uniformly drawn from 10..20. */
export function parseNSpec(spec: string): { min: number; max: number } | undefined {
  const match = /^\s*(\d+)\s*(?:(?:-|\.\.)\s*(\d+))?\s*$/.exec(spec);
  if (!match) return undefined;
  const min = Number(match[1]);
  const max = match[2] === undefined ? min : Number(match[2]);
  return min <= max ? { min, max } : undefined;
}
