/**
 * "Did you mean": the closest of a few known words (commands, flags) to a mistyped one.
 *
 * Written here rather than taken from a package: the candidates are at most a few dozen short
 * words, so the textbook dynamic programme (optimal string alignment: Levenshtein plus swapped
 * neighbours, so "sevre" is one step from "serve") is a dozen lines, and a dependency would add
 * lockfile churn for no speed anyone could notice.
 */

/** Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`. */
export function editDistance(a: string, b: string): number {
  // d[i][j]: distance between a's first i and b's first j characters.
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) =>
    Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        best = Math.min(best, d[i - 2]![j - 2]! + 1);
      d[i]![j] = best;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * The candidate `word` most likely stands for, or undefined if none is close: the nearest within
 * one edit per three characters of the longer of the two (at least one), else the one candidate
 * that `word` starts or starts with. Ties go to the earlier candidate.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  const lower = word.toLowerCase();
  const all = [...candidates];
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of all) {
    const distance = editDistance(lower, candidate.toLowerCase());
    const allowed = Math.max(1, Math.floor(Math.max(lower.length, candidate.length) / 3));
    if (distance <= allowed && distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  if (best !== undefined) return best;
  if (lower.length < 2) return undefined;
  // A start of one candidate ("work": workers), or one candidate and more ("benchmark": bench).
  const related = all.filter(
    (c) => c.toLowerCase().startsWith(lower) || (c.length >= 3 && lower.startsWith(c.toLowerCase())),
  );
  return related.length === 1 ? related[0] : undefined;
}
