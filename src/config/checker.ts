/**
 * The checker: collects every problem of a config with its key path (`agent.health.timeout`,
 * `servers[2].host`), its line and, for another file (the site defaults, an inventory), that
 * file; reads each kind of value (a string, a duration, a commit, a shell command, a path…)
 * and says what is wrong with it in the words every section uses.
 */
import * as path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { parseVersion } from '../util/version.js';
import { CONFIG_WORDS, didYouMean } from '../util/did-you-mean.js';
import { parseDuration } from '../util/duration.js';
import { PLACEHOLDERS, unknownPlaceholders, unsafePlaceholders } from '../util/shell.js';
import { KEYS } from './keys.js';
import { patternProblem } from './select.js';
import type { ValidateContext } from './validate.js';

export type KeyPath = (string | number)[];

/** Where a section's keys are written, for "belongs under" when it is not `NAME:` at the top. */
const SECTION_PLACE: Record<string, string> = { health: 'agent.health:', hook: 'an entry of hooks: (- run: …)', window: 'execution.window:' };

/** A commit in a config: 7 to 40 hex digits, either case (stored lower case). */
const HEX_RE = /^[0-9a-fA-F]{7,40}$/;

/** `agent.health.timeout`, `servers[2].host`: a key path as messages write it. */
export function formatKeyPath(p: KeyPath): string {
  let out = '';
  for (const seg of p) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out;
}

/** A short description of a value's type for "got X" in messages. */
export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'nothing (null)';
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v)}`;
  if (typeof v === 'number') return `the number ${v}`;
  if (typeof v === 'boolean') return `${v}`;
  return typeof v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Where a problem is reported when it is not at a key path of the config itself. */
interface Where {
  path: string;
  file?: string;
  line?: number | undefined;
}

export class Checker {
  readonly problems: ConfigProblem[] = [];
  /**
   * `file`: the problems are in that file (an inventory), not the config. `where`: places a
   * key path itself (an Ansible host's fields come from variables written here and there).
   */
  constructor(
    private readonly ctx: ValidateContext,
    private readonly at: { file?: string; where?: (p: KeyPath) => Where } = {},
  ) {}

  /** A problem that matters only when connecting (ConfigProblem.local): a file this machine lacks. */
  addLocal(p: KeyPath, message: string): void {
    this.add(p, message);
    this.problems[this.problems.length - 1]!.local = true;
  }

  add(p: KeyPath, message: string): void {
    const w = this.at.where?.(p);
    const problem: ConfigProblem = { path: w ? w.path : formatKeyPath(p), message };
    const merged = w || this.at.file !== undefined ? undefined : this.mergedPlace(p);
    const line = w ? w.line : merged ? merged.line : this.line(p);
    if (line !== undefined) problem.line = line;
    const file = w ? w.file : merged ? merged.file : this.at.file;
    if (file !== undefined) problem.file = file;
    this.problems.push(problem);
  }

  /**
   * With site defaults (ctx.origin): the file of `p`'s nearest part that is written somewhere
   * (undefined: the config itself) and the line in that file. Without them, undefined.
   */
  private mergedPlace(p: KeyPath): { file?: string; line?: number } | undefined {
    if (!this.ctx.origin) return undefined;
    const configFile = path.resolve(this.ctx.dir, this.ctx.file);
    let file: string | undefined;
    for (let i = p.length; i >= 0; i--) {
      const o = this.ctx.origin(p.slice(0, i));
      if (!o) continue;
      file ??= o.file;
      if (o.file !== file) break;
      const line = i > 0 ? this.ctx.locate?.(p.slice(0, i)) : undefined;
      if (line !== undefined) return { ...(file !== configFile ? { file } : {}), line };
    }
    return file !== undefined && file !== configFile ? { file } : {};
  }

  /** The folder a relative path at `p` is resolved against: that of the file it was written in. */
  private dirOf(p: KeyPath): string {
    if (!this.ctx.origin || this.at.file !== undefined || this.at.where) return this.ctx.dir;
    for (let i = p.length; i >= 0; i--) {
      const o = this.ctx.origin(p.slice(0, i));
      if (o) return o.dir;
    }
    return this.ctx.dir;
  }

  /** The line of a key path (or of its nearest parent that has one). */
  lineOf(p: KeyPath): number | undefined {
    return this.line(p);
  }

  /**
   * Where the value at `p` was written, in words (ServerSpec.sources): `servers[2].host`, with the
   * site defaults' file:line when written there; `hosts.ini:3 (web1 ansible_host)` for an inventory.
   */
  sourceOf(p: KeyPath): string {
    const at = (file: string | undefined, line: number | undefined) => `${file ?? ''}${line !== undefined ? `:${line}` : ''}`;
    const w = this.at.where?.(p);
    if (w) return `${at(w.file, w.line)} (${w.path})`;
    if (this.at.file !== undefined) return `${at(this.at.file, this.line(p))} (${formatKeyPath(p)})`;
    const merged = this.mergedPlace(p);
    return merged?.file !== undefined ? `${formatKeyPath(p)} (${at(merged.file, merged.line)})` : formatKeyPath(p);
  }

  private line(p: KeyPath): number | undefined {
    if (!this.ctx.locate) return undefined;
    for (let i = p.length; i >= 1; i--) {
      const l = this.ctx.locate(p.slice(0, i));
      if (l !== undefined) return l;
    }
    return undefined;
  }

  /** A mapping section; null/absent is an empty one. Reports unknown keys. */
  section(p: KeyPath, v: unknown, known: readonly string[], planned: Record<string, string> = {}): Record<string, unknown> | null {
    if (v === undefined || v === null) return {};
    if (!isRecord(v)) {
      this.add(p, `must be a mapping of keys (${known.join(', ')}), got ${describe(v)}`);
      return null;
    }
    for (const key of Object.keys(v)) {
      if (known.includes(key)) continue;
      const plannedMsg = planned[key];
      if (plannedMsg) {
        this.add([...p, key], plannedMsg);
        continue;
      }
      const near = didYouMean(key, known, CONFIG_WORDS, String);
      let msg = near ? `unknown key${near}` : `unknown key; expected one of: ${known.join(', ')}`;
      if (p.length === 0 && !near) {
        const home = Object.entries(KEYS).find(([sec, keys]) => sec !== 'top' && sec !== 'server' && sec !== 'step' && sec !== 'guard' && (keys as readonly string[]).includes(key));
        if (home) msg = `unknown key; ${key} belongs under ${SECTION_PLACE[home[0]] ?? `${home[0]}:`}`;
      }
      this.add([...p, key], msg);
    }
    return v;
  }

  string(p: KeyPath, v: unknown, what = 'a string'): string | undefined {
    if (typeof v === 'string') return v;
    if (typeof v === 'number') {
      this.add(p, `must be ${what}; YAML read it as the number ${v}, so put it in quotes`);
    } else {
      this.add(p, `must be ${what}, got ${describe(v)}`);
    }
    return undefined;
  }

  bool(p: KeyPath, v: unknown, dflt: boolean): boolean {
    if (v === undefined || v === null) return dflt;
    if (typeof v === 'boolean') return v;
    this.add(p, `must be true or false, got ${describe(v)}`);
    return dflt;
  }

  int(p: KeyPath, v: unknown, dflt: number, min: number, max: number, what: string): number {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) {
      this.add(p, `must be ${what}, got ${describe(v)}`);
      return dflt;
    }
    return v;
  }

  duration(p: KeyPath, v: unknown, dflt: number, allowZero = false): number {
    if (v === undefined || v === null) return dflt;
    const r = parseDuration(v);
    if (!r.ok) {
      this.add(p, `bad duration: ${r.error}`);
      return dflt;
    }
    if (r.ms === 0 && !allowZero) {
      this.add(p, 'must be longer than 0');
      return dflt;
    }
    return r.ms;
  }

  /** A version (semver, util/version.ts parseVersion), in its normal form; null when absent or wrong. */
  version(p: KeyPath, v: unknown): string | null {
    if (v === undefined || v === null) return null;
    const s = this.string(p, v, 'a version (semver, e.g. "1.3.0")');
    if (s === undefined) return null;
    const parsed = parseVersion(s);
    if (parsed === null) {
      this.add(p, `${JSON.stringify(s)} is not a valid version: use semver MAJOR.MINOR.PATCH, e.g. 1.3.0 (a leading v is allowed)`);
      return null;
    }
    return parsed;
  }

  commit(p: KeyPath, v: unknown): string | null {
    if (v === undefined || v === null) return null;
    const s = this.string(p, v, 'a commit hash (7 to 40 hex digits)');
    if (s === undefined) return null;
    if (!HEX_RE.test(s)) {
      const bad = [...new Set([...s].filter((ch) => !/[0-9a-fA-F]/.test(ch)))];
      const why =
        bad.length > 0
          ? `contains ${bad.map((c) => JSON.stringify(c)).join(', ')}, which ${bad.length > 1 ? 'are' : 'is'} not hex`
          : `has ${s.length} digits`;
      this.add(p, `must be a commit hash of 7 to 40 hex digits; ${JSON.stringify(s)} ${why}`);
      return null;
    }
    return s.toLowerCase();
  }

  /** A shell command: a non-empty string whose placeholders are known and stand where they can be quoted. */
  command(p: KeyPath, v: unknown): string | undefined {
    if (v === undefined || v === null) {
      this.add(p, 'is required (a shell command)');
      return undefined;
    }
    const s = this.string(p, v, 'a shell command (a string)');
    if (s === undefined || !this.filled(p, s)) return undefined;
    if (!this.placeholders(p, s)) return undefined;
    const unsafe = unsafePlaceholders(s);
    for (const site of unsafe) this.add(p, `{${site.name}} ${site.refused}`);
    return unsafe.length ? undefined : s;
  }

  /** Reports unknown `{word}` placeholders; true when there are none. */
  placeholders(p: KeyPath, s: string): boolean {
    const unknown = unknownPlaceholders(s);
    const known = PLACEHOLDERS.map((n) => `{${n}}`);
    const list = `${known.slice(0, -1).join(', ')} and ${known[known.length - 1]}`;
    for (const name of unknown) {
      const near = didYouMean(name, PLACEHOLDERS, CONFIG_WORDS, (n) => `{${n}}`);
      this.add(
        p,
        near
          ? `unknown placeholder {${name}}${near}`
          : `unknown placeholder {${name}} (the placeholders are ${list}; if the braces are meant for the shell ` +
              `or another program, put a space inside: '{ ${name} }')`,
      );
    }
    return unknown.length === 0;
  }

  /** `include`/`exclude`: one glob or a list; null when absent, undefined when wrong. */
  patterns(p: KeyPath, v: unknown): string[] | null | undefined {
    if (v === undefined || v === null) return null;
    const list = Array.isArray(v) ? v : [v];
    if (list.length === 0) {
      this.add(p, 'must list at least one server-name pattern; leave it out to keep every server');
      return undefined;
    }
    const out: string[] = [];
    let ok = true;
    list.forEach((item: unknown, i: number) => {
      const ip: KeyPath = Array.isArray(v) ? [...p, i] : p;
      const s = this.string(ip, item, 'a server-name pattern (a string), e.g. "web*"');
      if (s === undefined) {
        ok = false;
        return;
      }
      const why = patternProblem(s);
      if (why) {
        this.add(ip, why);
        ok = false;
      } else if (!out.includes(s)) out.push(s);
    });
    return ok ? out : undefined;
  }

  /** `~` and relative paths made absolute; undefined (with a problem) when impossible. */
  filePath(p: KeyPath, v: string): string | undefined {
    if (!this.filled(p, v)) return undefined;
    let out: string;
    if (v === '~' || v.startsWith('~/')) out = path.join(this.ctx.home, v.slice(1));
    else if (v.startsWith('~')) {
      this.add(p, `${JSON.stringify(v)}: ~user paths are not supported; write the full path`);
      return undefined;
    } else out = path.resolve(this.dirOf(p), v);
    return path.normalize(out);
  }

  /** A command or a path: not blank, and no NUL (no shell or file system takes one). */
  private filled(p: KeyPath, s: string): boolean {
    if (s.trim() === '') this.add(p, 'must not be empty');
    else if (s.includes('\0')) this.add(p, 'must not contain a NUL character');
    else return true;
    return false;
  }

  exists(abs: string): boolean {
    return this.ctx.exists ? this.ctx.exists(abs) : true;
  }
}


/** A user name (ssh.user, a server's user, a jump host's, the ssh config's User). */
export function checkUser(c: Checker, p: KeyPath, v: unknown): string | undefined {
  const s = c.string(p, v, 'a user name (a string)');
  if (s === undefined) return undefined;
  if (s === '') c.add(p, 'must not be empty');
  // eslint-disable-next-line no-control-regex
  else if (/[\s\x00-\x1f\x7f]/.test(s)) c.add(p, `${JSON.stringify(s)} must not contain whitespace or control characters`);
  else if (s.startsWith('-')) c.add(p, `${JSON.stringify(s)} must not start with '-'`);
  else if (s.includes('@') || s.includes(':')) c.add(p, `${JSON.stringify(s)} must not contain '@' or ':'`);
  else return s;
  return undefined;
}


/**
 * The config's problems first, then each other file's (an inventory, its vars files) in the
 * order they were first met; within a file by line, problems without a line last; otherwise in
 * the order found.
 */
export function sortProblems(problems: ConfigProblem[]): ConfigProblem[] {
  const files: string[] = [];
  for (const p of problems) if (p.file !== undefined && !files.includes(p.file)) files.push(p.file);
  const rank = (p: ConfigProblem) => (p.file === undefined ? -1 : files.indexOf(p.file));
  return problems
    .map((p, i) => ({ p, i }))
    .sort((a, b) => rank(a.p) - rank(b.p) || (a.p.line ?? Infinity) - (b.p.line ?? Infinity) || a.i - b.i)
    .map(({ p }) => p);
}
