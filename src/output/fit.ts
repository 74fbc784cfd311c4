/**
 * How wide text is on a terminal, and fitting tables and one-line views to it (issue 25 §3):
 * `plan`, `status`, `status --watch` and the live view of `start` are cut to the terminal's
 * width when stdout is one (`--wide`, or a pipe, shows everything whole). Widths are measured as
 * a terminal shows the text: ANSI colour sequences take no column, East Asian wide characters
 * and emoji two, combining marks none. Nothing here knows a command: the views say which of their
 * columns (or parts) give way first, and how far.
 */

// eslint-disable-next-line no-control-regex
const ANSI = /\x1b\[[0-9;?]*[ -/]*[@-~]/y;

/** Text without its ANSI CSI sequences (colours, cursor moves). */
export function stripAnsi(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/\x1b\[[0-9;?]*[ -/]*[@-~]/g, '');
}

/** East Asian wide and fullwidth ranges (and the emoji blocks): two columns each. */
const WIDE: ReadonlyArray<readonly [number, number]> = [
  [0x1100, 0x115f], [0x2e80, 0x303e], [0x3041, 0x33ff], [0x3400, 0x4dbf], [0x4e00, 0x9fff],
  [0xa000, 0xa4cf], [0xa960, 0xa97f], [0xac00, 0xd7a3], [0xf900, 0xfaff], [0xfe10, 0xfe19],
  [0xfe30, 0xfe6f], [0xff00, 0xff60], [0xffe0, 0xffe6], [0x1f300, 0x1f64f], [0x1f900, 0x1f9ff],
  [0x20000, 0x2fffd], [0x30000, 0x3fffd],
];
const MARK = /^\p{M}$/u;
const EMOJI = /^\p{Emoji_Presentation}$/u;

/** Columns one code point takes on a terminal: 0 (combining, zero-width, controls), 1 or 2. */
export function charWidth(ch: string): number {
  const cp = ch.codePointAt(0) ?? 0;
  if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) return 0;
  if (cp < 0x300) return 1;
  if (MARK.test(ch) || (cp >= 0x200b && cp <= 0x200f) || cp === 0x2060 || (cp >= 0xfe00 && cp <= 0xfe0f)) return 0;
  for (const [lo, hi] of WIDE) if (cp >= lo && cp <= hi) return 2;
  return EMOJI.test(ch) ? 2 : 1;
}

/** Split into ANSI sequences and single code points. */
function tokens(text: string): Array<{ ansi: boolean; s: string }> {
  const out: Array<{ ansi: boolean; s: string }> = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] === '\x1b') {
      ANSI.lastIndex = i;
      const m = ANSI.exec(text);
      if (m) {
        out.push({ ansi: true, s: m[0] });
        i += m[0].length;
        continue;
      }
    }
    const cp = text.codePointAt(i) ?? 0;
    const s = String.fromCodePoint(cp);
    out.push({ ansi: false, s });
    i += s.length;
  }
  return out;
}

/** Printable ASCII only: a column a character (most cells of a table). */
const PLAIN = /^[\x20-\x7e]*$/;

/** Columns `text` takes on a terminal (ANSI sequences take none). */
export function displayWidth(text: string): number {
  if (PLAIN.test(text)) return text.length;
  let w = 0;
  for (const t of tokens(text)) if (!t.ansi) w += charWidth(t.s);
  return w;
}

/**
 * `text` cut to at most `width` columns, ending with `…` when cut; a wide character that would
 * straddle the edge is left out whole. ANSI colour sequences are kept (a reset is added after a
 * cut one), so a coloured line is cut by what shows.
 */
export function truncate(text: string, width: number): string {
  if (displayWidth(text) <= width) return text;
  if (width <= 0) return '';
  let out = '';
  let w = 0;
  let coloured = false;
  for (const t of tokens(text)) {
    if (t.ansi) {
      out += t.s;
      coloured = true;
      continue;
    }
    const cw = charWidth(t.s);
    if (w + cw > width - 1) break;
    out += t.s;
    w += cw;
  }
  return out + '…' + (coloured ? '\x1b[0m' : '');
}

/** `text` padded with spaces to `width` columns (never cut). */
export function padTo(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

/** Cut to `width` columns: trailing spaces (alignment) go first, then the text, with `…`. */
function cutTo(text: string, width: number): string {
  const bare = text.trimEnd();
  return displayWidth(bare) <= width ? padTo(bare, width) : truncate(bare, width);
}

/**
 * Several lines as one, for a fitted cell: each line trimmed, the empty ones left out, joined by
 * ` · ` (an unreachable server's error with its hint, a command's output).
 */
export function oneLine(text: string): string {
  return text
    .split(/\r\n|\r|\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .join(' · ');
}

/**
 * The columns a view fits to: a terminal's width, or null for everything whole (`--wide`, a
 * pipe, `--json`).
 */
export type Width = number | null;

/** How one column of a table gives way when the table is wider than the terminal. */
export interface ColumnFit {
  /** cut (ending with `…`) when the table is too wide, the lowest first; without it (and `drop`), kept whole */
  cut?: number;
  /** the fewest columns a cut leaves it before other columns are left out (at least its header's width) */
  min?: number;
  /** left out whole when cutting the others is not enough, the lowest first */
  drop?: number;
}

export interface TableFit {
  /** the columns to fit to; null: every cell whole */
  width: Width;
  /** per column; absent: the last column is cut, the others kept whole */
  columns?: ReadonlyArray<ColumnFit | undefined>;
  /** the first row is a header (default): a column is never cut narrower than it */
  header?: boolean;
}

/**
 * Left-aligned columns, two spaces apart, widths from what shows (colours, wide characters).
 * Fitted to `fit.width`: the columns marked `cut` are cut in turn down to their `min`, then the
 * columns marked `drop` are left out in turn (header and cells) while that is not enough, then
 * the cut columns are cut down to their header, and last left out. A header is never cut, nor a
 * column kept whole (the names, the statuses): a table those alone make too wide is wider than
 * the terminal.
 */
export function fitTable(rows: readonly (readonly string[])[], fit: TableFit = { width: null }): string {
  const n = Math.max(0, ...rows.map((r) => r.length));
  const natural: number[] = Array.from({ length: n }, (_, i) => Math.max(0, ...rows.map((r) => displayWidth(r[i] ?? ''))));
  const header = fit.header !== false && rows.length > 0 ? rows[0]! : null;
  const floorOf = (i: number) => Math.min(natural[i]!, header ? displayWidth(header[i] ?? '') : 0);
  const spec = (i: number): ColumnFit | undefined => (fit.columns ? fit.columns[i] : i === n - 1 ? { cut: 0 } : undefined);
  const order = (key: 'cut' | 'drop') =>
    Array.from({ length: n }, (_, i) => i)
      .filter((i) => spec(i)?.[key] !== undefined)
      .sort((a, b) => spec(a)![key]! - spec(b)![key]!);

  let shown = Array.from({ length: n }, (_, i) => i);
  let widths = natural.slice();
  const width = fit.width;
  if (width !== null) {
    const tryWidths = (hard: boolean): boolean => {
      widths = natural.slice();
      let total = shown.reduce((s, i) => s + natural[i]!, 0) + 2 * Math.max(0, shown.length - 1);
      for (const i of order('cut')) {
        if (total <= width) break;
        if (!shown.includes(i)) continue;
        const floor = hard ? floorOf(i) : Math.min(natural[i]!, Math.max(floorOf(i), spec(i)?.min ?? 0));
        const take = Math.min(total - width, widths[i]! - floor);
        if (take > 0) {
          widths[i]! -= take;
          total -= take;
        }
      }
      return total <= width;
    };
    const drops = order('drop');
    while (!tryWidths(false)) {
      const next = drops.shift();
      if (next === undefined) {
        // every column that may be left out is; the cut ones are cut down to their header, and
        // when the columns kept whole leave no room for those headers, they are left out too
        const cuts = order('cut');
        while (!tryWidths(true) && cuts.length > 0) {
          const cut = cuts.shift()!;
          shown = shown.filter((i) => i !== cut);
        }
        break;
      }
      shown = shown.filter((i) => i !== next);
    }
  }
  return rows
    .map((row) =>
      shown
        .map((i, k) => {
          const cell = row[i] ?? '';
          const cut = displayWidth(cell) > widths[i]! ? truncate(cell, widths[i]!) : cell;
          return k === shown.length - 1 ? cut : padTo(cut, widths[i]!);
        })
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** A piece of a one-line view (the live view's lines): its text and how it gives way. */
export interface Part {
  text: string;
  /** written before it unless it is the first shown (` · `, a space) */
  sep?: string;
  /** when the line is too wide, the parts with a rank give way in turn, the lowest first; without one, kept whole */
  rank?: number;
  /** with a rank: cut (trailing spaces first, then with `…`) down to this many columns before it is left out */
  min?: number;
  /** with a rank: cut down to `min`, never left out */
  keep?: boolean;
}

/** The parts with `sep` before the first (where they follow other parts). */
export function withSep(parts: readonly Part[], sep: string): Part[] {
  return parts.map((p, i) => (i === 0 ? { ...p, sep } : p));
}

function joinParts(parts: readonly Part[]): string {
  return parts.map((p, i) => (i === 0 ? '' : (p.sep ?? '')) + p.text).join('');
}

/**
 * The parts as one line, fitted to `width` columns: in rank order each part is cut down to its
 * `min` (when it has one), then left out (unless `keep`), until the line fits. What is left may
 * still be wider (the parts kept whole); the live area cuts it at the edge.
 */
export function fitParts(parts: readonly Part[], width: Width): string {
  let shown = parts.slice();
  if (width === null || displayWidth(joinParts(shown)) <= width) return joinParts(shown);
  const ranked = shown.filter((p) => p.rank !== undefined).sort((a, b) => a.rank! - b.rank!);
  for (const p of ranked) {
    let over = displayWidth(joinParts(shown)) - width;
    if (over <= 0) break;
    const at = shown.indexOf(p);
    if (p.min !== undefined) {
      const w = displayWidth(p.text);
      const to = Math.max(p.min, w - over);
      if (to < w) {
        shown[at] = { ...p, text: cutTo(p.text, to) };
        over = displayWidth(joinParts(shown)) - width;
      }
    }
    if (over > 0 && !p.keep) shown = shown.filter((_, i) => i !== at);
  }
  return joinParts(shown);
}
