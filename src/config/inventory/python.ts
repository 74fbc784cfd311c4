/**
 * The two bits of Python that Ansible's INI inventory parser leans on, rewritten so values come
 * out as Ansible reads them:
 *
 * - `shlexSplit`: `shlex.split(line, comments=True)` (POSIX mode), which splits a host line into
 *   the host pattern and its `key=value` words;
 * - `literalEval`: `ast.literal_eval`, which every INI value goes through (host line and
 *   `[group:vars]` alike): `2222` is the number 2222, `'2222'` and `"x"` are strings, `True`,
 *   `None`, lists, tuples, dicts and sets are themselves; anything else (`10.0.0.1`, `deploy`,
 *   `a b`) is not a Python literal, and Ansible keeps the text as it is.
 */

export class ShlexError extends Error {}

/**
 * `shlex.split(s, comments=True, posix=True)`; with `{ comments: false }`, `shlex.split(s)` (as
 * Ansible splits ansible_ssh_common_args: `#` is an ordinary character). Throws ShlexError where
 * Python raises ValueError.
 */
export function shlexSplit(s: string, opts: { comments?: boolean } = {}): string[] {
  const comments = opts.comments ?? true;
  const tokens: string[] = [];
  let token = '';
  let inToken = false;
  let i = 0;
  const isSpace = (ch: string) => ch === ' ' || ch === '\t' || ch === '\r' || ch === '\n';
  while (i < s.length) {
    const ch = s[i]!;
    if (isSpace(ch)) {
      if (inToken) {
        tokens.push(token);
        token = '';
        inToken = false;
      }
      i++;
    } else if (ch === '#' && comments) {
      // a comment runs to the end of the line, in the middle of a word too
      break;
    } else if (ch === "'") {
      const end = s.indexOf("'", i + 1);
      if (end === -1) throw new ShlexError('No closing quotation');
      token += s.slice(i + 1, end);
      inToken = true;
      i = end + 1;
    } else if (ch === '"') {
      inToken = true;
      i++;
      for (;;) {
        if (i >= s.length) throw new ShlexError('No closing quotation');
        const c = s[i]!;
        if (c === '"') {
          i++;
          break;
        }
        if (c === '\\') {
          if (i + 1 >= s.length) throw new ShlexError('No closing quotation');
          const next = s[i + 1]!;
          // inside double quotes a backslash escapes only `"` and itself
          token += next === '"' || next === '\\' ? next : `\\${next}`;
          i += 2;
          continue;
        }
        token += c;
        i++;
      }
    } else if (ch === '\\') {
      if (i + 1 >= s.length) throw new ShlexError('No escaped character');
      token += s[i + 1]!;
      inToken = true;
      i += 2;
    } else {
      token += ch;
      inToken = true;
      i++;
    }
  }
  if (inToken) tokens.push(token);
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// ast.literal_eval

/** What literal_eval gives back; tuples and sets become arrays (as they do in Ansible's JSON). */
export type PyValue = string | number | boolean | null | PyValue[] | { [key: string]: PyValue };

class NotLiteral extends Error {}

/**
 * `ast.literal_eval(text)` as Ansible's INI plugin uses it: the value when `text` is a Python
 * literal, else `text` unchanged (Ansible catches ValueError and SyntaxError and keeps the
 * string). Complex numbers and bytes/str mixes, which no inventory uses, are kept as text.
 */
export function literalEval(text: string): PyValue {
  try {
    const p = new LiteralParser(text.replace(/^[ \t]+/, ''));
    const v = p.parseTop();
    return v;
  } catch (e) {
    if (e instanceof NotLiteral) return text;
    throw e;
  }
}

type Tok =
  | { t: 'str'; v: string; bytes: boolean }
  | { t: 'num'; v: number }
  | { t: 'name'; v: string }
  | { t: 'op'; v: string }
  | { t: 'end' };

class LiteralParser {
  private pos = 0;
  private depth = 0;
  private peeked: Tok | null = null;

  constructor(private readonly s: string) {}

  parseTop(): PyValue {
    const first = this.parseExpr();
    // `1, 2` is a tuple without parentheses
    if (this.peek().t === 'op' && (this.peek() as { v: string }).v === ',') {
      const items = [first];
      while (this.isOp(',')) {
        this.next();
        if (this.peek().t === 'end') break;
        items.push(this.parseExpr());
      }
      this.expectEnd();
      return items;
    }
    this.expectEnd();
    return first;
  }

  private expectEnd(): void {
    if (this.next().t !== 'end') throw new NotLiteral();
  }

  private isOp(v: string): boolean {
    const t = this.peek();
    return t.t === 'op' && t.v === v;
  }

  private parseExpr(): PyValue {
    const t = this.next();
    switch (t.t) {
      case 'str': {
        let v = t.v;
        // adjacent literals concatenate: 'a' "b" is 'ab'
        while (this.peek().t === 'str') {
          const more = this.next() as { t: 'str'; v: string; bytes: boolean };
          if (more.bytes !== t.bytes) throw new NotLiteral();
          v += more.v;
        }
        return v;
      }
      case 'num':
        return t.v;
      case 'name':
        if (t.v === 'True') return true;
        if (t.v === 'False') return false;
        if (t.v === 'None') return null;
        if (t.v === 'set' && this.isOp('(')) {
          this.next();
          if (!this.isOp(')')) throw new NotLiteral();
          this.next();
          return [];
        }
        throw new NotLiteral();
      case 'op':
        if (t.v === '-' || t.v === '+') {
          const n = this.next();
          if (n.t !== 'num') throw new NotLiteral();
          return t.v === '-' ? -n.v : n.v;
        }
        if (t.v === '[') return this.sequence(']');
        if (t.v === '(') return this.parens();
        if (t.v === '{') return this.braces();
        throw new NotLiteral();
      case 'end':
        throw new NotLiteral();
    }
  }

  private sequence(close: string): PyValue[] {
    const items: PyValue[] = [];
    this.depth++;
    while (!this.isOp(close)) {
      items.push(this.parseExpr());
      if (this.isOp(',')) this.next();
      else if (!this.isOp(close)) throw new NotLiteral();
    }
    this.next();
    this.depth--;
    return items;
  }

  private parens(): PyValue {
    this.depth++;
    let out: PyValue;
    if (this.isOp(')')) out = [];
    else {
      const first = this.parseExpr();
      if (this.isOp(')')) out = first; // parentheses around one value: not a tuple
      else {
        const items = [first];
        while (this.isOp(',')) {
          this.next();
          if (this.isOp(')')) break;
          items.push(this.parseExpr());
        }
        if (!this.isOp(')')) throw new NotLiteral();
        out = items;
      }
    }
    this.next();
    this.depth--;
    return out;
  }

  private braces(): PyValue {
    this.depth++;
    if (this.isOp('}')) {
      this.next();
      this.depth--;
      return {};
    }
    const first = this.parseExpr();
    if (this.isOp(':')) {
      const out: Record<string, PyValue> = {};
      let key = first;
      for (;;) {
        this.next(); // ':'
        const value = this.parseExpr();
        if (typeof key === 'object' && key !== null) throw new NotLiteral();
        out[String(key)] = value;
        if (this.isOp(',')) this.next();
        if (this.isOp('}')) break;
        key = this.parseExpr();
        if (!this.isOp(':')) throw new NotLiteral();
      }
      this.next();
      this.depth--;
      return out;
    }
    const items = [first];
    while (this.isOp(',')) {
      this.next();
      if (this.isOp('}')) break;
      items.push(this.parseExpr());
    }
    if (!this.isOp('}')) throw new NotLiteral();
    this.next();
    this.depth--;
    return items;
  }

  private peek(): Tok {
    this.peeked ??= this.lex();
    return this.peeked;
  }

  private next(): Tok {
    const t = this.peek();
    this.peeked = null;
    return t;
  }

  private lex(): Tok {
    const s = this.s;
    // whitespace, comments, and line breaks (only inside brackets or after a backslash)
    for (;;) {
      const ch = s[this.pos];
      if (ch === ' ' || ch === '\t' || ch === '\f') this.pos++;
      else if (ch === '#') {
        while (this.pos < s.length && s[this.pos] !== '\n' && s[this.pos] !== '\r') this.pos++;
      } else if (ch === '\\' && (s[this.pos + 1] === '\n' || s[this.pos + 1] === '\r')) this.pos += 2;
      else if (ch === '\n' || ch === '\r') {
        if (this.depth === 0) {
          // a newline ends the expression: only blank lines and comments may follow
          const rest = s.slice(this.pos);
          if (/^(?:[ \t\f\r\n]|#[^\r\n]*)*$/.test(rest)) {
            this.pos = s.length;
            return { t: 'end' };
          }
          throw new NotLiteral();
        }
        this.pos++;
      } else break;
    }
    if (this.pos >= s.length) return { t: 'end' };
    const rest = s.slice(this.pos);
    const str = /^([rRbBuU]{0,2})('''|"""|'|")/.exec(rest);
    if (str) {
      const prefix = str[1]!.toLowerCase();
      if (!['', 'r', 'u', 'b', 'br', 'rb'].includes(prefix)) throw new NotLiteral();
      return this.string(prefix, str[2]!, str[0].length);
    }
    const num = /^(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+|(?:\d(?:_?\d)*)?\.?(?:\d(?:_?\d)*)?(?:[eE][+-]?\d(?:_?\d)*)?[jJ]?)/.exec(rest);
    if (num && /^(?:\d|\.\d)/.test(num[0])) {
      const text = num[0];
      this.pos += text.length;
      if (/^[A-Za-z0-9_]/.test(s.slice(this.pos))) throw new NotLiteral(); // 12abc
      return { t: 'num', v: parseNumber(text) };
    }
    const name = /^[\p{L}_][\p{L}\p{N}_]*/u.exec(rest);
    if (name) {
      this.pos += name[0].length;
      return { t: 'name', v: name[0] };
    }
    const op = rest[0]!;
    if ('[](){},:+-'.includes(op)) {
      this.pos++;
      return { t: 'op', v: op };
    }
    throw new NotLiteral();
  }

  private string(prefix: string, quote: string, skip: number): Tok {
    const s = this.s;
    const raw = prefix.includes('r');
    const bytes = prefix.includes('b');
    let i = this.pos + skip;
    let out = '';
    for (;;) {
      if (i >= s.length) throw new NotLiteral();
      if (s.startsWith(quote, i)) {
        i += quote.length;
        break;
      }
      const ch = s[i]!;
      if ((ch === '\n' || ch === '\r') && quote.length === 1) throw new NotLiteral();
      if (ch === '\\') {
        const next = s[i + 1];
        if (next === undefined) throw new NotLiteral();
        if (raw) {
          out += ch + next;
          i += 2;
          continue;
        }
        const esc = unescape(s, i, bytes);
        out += esc.text;
        i = esc.end;
        continue;
      }
      out += ch;
      i++;
    }
    this.pos = i;
    return { t: 'str', v: out, bytes };
  }
}

function parseNumber(text: string): number {
  const t = text.replace(/_/g, '');
  if (/[jJ]$/.test(t)) throw new NotLiteral(); // complex
  if (/^0[xX]/.test(t)) return parseInt(t.slice(2), 16);
  if (/^0[oO]/.test(t)) return parseInt(t.slice(2), 8);
  if (/^0[bB]/.test(t)) return parseInt(t.slice(2), 2);
  if (/^\d+$/.test(t)) {
    // Python 3 refuses leading zeros (`010`) except in zero itself (`00`)
    if (t.length > 1 && t.startsWith('0') && !/^0+$/.test(t)) throw new NotLiteral();
    return Number(t);
  }
  return Number(t);
}

const SIMPLE_ESCAPES: Record<string, string> = {
  '\\': '\\',
  "'": "'",
  '"': '"',
  a: '\x07',
  b: '\b',
  f: '\f',
  n: '\n',
  r: '\r',
  t: '\t',
  v: '\v',
};

function unescape(s: string, i: number, bytes: boolean): { text: string; end: number } {
  const next = s[i + 1]!;
  if (next === '\n') return { text: '', end: i + 2 };
  if (next === '\r') return { text: '', end: s[i + 2] === '\n' ? i + 3 : i + 2 };
  const simple = SIMPLE_ESCAPES[next];
  if (simple !== undefined) return { text: simple, end: i + 2 };
  const oct = /^[0-7]{1,3}/.exec(s.slice(i + 1));
  if (oct) return { text: String.fromCodePoint(parseInt(oct[0], 8)), end: i + 1 + oct[0].length };
  if (next === 'x') {
    const hex = /^[0-9a-fA-F]{2}/.exec(s.slice(i + 2));
    if (!hex) throw new NotLiteral();
    return { text: String.fromCodePoint(parseInt(hex[0], 16)), end: i + 4 };
  }
  if (!bytes && (next === 'u' || next === 'U')) {
    const n = next === 'u' ? 4 : 8;
    const hex = new RegExp(`^[0-9a-fA-F]{${n}}`).exec(s.slice(i + 2));
    if (!hex) throw new NotLiteral();
    const cp = parseInt(hex[0], 16);
    if (cp > 0x10ffff) throw new NotLiteral();
    return { text: String.fromCodePoint(cp), end: i + 2 + n };
  }
  if (!bytes && next === 'N') throw new NotLiteral(); // \N{NAME}: no Unicode name table here
  // an unknown escape keeps its backslash
  return { text: `\\${next}`, end: i + 2 };
}
