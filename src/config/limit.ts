/**
 * `--limit PATTERN` of `plan`, `auto` and `restart` (issue 25), Ansible's `--limit` over the
 * servers the config selects (server_types, include, exclude: config/select.ts), never beyond them.
 *
 * - Patterns are separated by `,` or `:` (outside `{…}` and `[…]`, so a brace list of a glob stays
 *   one pattern); `--limit` may be given more than once (the patterns of all of them, in order).
 * - Each is a glob on the server name, matched as include and exclude match (picomatch, same
 *   rules: `*`, `?`, `[0-9]`, `{web,app}*`, case-sensitive); `all` is every server.
 * - As in Ansible: the plain patterns are a union (none: every selected server), `&pattern`
 *   keeps only servers it matches too, `!pattern` takes out those it matches, whatever the order.
 * - `@FILE`: the patterns in a file, one a line (`#` comments and blank lines skipped): Ansible's
 *   retry files, or a list of names.
 *
 * A pattern that matches none of the selected servers is bad input (exit 2) with what it could
 * match: a typo in `!db1` would otherwise touch the server it meant to keep out.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { didYouMean } from '../util/did-you-mean.js';
import { globMatcher, patternProblem } from './select.js';
import type { ServerSpec } from './types.js';

export interface LimitPattern {
  /** `add`: a plain pattern (union); `and`: `&pattern` (intersection); `not`: `!pattern` (taken out) */
  op: 'add' | 'and' | 'not';
  /** the glob, without its `&` or `!` */
  glob: string;
  /** as written (with its `&` or `!`): what messages and the plan's record show */
  text: string;
}

/** Split one `--limit` value at `,` and `:` outside braces and brackets; pieces trimmed. */
export function splitLimit(value: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of value) {
    if (ch === '{' || ch === '[') depth++;
    else if ((ch === '}' || ch === ']') && depth > 0) depth--;
    if ((ch === ',' || ch === ':') && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += ch;
  }
  out.push(cur.trim());
  return out;
}

/** One pattern as written (after splitting) → what it does, or the reason it cannot be used. */
function patternOf(text: string, value: string): LimitPattern | string {
  if (text === '') return `an empty pattern in ${JSON.stringify(value)} (two separators in a row, or one at an end)`;
  const op = text.startsWith('!') ? 'not' : text.startsWith('&') ? 'and' : 'add';
  const glob = op === 'add' ? text : text.slice(1).trim();
  if (glob === '') return `${JSON.stringify(text)}: ${text[0]} needs a pattern after it`;
  if (glob.startsWith('~')) return `${JSON.stringify(text)}: Ansible's regular expressions (~) are not supported; use a glob (web*, web0[1-3], {web,app}*)`;
  if (glob.startsWith('@')) return `${JSON.stringify(text)}: a file (@FILE) is a pattern of its own, not after ${text[0]}`;
  const why = patternProblem(glob);
  if (why !== null) return why;
  return { op, glob: glob === 'all' ? '*' : glob, text: op === 'add' ? glob : `${text[0]}${glob}` };
}

/**
 * The patterns of `--limit` values (each split at `,` and `:`; an `@FILE` read, relative to
 * `cwd`). Throws a UsageError (exit 2) naming every pattern that cannot be used, nothing read
 * beyond the files named.
 */
export function parseLimit(values: readonly string[], cwd = process.cwd()): LimitPattern[] {
  const out: LimitPattern[] = [];
  const problems: string[] = [];
  const take = (text: string, where: string, value: string) => {
    const p = patternOf(text, value);
    if (typeof p === 'string') problems.push(`${where}${p}`);
    else out.push(p);
  };
  for (const value of values) {
    for (const piece of splitLimit(value)) {
      if (!piece.startsWith('@')) {
        take(piece, '', value);
        continue;
      }
      const file = resolve(cwd, piece.slice(1));
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (e) {
        problems.push(`cannot read ${file} (${piece}): ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        continue;
      }
      const lines = text.split('\n').map((l, i) => ({ l: l.trim(), n: i + 1 })).filter(({ l }) => l !== '' && !l.startsWith('#'));
      if (lines.length === 0) problems.push(`${file} (${piece}) has no pattern in it`);
      for (const { l, n } of lines) for (const p of splitLimit(l)) take(p, `${file}:${n}: `, l);
    }
  }
  if (out.length === 0 && problems.length === 0) problems.push('no pattern given');
  if (problems.length > 0) throw new UsageError(`--limit: ${problems.join('; ')}`);
  return out;
}

/** The servers of `servers` the patterns keep, in their order (Ansible: union, then &, then !). */
export function limitServers<T extends Pick<ServerSpec, 'name'>>(servers: readonly T[], patterns: readonly LimitPattern[]): T[] {
  const m = patterns.map((p) => ({ ...p, match: globMatcher(p.glob) }));
  const adds = m.filter((p) => p.op === 'add');
  return servers.filter(
    (s) =>
      (adds.length === 0 || adds.some((p) => p.match(s.name))) &&
      m.every((p) => p.op !== 'and' || p.match(s.name)) &&
      !m.some((p) => p.op === 'not' && p.match(s.name)),
  );
}

/** At most `max` names, then how many more. */
function someNames(names: readonly string[], max = 12): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, … (${names.length - max} more)`;
}

/**
 * `selected` narrowed by the patterns, or a UsageError (exit 2) when a pattern matches none of
 * them (each named, with what it could match: the selected servers, the nearest names, the
 * servers of the config it matches that server_types, include or exclude leave out, a server
 * type of that name) or when nothing is left.
 */
export function checkLimit(patterns: readonly LimitPattern[], selected: readonly ServerSpec[], configured: readonly ServerSpec[]): ServerSpec[] {
  const problems: string[] = [];
  const names = selected.map((s) => s.name);
  for (const p of patterns) {
    const match = globMatcher(p.glob);
    if (selected.some((s) => match(s.name))) continue;
    const outside = configured.filter((s) => match(s.name) && !selected.includes(s)).map((s) => s.name);
    const types = [...new Set(configured.flatMap((s) => s.types))];
    let why = `${JSON.stringify(p.text)} matches none of the ${names.length} servers the config selects`;
    if (outside.length > 0) why += ` (it matches ${someNames(outside, 5)}, which server_types, include or exclude leave out)`;
    else if (types.includes(p.glob)) why += ` (${p.glob} is a server type: --limit matches server names, as include and exclude do; server_types selects by type)`;
    else why += didYouMean(p.glob, names);
    problems.push(why);
  }
  if (problems.length > 0) {
    throw new UsageError(`--limit: ${problems.join('; ')}; the config selects ${someNames(names)}`);
  }
  const kept = limitServers(selected, patterns);
  if (kept.length === 0) {
    throw new UsageError(`--limit ${patterns.map((p) => p.text).join(',')} leaves none of the ${names.length} servers the config selects (${someNames(names)})`);
  }
  return kept;
}
