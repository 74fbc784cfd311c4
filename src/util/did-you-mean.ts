/**
 * "did you mean …?" for a name that does not exist: the candidates closest to `input` by edit
 * distance (optimal string alignment: insert, delete, substitute, swap two neighbours), within
 * a third of the input's length (at least 1, at most 3 edits), best first. A candidate that
 * merely differs in case, or that starts with the input (a prefix typed), also counts.
 */
export function closest(input: string, candidates: readonly string[], max = 3): string[] {
  const limit = Math.min(3, Math.max(1, Math.floor(input.length / 3)));
  const scored: Array<{ name: string; d: number }> = [];
  for (const c of new Set(candidates)) {
    if (c === input) continue;
    let d = c.toLowerCase() === input.toLowerCase() ? 0.5 : distance(input, c);
    if (d > limit && input.length >= 3 && c.startsWith(input)) d = limit;
    if (d <= limit) scored.push({ name: c, d });
  }
  scored.sort((a, b) => a.d - b.d || a.name.localeCompare(b.name));
  return scored.slice(0, max).map((s) => s.name);
}

/** `; did you mean "a" or "b"?`, or '' when nothing is close. */
export function didYouMean(input: string, candidates: readonly string[]): string {
  const near = closest(input, candidates);
  if (near.length === 0) return '';
  const quoted = near.map((n) => JSON.stringify(n));
  return `; did you mean ${quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`}?`;
}

function distance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 4;
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}
