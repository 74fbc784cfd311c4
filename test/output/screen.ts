/**
 * A small terminal for tests: feed it what a program wrote to its TTY and read the screen it
 * leaves, as a VT100-style terminal of `cols` columns would show it. It knows what the live view
 * uses (printable text with wide characters, CR, LF (as CR LF, as a pty's onlcr makes it), BS, CSI cursor up/down/forward/back/column,
 * erase in display and in line; colours and modes are ignored) and records every time a line
 * ran past the right edge and wrapped: the live view must never make the terminal wrap.
 */
import { charWidth } from '../../src/output/fit.js';

export class Screen {
  private rows: string[][] = [[]];
  private row = 0;
  private col = 0;
  /** how many times text ran past column `cols` and wrapped */
  wraps = 0;
  /** the widest any line got, in columns */
  widest = 0;
  /** the lines that wrapped, as they were when they did */
  readonly wrapped: string[] = [];

  constructor(readonly cols: number) {}

  private cells(): string[] {
    while (this.rows.length <= this.row) this.rows.push([]);
    return this.rows[this.row]!;
  }

  write(data: string): this {
    let i = 0;
    while (i < data.length) {
      const ch = data[i]!;
      if (ch === '\x1b') {
        i = this.escape(data, i);
        continue;
      }
      i++;
      if (ch === '\r') this.col = 0;
      else if (ch === '\n') {
        // as a pty delivers it (onlcr): a new line starts at the left edge
        this.col = 0;
        this.row++;
        this.cells();
      } else if (ch === '\b') this.col = Math.max(0, this.col - 1);
      else if (ch < ' ' || ch === '\x7f') continue;
      else {
        let s = ch;
        const code = ch.charCodeAt(0);
        if (code >= 0xd800 && code <= 0xdbff && i < data.length) s += data[i++];
        this.put(s);
      }
    }
    return this;
  }

  private put(s: string): void {
    const w = charWidth(s);
    if (this.col + w > this.cols) {
      this.wraps++;
      this.wrapped.push(this.cells().join(''));
      this.row++;
      this.col = 0;
    }
    const cells = this.cells();
    while (cells.length < this.col) cells.push(' ');
    cells[this.col] = s;
    if (w === 2) cells[this.col + 1] = '';
    this.col += w;
    this.widest = Math.max(this.widest, this.col);
  }

  /** A CSI (ESC [ … final) or OSC (ESC ] … BEL/ST) sequence at `i`; returns the index after it. */
  private escape(data: string, i: number): number {
    const kind = data[i + 1];
    if (kind === ']') {
      const bel = data.indexOf('\x07', i);
      const st = data.indexOf('\x1b\\', i);
      const end = [bel, st].filter((x) => x >= 0).sort((a, b) => a - b)[0];
      return end === undefined ? data.length : end + (end === st ? 2 : 1);
    }
    if (kind !== '[') return i + 2;
    // eslint-disable-next-line no-control-regex
    const m = /^\x1b\[([0-9;?]*)([ -/]*)([@-~])/.exec(data.slice(i, i + 32));
    if (!m) return data.length;
    const params = m[1]!.replace('?', '');
    const n = Number(params.split(';')[0] || '0');
    switch (m[3]) {
      case 'A':
        this.row = Math.max(0, this.row - Math.max(1, n));
        break;
      case 'B':
        this.row += Math.max(1, n);
        this.cells();
        break;
      case 'C':
        this.col = Math.min(this.cols, this.col + Math.max(1, n));
        break;
      case 'D':
        this.col = Math.max(0, this.col - Math.max(1, n));
        break;
      case 'G':
        this.col = Math.max(0, Math.max(1, n) - 1);
        break;
      case 'J':
        if (n === 2 || n === 3) {
          this.rows = this.rows.map(() => []);
        } else {
          this.cells().length = Math.min(this.cells().length, this.col);
          this.rows.length = this.row + 1;
        }
        break;
      case 'K':
        if (n === 0) this.cells().length = Math.min(this.cells().length, this.col);
        else if (n === 2) this.rows[this.row] = [];
        break;
      default:
        break; // colours (m), modes (h, l): nothing to show
    }
    return i + m[0].length;
  }

  /** The screen, one string per row, right-trimmed; trailing empty rows dropped. */
  lines(): string[] {
    const out = this.rows.map((r) => r.join('').trimEnd());
    while (out.length > 0 && out[out.length - 1] === '') out.pop();
    return out;
  }
}
