/**
 * `ssh.config`: what an OpenSSH client config (`~/.ssh/config`) says about a host, evaluated the
 * way OpenSSH's readconf.c does (checked against `ssh -G` by test/config/ssh-config-openssh.test.ts),
 * for the directives that decide how agent-update reaches it:
 *
 * - lines: keywords in any case, `Keyword value` or `Keyword=value`, arguments split as
 *   argv_split() does ("…" and '…' quoting, `\` escapes, `#` ends the line);
 * - `Host`: patterns matched against the name as given, case-sensitively (`*` any run, `?`
 *   exactly one character, `!` negates); a comma is part of a pattern there, as in ssh;
 * - `Match`: all, host (the HostName obtained so far, %h expanded), originalhost, user (the
 *   User obtained so far, else the local user), localuser; those compare case-insensitively for
 *   host names, comma lists with `!`. `canonical` and `final` are true on the final pass only,
 *   and a `Match final` anywhere asks for that second pass (Host lines then see the resolved
 *   host name), as ssh does. `exec` (never run), and criteria this OpenSSH does not know, cannot
 *   be evaluated: a block with one applies or not as the other criteria say (they are ANDed), and
 *   only when they all hold does a directive of ours in it refuse the host (its file and line);
 * - the first value obtained wins (IdentityFile and CertificateFile add up, duplicates once; of
 *   ProxyJump and ProxyCommand the first one written wins), `Include` (relative to `~/.ssh`,
 *   `*`/`?` patterns in the last component, sorted; a missing file is skipped, as ssh does;
 *   inside a Host/Match block that does not apply, nothing in the included file applies).
 *
 * Nothing here runs a program or makes a DNS query: `Match exec` is never run, and
 * `CanonicalizeHostName yes|always` for a host refuses that host instead of canonicalizing.
 */
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { isEnvVarName } from './names.js';

/** The directives read (lower case): each one changes which host, port, user, key or route is used. */
export const USED = [
  'hostname', 'port', 'user', 'identityfile', 'proxyjump', 'proxycommand', 'userknownhostsfile', 'hostkeyalias',
  'identitiesonly', 'identityagent', 'certificatefile', 'canonicalizehostname',
] as const;
/** The keyword as the docs spell it, for messages. */
const SPELLED: Record<string, string> = {
  hostname: 'HostName', port: 'Port', user: 'User', identityfile: 'IdentityFile', proxyjump: 'ProxyJump',
  proxycommand: 'ProxyCommand', userknownhostsfile: 'UserKnownHostsFile', hostkeyalias: 'HostKeyAlias',
  identitiesonly: 'IdentitiesOnly', identityagent: 'IdentityAgent', certificatefile: 'CertificateFile',
  canonicalizehostname: 'CanonicalizeHostName',
};
/** Keywords that take exactly one argument (ssh: "garbage at end of line" otherwise). */
const ONE_ARG = ['hostname', 'port', 'user', 'identityfile', 'hostkeyalias', 'identitiesonly', 'identityagent', 'certificatefile', 'canonicalizehostname'];
/** Keywords whose values add up instead of the first one winning. */
const LISTS = ['identityfile', 'certificatefile'];
const MAX_INCLUDE_DEPTH = 16;
const MAX_IDENTITY_FILES = 100;

export interface SshConfigContext {
  home: string;
  /** the current user name (for `%u`, `Match localuser`, and `Match user` without a User) */
  localUser: string;
  /** the file's text, or undefined when it cannot be read (the reason in `error`) */
  readFile: (abs: string) => { text: string } | { error: string };
  /** file names in a folder (for `Include` with `*`); [] when it cannot be read */
  listDir: (abs: string) => string[];
  /** whether a file exists (an `Include` of a missing file is skipped); default: readable */
  exists?: (abs: string) => boolean;
}

/** One obtained value, with where it was written (`file line N`). */
export interface Setting {
  value: string;
  where: string;
}

/** What the file says about one host: each directive's obtained value (raw, tokens not expanded). */
export interface HostEntry {
  /** the host connected to: HostName with %h expanded, lower case (an address as written), else the name */
  host: string;
  hostName?: Setting;
  port?: Setting;
  user?: Setting;
  /** in the order ssh offers them, duplicates once */
  identityFiles: Setting[];
  certificateFiles: Setting[];
  /** at most one of proxyJump and proxyCommand: the first written wins, as in ssh */
  proxyJump?: Setting;
  proxyCommand?: Setting;
  /** the whole first UserKnownHostsFile line obtained */
  userKnownHostsFiles?: { values: string[]; where: string };
  hostKeyAlias?: Setting;
  identitiesOnly?: Setting;
  identityAgent?: Setting;
  canonicalizeHostName?: Setting;
  /** why this host cannot be resolved as ssh would (a Match that cannot be evaluated), each one sentence */
  problems: string[];
}

export interface ParsedSshConfig {
  file: string;
  /** problems with the file as a whole (syntax ssh refuses), each one sentence */
  problems: string[];
  /** `host` as given to `ssh`; `user` as given with `-l` (or a jump spec's `user@`) */
  lookup(host: string, user?: string): HostEntry;
}

type Criterion = { negate: boolean; attr: string; arg?: string };
type Item =
  | { kind: 'host'; patterns: string[]; line: number }
  | { kind: 'match'; criteria: Criterion[]; text: string; line: number }
  | { kind: 'include'; args: string[]; line: number }
  | { kind: 'set'; kw: string; args: string[]; rest: string; line: number };

/** argv_split() of OpenSSH's misc.c (terminate_on_comment): undefined on an unclosed quote. */
export function splitArgs(s: string): string[] | undefined {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    if (s[i] === ' ' || s[i] === '\t') {
      i++;
      continue;
    }
    if (s[i] === '#') break;
    let arg = '';
    let quote = '';
    for (; i < s.length; i++) {
      const ch = s[i]!;
      if (ch === '\\') {
        const nx = s[i + 1];
        if (nx === "'" || nx === '"' || nx === '\\' || (quote === '' && nx === ' ')) {
          i++;
          arg += nx;
        } else arg += ch;
      } else if (quote === '' && (ch === ' ' || ch === '\t')) break;
      else if (quote === '' && (ch === '"' || ch === "'")) quote = ch;
      else if (quote !== '' && ch === quote) quote = '';
      else arg += ch;
    }
    if (quote !== '') return undefined;
    out.push(arg);
  }
  return out;
}

/** match_pattern() of OpenSSH's match.c: `*` any run, `?` exactly one character, case-sensitive. */
export function matchPattern(s: string, pattern: string): boolean {
  const memo = new Map<string, boolean>();
  const m = (si: number, pi: number): boolean => {
    const key = `${si},${pi}`;
    const hit = memo.get(key);
    if (hit !== undefined) return hit;
    let r: boolean;
    if (pi === pattern.length) r = si === s.length;
    else if (pattern[pi] === '*') r = m(si, pi + 1) || (si < s.length && m(si + 1, pi));
    else if (si === s.length) r = false;
    else if (pattern[pi] === '?' || pattern[pi] === s[si]) r = m(si + 1, pi + 1);
    else r = false;
    memo.set(key, r);
    return r;
  };
  return m(0, 0);
}

/** match_pattern_list(): comma-separated, `!` negates (a negated match wins); 1, 0 or -1. */
function matchPatternList(s: string, list: string, lower: boolean): number {
  let got = 0;
  for (const raw of list.split(',')) {
    const negate = raw.startsWith('!');
    let p = negate ? raw.slice(1) : raw;
    if (lower) p = p.toLowerCase();
    if (matchPattern(s, p)) {
      if (negate) return -1;
      got = 1;
    }
  }
  return got;
}

/** match_hostname(): the host and the patterns compared in lower case. */
function matchHostname(host: string, list: string): boolean {
  return matchPatternList(host.toLowerCase(), list, true) === 1;
}

/** `~`, then relative paths against `dir`. */
function expandHome(p: string, home: string, dir: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(home, p.slice(1));
  return path.resolve(dir, p);
}

/** A file-name glob (`*`, `?`) on the last component only, as `Include config.d/*` uses. */
function globFiles(pattern: string, ctx: SshConfigContext): string[] | undefined {
  const dir = path.dirname(pattern);
  const base = path.basename(pattern);
  if (/[*?[]/.test(dir)) return undefined;
  if (!/[*?]/.test(base)) return [pattern];
  return ctx
    .listDir(dir)
    .filter((n) => matchPattern(n, base) && !n.startsWith('.'))
    .sort()
    .map((n) => path.join(dir, n));
}

/** A host connected to is lower-cased by ssh, an address is not. */
function connectName(h: string): string {
  return net.isIP(h) ? h : h.toLowerCase();
}

/**
 * Parse `file` (absolute) and its `Include`s. Every file reachable by an Include is read once
 * here (as ssh reads it even inside a block that does not apply), so a syntax problem anywhere
 * is reported whatever host is looked up.
 */
export function parseSshConfig(file: string, ctx: SshConfigContext): ParsedSshConfig {
  const problems: string[] = [];
  const cache = new Map<string, Item[] | null>();
  const exists = ctx.exists ?? ((f: string) => !('error' in ctx.readFile(f)));

  const parseText = (f: string, text: string): Item[] => {
    const items: Item[] = [];
    text.split(/\r?\n/).forEach((rawLine, idx) => {
      const line = idx + 1;
      const at = `${f} line ${line}`;
      const m = /^[ \t]*([^ \t=]+)[ \t]*(?:=[ \t]*)?(.*)$/.exec(rawLine.replace(/[ \t\r\n]+$/, ''));
      if (!m || m[1]!.startsWith('#')) return;
      const kw = m[1]!.toLowerCase();
      const rest = m[2]!;
      const args = splitArgs(rest);
      if (args === undefined) {
        problems.push(`${at}: unclosed quote (ssh refuses the file)`);
        return;
      }
      if (kw === 'host') {
        if (args.length === 0) problems.push(`${at}: Host without a pattern (ssh refuses the file)`);
        else items.push({ kind: 'host', patterns: args, line });
      } else if (kw === 'match') {
        const criteria: Criterion[] = [];
        for (let i = 0; i < args.length; i++) {
          const a = args[i]!;
          const negate = a.startsWith('!');
          const attr = (negate ? a.slice(1) : a).toLowerCase();
          if (attr === 'all') {
            if (args.length > 1) {
              problems.push(`${at}: "Match all" cannot be combined with other criteria (ssh refuses the file)`);
              return;
            }
            criteria.push({ negate, attr });
          } else if (attr === 'canonical' || attr === 'final') criteria.push({ negate, attr });
          else {
            const arg = args[++i];
            if (arg === undefined || arg === '') {
              problems.push(`${at}: Match ${attr} without an argument (ssh refuses the file)`);
              return;
            }
            criteria.push({ negate, attr, arg });
          }
        }
        if (criteria.length === 0) {
          problems.push(`${at}: Match without criteria (ssh refuses the file)`);
          return;
        }
        items.push({ kind: 'match', criteria, text: rest.trim(), line });
      } else if (kw === 'include') {
        items.push({ kind: 'include', args, line });
      } else if ((USED as readonly string[]).includes(kw)) {
        if (args.length === 0 || args[0] === '') {
          problems.push(`${at}: ${SPELLED[kw]} without a value (ssh refuses the file)`);
          return;
        }
        if (ONE_ARG.includes(kw) && args.length > 1) {
          problems.push(`${at}: ${SPELLED[kw]} has more than one argument (ssh refuses the file: "garbage at end of line")`);
          return;
        }
        if ((kw === 'identitiesonly') && !/^(yes|no|true|false)$/i.test(args[0]!)) {
          problems.push(`${at}: IdentitiesOnly ${args[0]}: expected yes or no (ssh refuses the file)`);
          return;
        }
        items.push({ kind: 'set', kw, args, rest: rest.trim(), line });
      }
      // every other keyword changes nothing about where or as whom we connect: not read
    });
    return items;
  };

  const load = (f: string): Item[] | null => {
    if (cache.has(f)) return cache.get(f)!;
    const read = ctx.readFile(f);
    let items: Item[] | null = null;
    if ('error' in read) problems.push(`cannot read ${f}: ${read.error}`);
    else items = parseText(f, read.text);
    cache.set(f, items);
    return items;
  };

  /** The files one `Include` line names, in order (missing ones left out, as ssh does). */
  const includeFiles = (args: string[], at: string): string[] => {
    const out: string[] = [];
    for (const item of args) {
      const abs = expandHome(item, ctx.home, path.join(ctx.home, '.ssh'));
      const files = globFiles(abs, ctx);
      if (files === undefined) {
        problems.push(`${at}: Include ${item}: a pattern in a folder name is not supported (only in the file name)`);
        continue;
      }
      out.push(...files.filter((f) => exists(f)));
    }
    return out;
  };

  interface State {
    values: Map<string, Setting>;
    kh?: { values: string[]; where: string };
    lists: Map<string, Setting[]>;
    problems: string[];
    wantFinal: boolean;
  }

  /**
   * One pass over the config (readconf.c's read_config_file_depth, process_config_line_depth):
   * `hostArg` is what Host lines match, `original` the name as given, `final` the second pass.
   */
  const evalPass = (st: State, hostArg: string, original: string, final: boolean, presetUser: string | undefined): void => {
    const matchHost = (): string => {
      if (final) return st.values.get('hostname')!.value;
      const hn = st.values.get('hostname');
      return hn ? hn.value.replace(/%%|%h/g, (t) => (t === '%%' ? '%' : hostArg)) : hostArg;
    };
    /** true, false, or the criteria that cannot be told */
    const evalMatch = (criteria: Criterion[]): true | false | string[] => {
      let ok = true;
      const unknown: string[] = [];
      for (const c of criteria) {
        let r: boolean | undefined;
        switch (c.attr) {
          case 'all': r = true; break;
          case 'canonical': r = final; break;
          case 'final': st.wantFinal = true; r = final; break;
          case 'host': r = matchHostname(matchHost(), c.arg!); break;
          case 'originalhost': r = matchHostname(original, c.arg!); break;
          case 'user': r = matchPatternList(presetUser ?? st.values.get('user')?.value ?? ctx.localUser, c.arg!, false) === 1; break;
          case 'localuser': r = matchPatternList(ctx.localUser, c.arg!, false) === 1; break;
          default: r = undefined;
        }
        if (r === undefined) unknown.push(c.attr === 'exec' ? `exec ${JSON.stringify(c.arg)} is never run` : `${c.attr} is not evaluated here`);
        else if (r === c.negate) ok = false;
      }
      if (!ok) return false;
      return unknown.length ? unknown : true;
    };
    const apply = (f: string, it: Item & { kind: 'set' }) => {
      const where = `${f} line ${it.line}`;
      const kw = it.kw;
      if (LISTS.includes(kw)) {
        const list = st.lists.get(kw) ?? [];
        if (!list.some((s) => s.value === it.args[0]) && list.length < MAX_IDENTITY_FILES) list.push({ value: it.args[0]!, where });
        st.lists.set(kw, list);
      } else if (kw === 'userknownhostsfile') {
        st.kh ??= { values: it.args, where };
      } else if (kw === 'proxyjump' || kw === 'proxycommand') {
        // one slot: of ProxyJump and ProxyCommand, the first written wins (readconf.c parse_jump)
        if (!st.values.has('proxyjump') && !st.values.has('proxycommand')) st.values.set(kw, { value: it.rest, where });
      } else if (!st.values.has(kw)) st.values.set(kw, { value: it.args[0]!, where });
    };
    /** whether `it` would change what is obtained so far (so an unevaluable block matters) */
    const wouldChange = (it: Item & { kind: 'set' }): boolean => {
      if (LISTS.includes(it.kw)) return true;
      if (it.kw === 'userknownhostsfile') return st.kh === undefined;
      if (it.kw === 'proxyjump' || it.kw === 'proxycommand') return !st.values.has('proxyjump') && !st.values.has('proxycommand');
      return !st.values.has(it.kw);
    };

    /** `mode`: normal, never (an Include inside a block that does not apply), or uncertain (…that may) */
    const walk = (f: string, depth: number, mode: 'normal' | 'never' | { why: string }): void => {
      const items = load(f);
      if (!items) return;
      let active: boolean | { why: string } = mode === 'never' ? false : mode === 'normal' ? true : mode;
      for (const it of items) {
        const at = `${f} line ${it.line}`;
        if (it.kind === 'host') {
          let a = false;
          for (const p of it.patterns) {
            const neg = p.startsWith('!');
            if (matchPattern(hostArg, neg ? p.slice(1) : p)) {
              if (neg) {
                a = false;
                break;
              }
              a = true;
            }
          }
          active = mode === 'never' ? false : a && typeof mode === 'object' ? mode : a;
        } else if (it.kind === 'match') {
          const r = evalMatch(it.criteria);
          if (mode === 'never' || r === false) active = false;
          else if (r === true) active = typeof mode === 'object' ? mode : true;
          else active = { why: `Match ${it.text} (${at}) may apply to it (${r.join('; ')})` };
        } else if (it.kind === 'include') {
          if (depth + 1 > MAX_INCLUDE_DEPTH) {
            if (!problems.some((p) => p.includes('nested more than'))) problems.push(`${at}: Include nested more than ${MAX_INCLUDE_DEPTH} deep`);
            continue;
          }
          for (const inc of includeFiles(it.args, at)) walk(inc, depth + 1, active === true ? 'normal' : active === false ? 'never' : active);
        } else if (active === true) apply(f, it);
        else if (active !== false && wouldChange(it)) {
          st.problems.push(`${active.why}, and it sets ${SPELLED[it.kw]} (${at}): whether it applies cannot be told here; ` +
            'move that setting to a Host block, or point ssh.config at a file without it');
        }
      }
    };
    walk(file, 0, 'normal');
  };

  const lookup = (host: string, user?: string): HostEntry => {
    const st: State = { values: new Map(), lists: new Map(), problems: [], wantFinal: false };
    evalPass(st, host, host, false, user);
    const hn = st.values.get('hostname');
    const resolved = connectName(hn ? hn.value.replace(/%%|%h/g, (t) => (t === '%%' ? '%' : host)) : host);
    if (st.wantFinal) {
      // ssh.c: a `Match final` asks for a second pass, HostName set to the host name resolved so
      // far, Host lines matched against it; values already obtained stay
      st.values.set('hostname', { value: resolved, where: hn?.where ?? '' });
      evalPass(st, resolved, host, true, user);
      if (!hn) st.values.delete('hostname');
      else st.values.set('hostname', hn);
    }
    const e: HostEntry = {
      host: resolved,
      identityFiles: st.lists.get('identityfile') ?? [],
      certificateFiles: st.lists.get('certificatefile') ?? [],
      problems: [...new Set(st.problems)],
    };
    const take = (k: keyof HostEntry, kw: string) => {
      const v = st.values.get(kw);
      if (v) (e as unknown as Record<string, Setting>)[k] = v;
    };
    take('hostName', 'hostname');
    take('port', 'port');
    if (user === undefined) take('user', 'user');
    take('proxyJump', 'proxyjump');
    take('proxyCommand', 'proxycommand');
    take('hostKeyAlias', 'hostkeyalias');
    take('identitiesOnly', 'identitiesonly');
    take('identityAgent', 'identityagent');
    take('canonicalizeHostName', 'canonicalizehostname');
    if (st.kh) e.userKnownHostsFiles = st.kh;
    return e;
  };

  // read every file once (any host will do), so syntax problems are the file's, whatever is looked up
  lookup('');
  return { file, problems: [...new Set(problems)], lookup };
}
export interface TokenValues {
  /** %h: the host name connected to (after HostName) */
  host: string;
  /** %n: the name as given (the alias) */
  original: string;
  /** %p */
  port: number;
  /** %r: the remote user */
  user: string;
}

/**
 * Expand OpenSSH's `%` tokens and `${VAR}` in IdentityFile / UserKnownHostsFile, then `~`:
 * %h %n %p %r %u (local user) %d (local home) %i (local uid) %l (local host name) %%.
 * Returns the text, or an error naming an unknown token.
 */
export function expandTokens(
  text: string,
  v: TokenValues,
  ctx: { home: string; localUser: string; env: NodeJS.ProcessEnv },
): { value: string } | { error: string } {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (ch === '%') {
      const t = text[i + 1];
      i++;
      switch (t) {
        case '%': out += '%'; break;
        case 'h': out += v.host; break;
        case 'n': out += v.original; break;
        case 'p': out += String(v.port); break;
        case 'r': out += v.user; break;
        case 'u': out += ctx.localUser; break;
        case 'd': out += ctx.home; break;
        case 'i': out += String(process.getuid?.() ?? ''); break;
        case 'l': out += os.hostname(); break;
        default:
          return { error: `unsupported token %${t ?? ''} in ${JSON.stringify(text)} (supported: %h %n %p %r %u %d %i %l %%)` };
      }
    } else if (ch === '$' && text[i + 1] === '{') {
      const end = text.indexOf('}', i);
      const name = end === -1 ? '' : text.slice(i + 2, end);
      if (!isEnvVarName(name)) return { error: `bad \${…} in ${JSON.stringify(text)}` };
      const val = ctx.env[name];
      if (val === undefined) return { error: `environment variable ${name} in ${JSON.stringify(text)} is not set` };
      out += val;
      i = end;
    } else out += ch;
  }
  return { value: out };
}

/** `[user@]host[:port]`, `[user@][v6addr]:port`, or `ssh://[user@]host[:port]`. */
export function parseHopSpec(text: string): { user?: string; host: string; port?: number } | { error: string } {
  let s = text.trim();
  if (s.startsWith('ssh://')) s = s.slice(6).replace(/\/$/, '');
  let user: string | undefined;
  const at = s.lastIndexOf('@');
  if (at !== -1) {
    user = s.slice(0, at);
    s = s.slice(at + 1);
    if (user === '') return { error: `${JSON.stringify(text)}: empty user before '@'` };
  }
  let host = s;
  let portText: string | undefined;
  if (s.startsWith('[')) {
    const close = s.indexOf(']');
    if (close === -1) return { error: `${JSON.stringify(text)}: missing ']'` };
    host = s.slice(1, close);
    const rest = s.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return { error: `${JSON.stringify(text)}: unexpected ${JSON.stringify(rest)} after ']'` };
      portText = rest.slice(1);
    }
  } else {
    const colon = s.indexOf(':');
    if (colon !== -1) {
      if (s.indexOf(':', colon + 1) !== -1) return { error: `${JSON.stringify(text)}: an IPv6 address needs brackets: [addr]:port` };
      host = s.slice(0, colon);
      portText = s.slice(colon + 1);
    }
  }
  if (host === '') return { error: `${JSON.stringify(text)}: no host` };
  if (/[\s/]/.test(host) || host.startsWith('-')) return { error: `${JSON.stringify(text)}: ${JSON.stringify(host)} is not a host name` };
  const out: { user?: string; host: string; port?: number } = { host };
  if (user !== undefined) out.user = user;
  if (portText !== undefined) {
    const port = Number(portText);
    if (!/^\d+$/.test(portText) || port < 1 || port > 65535) return { error: `${JSON.stringify(text)}: ${JSON.stringify(portText)} is not a port (1 to 65535)` };
    out.port = port;
  }
  return out;
}
