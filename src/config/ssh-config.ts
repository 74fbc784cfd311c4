/**
 * `ssh.config`: what an OpenSSH client config (`~/.ssh/config`) says about a host, for the
 * directives that decide how agent-update reaches it: HostName, Port, User, IdentityFile,
 * ProxyJump, UserKnownHostsFile. Parsing and OpenSSH's matching (`Host` patterns, first value
 * obtained wins, `Match host/user/originalhost/localuser/all`) are the `ssh-config` package's;
 * this module adds `Include`, the `%` tokens, and refuses what it cannot do the way ssh would:
 *
 * - `ProxyCommand` (other than `none`) or `HostKeyAlias` that applies to a server or a jump host:
 *   a config problem. agent-update runs no local command to connect, and checking a host key
 *   under another name would be a different check than the one it reports.
 * - `Match exec`, `canonical`, `final`, `localnetwork`, `tagged` (criteria that cannot be
 *   evaluated here) on a block that sets one of the directives above: a config problem, since
 *   whether it applies cannot be told. `Match exec` commands are never run.
 * - `CanonicalizeHostName yes|always`: a config problem (it needs DNS look-ups of its own).
 *
 * Everything else in the file (ForwardAgent, ServerAliveInterval, Ciphers…) is ignored: it does
 * not change which host, port, user, key or route is used. Host keys are always verified
 * (StrictHostKeyChecking is not read).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import SSHConfig, { LineType, type Line } from 'ssh-config';

/** The directives read, lower case. */
const USED = ['hostname', 'port', 'user', 'identityfile', 'proxyjump', 'proxycommand', 'userknownhostsfile', 'hostkeyalias'];
/** Match criteria the ssh-config package evaluates; a block with any other cannot be judged. */
const MATCH_KNOWN = ['all', 'host', 'originalhost', 'user', 'localuser'];
const MAX_INCLUDE_DEPTH = 16;

export interface SshConfigContext {
  home: string;
  /** the current user name (for `%u`) */
  localUser: string;
  /** the file's text, or undefined when it cannot be read (the reason in `error`) */
  readFile: (abs: string) => { text: string } | { error: string };
  /** file names in a folder (for `Include` with `*`); [] when it cannot be read */
  listDir: (abs: string) => string[];
}

/** What the file says about one host, raw (strings as written, tokens not expanded yet). */
export interface HostEntry {
  hostName?: string;
  port?: string;
  user?: string;
  identityFiles: string[];
  proxyJump?: string;
  proxyCommand?: string;
  userKnownHostsFiles: string[];
  hostKeyAlias?: string;
}

export interface ParsedSshConfig {
  file: string;
  /** problems with the file as a whole (syntax, unsupported constructs), each one sentence */
  problems: string[];
  lookup(host: string, user?: string): HostEntry;
}

function valueText(v: unknown): string {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map((x: { val?: unknown }) => String(x.val ?? '')).join(' ');
  return '';
}

function isSection(line: Line): line is Line & { param: string; config: SSHConfig } {
  return line.type === LineType.DIRECTIVE && 'config' in line;
}

/** `~`, then relative paths against `dir`. */
function expandHome(p: string, home: string, dir: string): string {
  if (p === '~' || p.startsWith('~/')) return path.join(home, p.slice(1));
  return path.resolve(dir, p);
}

/** A file-name glob (`*`, `?`) on the last component only, as `Include config.d/*` uses. */
function globFiles(pattern: string, ctx: SshConfigContext): string[] {
  const dir = path.dirname(pattern);
  const base = path.basename(pattern);
  if (!/[*?]/.test(base)) return [pattern];
  const re = new RegExp(`^${base.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`);
  return ctx
    .listDir(dir)
    .filter((n) => re.test(n) && !n.startsWith('.'))
    .sort()
    .map((n) => path.join(dir, n));
}

/**
 * Parse `file` (absolute) and its `Include`s. An `Include` outside any Host/Match block is
 * spliced in place; inside a block, the included directives join that block (an included file
 * with blocks of its own there is a problem). Relative `Include` paths are in `~/.ssh`, as
 * OpenSSH reads them for a user config.
 */
export function parseSshConfig(file: string, ctx: SshConfigContext): ParsedSshConfig {
  const problems: string[] = [];
  const parseFile = (f: string, depth: number): SSHConfig | null => {
    const read = ctx.readFile(f);
    if ('error' in read) {
      problems.push(`cannot read ${f}: ${read.error}`);
      return null;
    }
    let parsed: SSHConfig;
    try {
      parsed = SSHConfig.parse(read.text);
    } catch (e) {
      problems.push(`${f} is not a valid ssh config: ${(e as Error).message}`);
      return null;
    }
    expandIncludes(parsed, f, depth, false);
    return parsed;
  };
  const includedLines = (value: string, from: string, depth: number): Line[] => {
    if (depth >= MAX_INCLUDE_DEPTH) {
      problems.push(`${from}: Include nested more than ${MAX_INCLUDE_DEPTH} deep`);
      return [];
    }
    const out: Line[] = [];
    for (const item of value.split(/\s+/).filter(Boolean)) {
      const abs = expandHome(item, ctx.home, path.join(ctx.home, '.ssh'));
      for (const f of globFiles(abs, ctx)) {
        const parsed = parseFile(f, depth + 1);
        if (parsed) out.push(...parsed);
      }
    }
    return out;
  };
  const expandIncludes = (lines: SSHConfig, from: string, depth: number, inBlock: boolean): void => {
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!;
      if (line.type !== LineType.DIRECTIVE) continue;
      if (isSection(line)) {
        expandIncludes(line.config, from, depth, true);
        continue;
      }
      if (line.param.toLowerCase() !== 'include') continue;
      const added = includedLines(valueText(line.value), from, depth);
      if (inBlock && added.some((l) => isSection(l))) {
        problems.push(`${from}: Include ${valueText(line.value)} inside a Host or Match block brings blocks of its own, which is not supported`);
        lines.splice(i, 1);
        i--;
        continue;
      }
      lines.splice(i, 1, ...added);
      i += added.length - 1;
    }
  };

  const root = parseFile(file, 0) ?? new SSHConfig();
  // Checked once for the whole file: constructs whose effect cannot be reproduced.
  const walk = (lines: SSHConfig): void => {
    for (const line of lines) {
      if (line.type !== LineType.DIRECTIVE) continue;
      const param = line.param.toLowerCase();
      if (param === 'canonicalizehostname' && !/^(no|false)$/i.test(valueText(line.value))) {
        problems.push(`CanonicalizeHostName ${valueText(line.value)} is not supported (agent-update does not canonicalize host names); remove it or point ssh.config at another file`);
      }
      if (param === 'match' && isSection(line)) {
        const criteria = Object.keys((line as unknown as { criteria?: Record<string, unknown> }).criteria ?? {}).map((k) => k.toLowerCase());
        const unknown = criteria.filter((k) => !MATCH_KNOWN.includes(k));
        const sets = line.config.filter((l) => l.type === LineType.DIRECTIVE && USED.includes(l.param.toLowerCase())).map((l) => (l as { param: string }).param);
        if (unknown.length && sets.length) {
          problems.push(
            `"Match ${valueText(line.value)}" sets ${[...new Set(sets)].join(', ')}, and whether it applies cannot be told here ` +
              `(${unknown.join(', ')} ${unknown.length > 1 ? 'are' : 'is'} not evaluated; Match exec commands are never run): ` +
              'move those settings to a Host block, or point ssh.config at a file without it',
          );
        }
      }
      if (isSection(line)) walk(line.config);
    }
  };
  walk(root);

  return {
    file,
    problems,
    lookup(host: string, user?: string): HostEntry {
      const r = root.compute(user === undefined ? { Host: host.toLowerCase() } : { Host: host.toLowerCase(), User: user }, {
        ignoreCase: true,
        matchExec: false,
      });
      const one = (k: string): string | undefined => {
        const v = r[k];
        if (v === undefined) return undefined;
        return Array.isArray(v) ? v.join(' ') : v;
      };
      const list = (k: string): string[] => {
        const v = r[k];
        if (v === undefined) return [];
        return (Array.isArray(v) ? v : [v]).flatMap((x) => (k === 'userknownhostsfile' ? x.split(/\s+/) : [x])).filter(Boolean);
      };
      const entry: HostEntry = { identityFiles: list('identityfile'), userKnownHostsFiles: list('userknownhostsfile') };
      const set = <K extends keyof HostEntry>(k: K, v: HostEntry[K] | undefined) => {
        if (v !== undefined) entry[k] = v;
      };
      set('hostName', one('hostname'));
      set('port', one('port'));
      // compute() hands back the User we passed it: only a User the file sets counts.
      if (user === undefined) set('user', one('user'));
      set('proxyJump', one('proxyjump'));
      set('proxyCommand', one('proxycommand'));
      set('hostKeyAlias', one('hostkeyalias'));
      return entry;
    },
  };
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
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return { error: `bad \${…} in ${JSON.stringify(text)}` };
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
