/**
 * "did you mean …?" for a name that does not exist: the candidates closest to the input by edit
 * distance (optimal string alignment: insert, delete, substitute, swap two neighbours), best
 * first. How close is close enough, and how a typed prefix counts, depends on what is named
 * (Nearness): NAMES for the names of updates, servers and branches, CONFIG_WORDS for the words
 * of a config (keys, placeholders, server types, restart names).
 */
export interface Nearness {
  /** the form two names are compared in */
  fold: (s: string) => string;
  /** the edits allowed for an input whose folded form has `length` characters */
  limit: (length: number) => number;
  /**
   * A typed prefix (an input of 3 or more characters). `near`: a candidate that starts with it
   * is as near as the limit. `sole`: when nothing is within the limit, the one candidate (of 4
   * or more characters) that starts with the input or that the input starts with (`hostname`
   * for `host`, `timeout_seconds` for `timeout`); none when there are several.
   */
  prefix: 'near' | 'sole';
  /** candidates equally near: by name, or in the order given */
  ties: 'name' | 'given';
  /** how many to name at most */
  max: number;
}

/**
 * Names as written, a difference in case alone half an edit; within a third of the input's
 * length (at least 1, at most 3 edits); up to three.
 */
export const NAMES: Nearness = {
  fold: (s) => s,
  limit: (n) => Math.min(3, Math.max(1, Math.floor(n / 3))),
  prefix: 'near',
  ties: 'name',
  max: 3,
};

/**
 * Words of a config, compared without case, '-', '_' and spaces (`Known-Hosts` is
 * `known_hosts`); 1 edit up to 4 characters, 2 up to 8, else 3, and nothing for an empty word;
 * the one nearest, the first listed of equals.
 */
export const CONFIG_WORDS: Nearness = {
  fold: (s) => s.toLowerCase().replace(/[-_\s]/g, ''),
  limit: (n) => (n === 0 ? -1 : n <= 4 ? 1 : n <= 8 ? 2 : 3),
  prefix: 'sole',
  ties: 'given',
  max: 1,
};

/** The candidates near enough to `input` to be what was meant, best first. */
export function closest(input: string, candidates: readonly string[], how: Nearness = NAMES): string[] {
  const w = how.fold(input);
  const limit = how.limit(w.length);
  const near: Array<{ name: string; d: number }> = [];
  const prefixed: string[] = [];
  for (const c of new Set(candidates)) {
    if (c === input) continue;
    const f = how.fold(c);
    let d = f === w ? 0 : c.toLowerCase() === input.toLowerCase() ? 0.5 : distance(w, f);
    const isPrefix = w.length >= 3 && (how.prefix === 'near' ? f.startsWith(w) : f.length >= 4 && (f.startsWith(w) || w.startsWith(f)));
    if (d > limit && isPrefix && how.prefix === 'near') d = limit;
    if (d <= limit) near.push({ name: c, d });
    else if (isPrefix) prefixed.push(c);
  }
  if (near.length === 0 && how.prefix === 'sole') return prefixed.length === 1 ? prefixed : [];
  near.sort((a, b) => a.d - b.d || (how.ties === 'name' ? a.name.localeCompare(b.name) : 0));
  return near.slice(0, how.max).map((s) => s.name);
}

/**
 * `; did you mean "a" or "b"?`, or '' when nothing is close. `show` writes each name
 * (quoted by default).
 */
export function didYouMean(input: string, candidates: readonly string[], how: Nearness = NAMES, show: (name: string) => string = (n) => JSON.stringify(n)): string {
  const near = closest(input, candidates, how);
  if (near.length === 0) return '';
  const shown = near.map(show);
  return `; did you mean ${shown.length === 1 ? shown[0] : `${shown.slice(0, -1).join(', ')} or ${shown.at(-1)}`}?`;
}

/**
 * The edit distance of `a` and `b`, a swap of two neighbours one edit; 4 when their lengths
 * differ by more than 3 (too far for any limit, whatever the distance).
 */
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
