/**
 * Shell quoting and placeholder expansion for the commands run on servers (SPEC.md "Config":
 * placeholders `{repo}`, `{branch}`, `{commit}`, `{previous_commit}`, each value shell-quoted).
 *
 * Commands run through the remote user's login shell, which we assume is POSIX-compatible (sh,
 * bash, dash, zsh, ksh).
 */

export const PLACEHOLDERS = ['repo', 'branch', 'commit', 'previous_commit'] as const;
export type Placeholder = (typeof PLACEHOLDERS)[number];
export type PlaceholderValues = Partial<Record<Placeholder, string | null>>;

/**
 * A placeholder is `{name}` with name made of lower-case letters and `_`, not preceded by `$`
 * (so `${HOME}` and awk's `'{ print $1 }'` are left alone).
 */
const PLACEHOLDER_RE = /(?<!\$)\{([a-z_]+)\}/g;

/** Characters that need no quoting anywhere in a word in any POSIX shell (nor zsh). */
const SAFE_WORD = /^[A-Za-z0-9_@%+:,./-]+$/;

/**
 * Quote `s` as exactly one POSIX shell word. Words made only of harmless characters are returned
 * as they are (so logs stay readable: `git fetch https://example.com/agent master`); everything
 * else is wrapped in single quotes, with each `'` written as `'\''`. The empty string becomes
 * `''`. Throws on a NUL character, which no shell argument can carry.
 */
export function shellQuote(s: string): string {
  if (s.includes('\0')) throw new Error('cannot pass a NUL character in a shell argument');
  if (s === '') return "''";
  if (SAFE_WORD.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function isPlaceholder(name: string): name is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(name);
}

/** Quote `s` as one word, always in single quotes (even when it needs none). */
function singleQuoted(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Words the shell reads as syntax at the start of a command: never left bare. */
const RESERVED = new Set(['case', 'coproc', 'do', 'done', 'elif', 'else', 'esac', 'fi', 'for', 'function', 'if', 'in', 'select', 'then', 'time', 'until', 'while']);

/** Where in the template's shell syntax a placeholder stands. */
export type PlaceholderContext = 'unquoted' | 'single-quoted' | 'double-quoted';

export interface PlaceholderSite {
  name: string;
  /** offset of the `{` in the template */
  index: number;
  /** the placeholder's text, `{name}` */
  length: number;
  /** the quoting in effect there, when the value can be made one literal string */
  context: PlaceholderContext;
  /** why the value cannot be made safe there (then `context` means nothing) */
  refused: string | null;
}

type Frame =
  | { kind: 'top' }
  /** ( … ) */
  | { kind: 'paren' }
  /** $( … ) */
  | { kind: 'cmdsub' }
  | { kind: 'single' }
  | { kind: 'double' }
  /** ` … ` */
  | { kind: 'backquote' }
  /** $(( … )) or (( … )): counts the parentheses opened inside */
  | { kind: 'arith'; depth: number }
  /** ${ … } */
  | { kind: 'param' }
  /** $' … ' (bash, ksh, zsh; dash reads it as `$` and a single-quoted string) */
  | { kind: 'dollar-single'; backslash: boolean }
  /** # … up to the end of the line */
  | { kind: 'comment' };

const REFUSED_IN: Partial<Record<Frame['kind'], string>> = {
  cmdsub:
    'is inside a $(…) command substitution, where its value cannot be quoted for certain; ' +
    'move it out, e.g. assign it first: v={placeholder}; … "$(… "$v" …)"',
  backquote:
    'is inside a `…` command substitution, where its value cannot be quoted for certain; ' +
    'move it out, e.g. assign it first: v={placeholder}; … "$(… "$v" …)"',
  arith: 'is inside an arithmetic expression ($((…)) or ((…))), where a quoted value is not a number and an unquoted one can run commands',
  param: 'is inside a ${…} parameter expansion, where shells disagree on quoting; assign it to a variable first: v={placeholder}',
  'dollar-single': "is inside a $'…' string, where its value would be read with backslash escapes; use '…' or \"…\" instead",
  comment: 'is in a comment, where a newline in its value would end the comment and run the rest',
};

/** Characters after which `#` starts a comment (it begins a word there). */
const WORD_START = new Set([' ', '\t', '\n', ';', '&', '|', '(', ')', '<', '>']);
const PLACEHOLDER_AT = /\{([a-z_]+)\}/y;

/**
 * Walk `template` as a POSIX shell would lex it and return every placeholder with the quoting
 * in effect where it stands: unquoted, inside '…', inside "…". A placeholder is refused where no
 * quoting of its value is certain in every POSIX shell: inside `…`, $(…), $((…)), ((…)), ${…},
 * $'…', a comment or a here-document, right after a backslash, and after constructs whose end
 * shells disagree on or that this lexer cannot find without a full parse ($'…' with a backslash,
 * `…` holding quotes, $(…), # or <<, $(( not closed by )), quotes inside "${…}", `case` inside
 * (…) or $(…)). test/config/placeholders.test.ts runs what it accepts through real shells.
 */
export function placeholderSites(template: string): PlaceholderSite[] {
  const sites: PlaceholderSite[] = [];
  const stack: Frame[] = [{ kind: 'top' }];
  /** once set, every later placeholder is refused with this reason */
  let lost: string | null = null;
  let heredoc = false;
  const top = () => stack[stack.length - 1]!;
  const isCommand = (f: Frame) => f.kind === 'top' || f.kind === 'paren' || f.kind === 'cmdsub';

  const placeholderAt = (i: number): string | null => {
    if (template[i] !== '{' || template[i - 1] === '$') return null;
    PLACEHOLDER_AT.lastIndex = i;
    const m = PLACEHOLDER_AT.exec(template);
    return m ? (m[1] as string) : null;
  };
  const record = (i: number, name: string, refused: string | null) => {
    const f = top();
    const context: PlaceholderContext = f.kind === 'single' ? 'single-quoted' : f.kind === 'double' ? 'double-quoted' : 'unquoted';
    if (refused === null) refused = lost;
    if (refused === null) {
      for (const fr of stack) {
        const why = REFUSED_IN[fr.kind];
        if (why) {
          refused = why;
          break;
        }
      }
    }
    sites.push({ name, index: i, length: name.length + 2, context, refused: refused?.replace('{placeholder}', `{${name}}`) ?? null });
  };
  /** `$` at i, outside single quotes: what it opens, if anything; returns the next index. */
  const dollar = (i: number, inDouble: boolean): number => {
    const next = template[i + 1];
    if (next === '(') {
      if (template[i + 2] === '(') {
        stack.push({ kind: 'arith', depth: 0 });
        return i + 3;
      }
      stack.push({ kind: 'cmdsub' });
      return i + 2;
    }
    if (next === '{') {
      stack.push({ kind: 'param' });
      return i + 2;
    }
    if (next === "'" && !inDouble) {
      // inside "${…}" bash reads $'…' and dash does not: where it ends is uncertain
      const enclosing = [...stack].reverse().find((fr) => fr.kind === 'double' || isCommand(fr));
      if (enclosing?.kind === 'double') {
        lost ??= "comes after a $'…' inside \"${…}\", which shells read differently";
        return i + 2;
      }
      stack.push({ kind: 'dollar-single', backslash: false });
      return i + 2;
    }
    return i + 1;
  };

  let i = 0;
  while (i < template.length) {
    const ch = template[i] as string;
    const f = top();
    if (heredoc && ch === '\n' && isCommand(f)) {
      // Everything from here is a here-document body (or after one): its text is not
      // lexed as commands, and a quote there is just a character.
      lost = 'is in or after a here-document (<<), whose body is not quoted like a command';
      heredoc = false;
    }
    const name = placeholderAt(i);
    if (name !== null) {
      record(i, name, null);
      i += name.length + 2;
      continue;
    }
    switch (f.kind) {
      case 'single':
        if (ch === "'") stack.pop();
        i++;
        continue;
      case 'comment':
        if (ch === '\n') stack.pop();
        i++;
        continue;
      case 'dollar-single':
        if (ch === '\\') {
          f.backslash = true;
          const n = placeholderAt(i + 1);
          if (n !== null) record(i + 1, n, null);
          i += n !== null ? n.length + 3 : 2;
        } else {
          if (ch === "'") {
            stack.pop();
            // dash ends it at the first quote, the others skip \' : the end is uncertain
            if (f.backslash) lost ??= "comes after a $'…' string with a backslash, whose end shells disagree on";
          }
          i++;
        }
        continue;
      case 'backquote':
        if (ch === '\\') {
          const n = placeholderAt(i + 1);
          if (n !== null) record(i + 1, n, null);
          i += n !== null ? n.length + 3 : 2;
        } else {
          if (ch === '`') stack.pop();
          // POSIX leaves undefined where `…` ends around a quote, $(…), ${…}, a comment or a
          // here-document inside it (bash parses them, dash does not)
          else if (ch === "'" || ch === '"' || ch === '#' || (ch === '$' && /[({]/.test(template[i + 1] ?? '')) || (ch === '<' && template[i + 1] === '<')) {
            lost ??= 'comes after a `…` holding quotes, $(…), ${…}, # or <<, whose end shells disagree on; use $(…) instead';
          }
          i++;
        }
        continue;
      case 'double':
        if (ch === '\\') {
          const n = placeholderAt(i + 1);
          if (n !== null) {
            record(i + 1, n, 'comes right after a backslash; remove the backslash (the value is quoted anyway)');
            i += n.length + 3;
          } else i += 2;
        } else if (ch === '"') {
          stack.pop();
          i++;
        } else if (ch === '`') {
          stack.push({ kind: 'backquote' });
          i++;
        } else if (ch === '$') {
          i = dollar(i, true);
        } else i++;
        continue;
      case 'param':
      case 'arith':
      case 'top':
      case 'paren':
      case 'cmdsub': {
        if (ch === '\\') {
          const n = placeholderAt(i + 1);
          if (n !== null) {
            record(i + 1, n, 'comes right after a backslash; remove the backslash (the value is quoted anyway)');
            i += n.length + 3;
          } else i += 2;
          continue;
        }
        // inside "${…}" quotes are read differently by different shells: where it ends is uncertain
        if ((ch === "'" || ch === '"') && f.kind === 'param' && stack.some((fr) => fr.kind === 'double')) {
          lost ??= 'comes after a ${…} with quotes inside double quotes, which shells read differently';
          i++;
          continue;
        }
        if (ch === "'") {
          stack.push({ kind: 'single' });
          i++;
          continue;
        }
        if (ch === '"') {
          stack.push({ kind: 'double' });
          i++;
          continue;
        }
        if (ch === '`') {
          stack.push({ kind: 'backquote' });
          i++;
          continue;
        }
        if (ch === '$') {
          i = dollar(i, false);
          continue;
        }
        if (f.kind === 'param') {
          if (ch === '}') stack.pop();
          i++;
          continue;
        }
        if (f.kind === 'arith') {
          if (ch === '(') f.depth++;
          else if (ch === ')') {
            if (f.depth > 0) f.depth--;
            else {
              stack.pop();
              if (template[i + 1] === ')') i++;
              // a lone `)`: bash may re-read $(( as $( (, dash looks on for `))`
              else lost ??= 'comes after a $((…)) or ((…)) that does not end with `))`, which shells read differently';
            }
          }
          i++;
          continue;
        }
        // a command context: top, ( … ) or $( … )
        const atWordStart = i === 0 || WORD_START.has(template[i - 1] as string);
        if (ch === '#' && atWordStart) {
          stack.push({ kind: 'comment' });
          i++;
          continue;
        }
        if (ch === '(') {
          if (template[i + 1] === '(') {
            stack.push({ kind: 'arith', depth: 0 });
            i += 2;
          } else {
            stack.push({ kind: 'paren' });
            i++;
          }
          continue;
        }
        if (ch === ')') {
          if (f.kind !== 'top') stack.pop();
          i++;
          continue;
        }
        if (ch === '<' && template[i + 1] === '<') {
          heredoc = true;
          i += 2;
          continue;
        }
        // `case x in a) …` has a `)` of its own: inside ( … ) or $( … ) its end is uncertain
        if (f.kind !== 'top' && atWordStart && template.startsWith('case', i) && /^case(\s|$)/.test(template.slice(i, i + 5))) {
          lost ??= 'comes after a case statement inside (…) or $(…), whose end this check cannot find; move the placeholder before it';
        }
        i++;
        continue;
      }
    }
  }
  return sites;
}

/** What makes `value` one literal string at `site` of `template`. */
function quoteAt(template: string, site: PlaceholderSite, value: string): string {
  if (value.includes('\0')) throw new Error('cannot pass a NUL character in a shell argument');
  const before = site.index === 0 ? '' : (template[site.index - 1] as string);
  const after = template[site.index + site.length] ?? '';
  const safe = value !== '' && SAFE_WORD.test(value);
  switch (site.context) {
    case 'single-quoted':
      // close the quote for each ' of the value: 'it'\''s'
      return value.replace(/'/g, `'\\''`);
    case 'double-quoted':
      // a safe value stays as it is, unless it would extend a $name just before it
      if (safe && !/[A-Za-z0-9_]/.test(before)) return value;
      return `"${singleQuoted(value)}"`;
    case 'unquoted': {
      // bare only as a whole word of its own: not glued to `~`, `$HOME`, braces or a redirection
      const alone = (before === '' || /\s/.test(before)) && (after === '' || /[\s;&|)]/.test(after));
      if (safe && alone && !RESERVED.has(value)) return value;
      return singleQuoted(value);
    }
  }
}

function substitute(template: string, values: PlaceholderValues, quote: (s: string) => string): string {
  // one pass: a value that itself contains `{commit}` is never expanded again
  return template.replace(PLACEHOLDER_RE, (whole, name: string) => {
    if (!isPlaceholder(name)) return whole;
    const v = values[name];
    if (v === null || v === undefined) {
      throw new Error(`placeholder {${name}} has no value here`);
    }
    return quote(v);
  });
}

/** Known placeholders of a command that stand where their value cannot be made safe. */
export function unsafePlaceholders(template: string): Array<PlaceholderSite & { refused: string }> {
  return placeholderSites(template).filter((s): s is PlaceholderSite & { refused: string } => s.refused !== null && isPlaceholder(s.name));
}

/**
 * Replace `{repo}`, `{branch}`, `{commit}` and `{previous_commit}` in a command so that each
 * value is exactly one literal string where the placeholder stands, whatever quoting surrounds
 * it: unquoted, the value is single-quoted (left bare when it is a harmless word of its own);
 * inside '…' or "…" the quote is closed around the single-quoted value and reopened. A
 * placeholder where that cannot be done (see placeholderSites) throws, naming it: config
 * validation refuses such commands. Other `{word}`s are left as they are (validation rejects
 * them in config commands). Throws an Error naming the placeholder when a used placeholder has
 * no value.
 */
export function expandCommand(template: string, values: PlaceholderValues): string {
  let out = '';
  let at = 0;
  for (const site of placeholderSites(template)) {
    if (!isPlaceholder(site.name)) continue;
    if (site.refused !== null) throw new Error(`placeholder {${site.name}} ${site.refused}`);
    const v = values[site.name];
    if (v === null || v === undefined) throw new Error(`placeholder {${site.name}} has no value here`);
    const cut = expansionBefore(template, site, at);
    out += template.slice(at, cut) + (cut < site.index ? `\\${template.slice(cut, site.index)}` : '') + quoteAt(template, site, v);
    at = site.index + site.length;
  }
  return out + template.slice(at);
}

/**
 * A `~` (anywhere) or a word-starting `=` of the template right before an unquoted placeholder
 * (`~{repo}`, `={repo}`): zsh expands them whatever the quoting of what follows (`~''` is
 * $HOME, `~'x'` the home of user x, `='ls'` the path of ls), where POSIX shells, seeing quoted
 * characters in the tilde-prefix, leave them literal (`~x`). The index of that character, to be
 * written with a backslash (`\~'x'`: the literal `~x` in every shell, zsh too); else `site.index`.
 * Not a character an earlier placeholder's value took (`from`), nor one a backslash already quotes.
 */
function expansionBefore(template: string, site: PlaceholderSite, from: number): number {
  const i = site.index - 1;
  if (site.context !== 'unquoted' || i < from || i < 0) return site.index;
  const ch = template[i];
  const prev = i === 0 ? '' : (template[i - 1] as string);
  if (prev === '\\') return site.index;
  if (ch === '~') return i;
  if (ch === '=' && (prev === '' || WORD_START.has(prev))) return i;
  return site.index;
}

/** Like expandCommand but without quoting: for text that is not a command (`agent.health.expect`). */
export function expandText(template: string, values: PlaceholderValues): string {
  return substitute(template, values, (s) => s);
}

/** Every placeholder-shaped `{name}` in a template, known or not, in order of appearance (unique). */
export function findPlaceholders(template: string): string[] {
  const out: string[] = [];
  for (const m of template.matchAll(PLACEHOLDER_RE)) {
    const name = m[1] as string;
    if (!out.includes(name)) out.push(name);
  }
  return out;
}

/** The placeholder-shaped names in a template that are not known placeholders. */
export function unknownPlaceholders(template: string): string[] {
  return findPlaceholders(template).filter((n) => !isPlaceholder(n));
}
