/**
 * `source:` (SPEC.md "Config (YAML)"): what the servers fetch, and the versions.
 *
 * - `source.repo` and `source.branch` are required. The repo must be a git URL (https, http,
 *   ssh, git, file), `[user@]host:path` or a path (see repoProblem: no whitespace, control
 *   characters, leading '-', shell metacharacters or password). The branch must be a name
 *   `git check-ref-format --branch` accepts, and in addition may not contain the shell
 *   metacharacters `$ ` ; & | < > ( ) ' " !` (values are always shell-quoted, this is a second
 *   guard). `source.commit`: 7 to 40 hex digits, stored lower case (Checker.commit).
 * - `source.version`, `source.min_compatible`, `source.max_compatible`: versions (semver after
 *   dropping one leading `v`, plan/versions.ts; stored in normal form). min_ and max_compatible
 *   need source.version; min_compatible needs agent.semver_command (validate.ts, which sees
 *   both sections) and may not be above source.version; max_compatible may not be below
 *   min_compatible. A target above max_compatible is refused by `plan` (checkCeiling), not
 *   here: the config is valid.
 * - `source.min_version` (the oldest version that upgrades directly) and `source.stepping_stones`
 *   (a list of `{version, commit, min_version?}`): both need source.version (and min_version
 *   agent.semver_command, validate.ts); stones need min_version, are below the target, distinct, and the
 *   highest is at or above min_version (else nobody below it could reach the target). A stone's
 *   commit is 7 to 40 hex here, expanded to 40 by `plan`.
 */
import semver from 'semver';
import type { Config, SteppingStone } from './types.js';
import { describe, isRecord, type Checker, type KeyPath } from './checker.js';
import { KEYS, PLANNED } from './keys.js';

/**
 * The reasons `git check-ref-format --branch` would refuse `name`, plus the shell
 * metacharacters we refuse on top. Empty when the name is fine.
 */
export function branchNameProblems(name: string): string[] {
  const out: string[] = [];
  if (name === '') return ['must not be empty'];
  if (name.startsWith('-')) out.push("must not start with '-'");
  if (name === '@') out.push("must not be '@'");
  if (name === 'HEAD') out.push("must not be 'HEAD'");
  if (name.includes('..')) out.push("must not contain '..'");
  if (name.includes('@{')) out.push("must not contain '@{'");
  if (name.includes('//')) out.push("must not contain '//'");
  if (name.startsWith('/')) out.push("must not start with '/'");
  if (name.endsWith('/')) out.push("must not end with '/'");
  if (name.endsWith('.')) out.push("must not end with '.'");
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) out.push('must not contain control characters (newline, tab, …)');
  if (name.includes(' ')) out.push('must not contain spaces');
  const bad = [...new Set([...name].filter((ch) => '~^:?*[\\'.includes(ch)))];
  if (bad.length) out.push(`must not contain ${bad.map((c) => `'${c}'`).join(', ')}`);
  const components = name.split('/');
  if (components.some((c) => c.startsWith('.'))) out.push("no part between slashes may start with '.'");
  if (components.some((c) => c.endsWith('.lock'))) out.push("no part between slashes may end with '.lock'");
  const shell = [...new Set([...name].filter((ch) => '$`;&|<>()\'"!'.includes(ch)))];
  if (shell.length) {
    out.push(`must not contain the shell metacharacter${shell.length > 1 ? 's' : ''} ${shell.map((c) => `'${c}'`).join(', ')}`);
  }
  return out;
}

const REPO_SCHEMES = ['https', 'http', 'ssh', 'git+ssh', 'ssh+git', 'git', 'file'];
/** Characters no sane git URL or path has, each special to the shell. */
const REPO_SHELL = '$`;&|<>\'"\\(){}*?!';

/**
 * Why `repo` is not a git URL or path the servers can fetch from, or null when it is fine.
 * Accepted: `https://`, `http://`, `ssh://` (and `git+ssh://`), `git://`, `file://` URLs, the
 * scp-like `[user@]host:path`, and absolute or relative paths (given to git as written: relative
 * to agent-update's folder at plan time, and to the folder git runs in on each server).
 */
export function repoProblem(repo: string): string | null {
  if (repo.trim() === '') return 'must not be empty';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f-\x9f]/.test(repo)) return 'must not contain newlines, NUL or other control characters';
  if (/[\u202a-\u202e\u2066-\u2069]/.test(repo)) return 'must not contain bidirectional override characters (they make it display as something else)';
  if (repo.startsWith('-')) return `${JSON.stringify(repo)} must not start with '-' (git would read it as an option)`;
  if (/\s/.test(repo)) return `${JSON.stringify(repo)} must not contain whitespace (a git URL has none; write a space in a path as %20 in a URL, or move the repository)`;
  const shell = [...new Set([...repo].filter((ch) => REPO_SHELL.includes(ch)))];
  if (shell.length) {
    return `${JSON.stringify(repo)} must not contain the shell metacharacter${shell.length > 1 ? 's' : ''} ${shell.map((ch) => `'${ch}'`).join(', ')} (no git URL or sane path has them)`;
  }
  if (repo.startsWith('~')) return `${JSON.stringify(repo)}: ~ is not expanded by git; write the full path`;
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(repo);
  if (scheme) {
    const name = (scheme[1] as string).toLowerCase();
    if (!REPO_SCHEMES.includes(name)) {
      return `URL scheme ${JSON.stringify(name)} is not one git fetches agents from; use https, http, ssh, git or file (or a path, or user@host:path)`;
    }
    const rest = repo.slice(scheme[0].length);
    if (name === 'file') return rest.startsWith('/') ? null : `${JSON.stringify(repo)}: a file:// URL needs an absolute path (file:///srv/agent.git)`;
    const slash = rest.indexOf('/');
    const authority = slash === -1 ? rest : rest.slice(0, slash);
    const at = authority.lastIndexOf('@');
    const userinfo = at === -1 ? '' : authority.slice(0, at);
    const host = (at === -1 ? authority : authority.slice(at + 1)).replace(/:\d*$/, '');
    if (host === '' || host === '[]') return `${JSON.stringify(repo)} has no host`;
    if (userinfo.includes(':')) {
      return 'must not hold a password or token (it would be stored in the plan and shown by status and logs); use an SSH key or a git credential helper';
    }
    if (slash === -1 || rest.slice(slash) === '/') return `${JSON.stringify(repo)} has no path to a repository after the host`;
    return null;
  }
  if (/^[A-Za-z][A-Za-z0-9+.-]*::/.test(repo)) {
    return `${JSON.stringify(repo)}: remote helpers (transport::address) are not accepted; use an https, ssh or git URL, user@host:path, or a path`;
  }
  // scp-like [user@]host:path: a colon before any slash (git's own rule), or after [ipv6]
  const colon = repo.startsWith('[') || /^[^/]*@\[/.test(repo) ? repo.indexOf(':', repo.indexOf(']')) : repo.indexOf(':');
  const firstSlash = repo.indexOf('/');
  if (colon !== -1 && (firstSlash === -1 || colon < firstSlash)) {
    const account = repo.slice(0, colon);
    const at = account.lastIndexOf('@');
    if (at === 0) return `${JSON.stringify(repo)} has '@' but no user before '@'`;
    const host = at === -1 ? account : account.slice(at + 1);
    if (host === '' || host === '[]') return `${JSON.stringify(repo)} has no host before ':'`;
    if (repo.slice(colon + 1) === '') return `${JSON.stringify(repo)} has no path after ':'`;
    return null;
  }
  // a path, absolute or relative
  return null;
}

/** `source.stepping_stones`: a list of `{version, commit, min_version?}`, sorted by version on return. */
function steppingStones(c: Checker, v: unknown): SteppingStone[] {
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    c.add(['source', 'stepping_stones'], `must be a list of {version, commit}, got ${describe(v)}`);
    return [];
  }
  const out: SteppingStone[] = [];
  v.forEach((item, i) => {
    const p: KeyPath = ['source', 'stepping_stones', i];
    if (!isRecord(item)) {
      c.add(p, `must be {version, commit}, got ${describe(item)}`);
      return;
    }
    const o = c.section(p, item, KEYS.stone)!;
    if (o.version === undefined || o.version === null) c.add([...p, 'version'], 'is required (the agent version this stepping stone is)');
    if (o.commit === undefined || o.commit === null) c.add([...p, 'commit'], 'is required (the commit of that version)');
    const version = c.version([...p, 'version'], o.version);
    const commit = c.commit([...p, 'commit'], o.commit);
    const minVersion = c.version([...p, 'min_version'], o.min_version);
    if (version !== null && minVersion !== null && !semver.lt(minVersion, version)) {
      c.add([...p, 'min_version'], `${minVersion} is not below the stepping stone's own version ${version}`);
    }
    if (version !== null && commit !== null) {
      const twin = out.find((s) => semver.eq(s.version, version));
      if (twin) c.add([...p, 'version'], `${version} is listed twice (stepping stones ${out.indexOf(twin)} and ${i})`);
      else out.push({ version, commit, minVersion });
    }
  });
  return out.sort((a, b) => semver.compare(a.version, b.version));
}

/**
 * min_version and the stepping stones need the target's version; every stone is below it; and
 * the highest stone is at or above min_version, or no server that needs a stone could ever
 * reach the target from it (plan/versions.ts pathFor).
 */
function checkPathBounds(c: Checker, src: Record<string, unknown>, source: Config['source']): void {
  const given = (v: unknown) => v !== undefined && v !== null;
  const { version, minVersion, steppingStones: stones } = source;
  for (const key of ['min_version', 'stepping_stones'] as const) {
    if (given(src[key]) && !given(src.version)) c.add(['source', key], "needs source.version (the target's version) to compare with");
  }
  if (given(src.stepping_stones) && !given(src.min_version) && Array.isArray(src.stepping_stones) && src.stepping_stones.length > 0) {
    c.add(['source', 'stepping_stones'], 'needs source.min_version: the oldest version that upgrades directly; older agents walk the stepping stones');
  }
  if (version == null) return;
  if (minVersion != null && semver.gt(minVersion, version)) {
    c.add(['source', 'min_version'], `${minVersion} is above source.version ${version}: no server could upgrade directly to the target`);
  }
  for (const s of stones ?? []) {
    if (!semver.lt(s.version, version)) {
      c.add(['source', 'stepping_stones'], `stepping stone ${s.version} is not below source.version ${version}: a stepping stone is a release on the way to the target`);
    }
  }
  // judged only when every stone was read: one with a wrong version or commit is left out of
  // `stones` (its own problem says why), and the highest of the rest may not be the highest
  const allRead = Array.isArray(src.stepping_stones) && (stones ?? []).length === src.stepping_stones.length;
  const top = stones?.at(-1);
  if (minVersion != null && allRead && top !== undefined && semver.lt(top.version, minVersion) && semver.lt(top.version, version)) {
    c.add(
      ['source', 'stepping_stones'],
      `the highest stepping stone, ${top.version}, is below source.min_version ${minVersion}: from it no server could upgrade to ${version}; add a stepping stone at or above ${minVersion}`,
    );
  }
}

/** `source:`: what the servers fetch (repo, branch, commit) and the versions; the problems go to `c`. */
export function checkSource(c: Checker, top: Record<string, unknown>): Config['source'] {
  const source: Config['source'] = { repo: '', branch: '', commit: null, version: null, minCompatible: null, maxCompatible: null, minVersion: null, steppingStones: [] };
  const src = c.section(['source'], top.source, KEYS.source, PLANNED.source);
  if (top.source === undefined || top.source === null) c.add(['source'], 'is required (with repo and branch)');
  else if (src) {
    if (src.repo === undefined || src.repo === null) c.add(['source', 'repo'], 'is required (the git URL the servers fetch from)');
    else {
      const s = c.string(['source', 'repo'], src.repo, 'a git URL (a string)');
      if (s !== undefined) {
        const why = repoProblem(s);
        if (why !== null) c.add(['source', 'repo'], why);
        else source.repo = s;
      }
    }
    if (src.branch === undefined || src.branch === null) c.add(['source', 'branch'], 'is required (the branch the servers fetch, e.g. master)');
    else {
      const s = c.string(['source', 'branch'], src.branch, 'a branch name (a string)');
      if (s !== undefined) {
        const why = branchNameProblems(s);
        if (why.length) c.add(['source', 'branch'], `${JSON.stringify(s)} is not a valid branch name: it ${why.join('; it ')}`);
        else source.branch = s;
      }
    }
    source.commit = c.commit(['source', 'commit'], src.commit);
    source.version = c.version(['source', 'version'], src.version);
    source.minCompatible = c.version(['source', 'min_compatible'], src.min_compatible);
    source.maxCompatible = c.version(['source', 'max_compatible'], src.max_compatible);
    for (const [key, v] of [['min_compatible', source.minCompatible], ['max_compatible', source.maxCompatible]] as const) {
      if (v !== null && source.version === null && (src.version === undefined || src.version === null)) {
        c.add(['source', key], "needs source.version (the target's version) to compare with");
      }
    }
    if (source.version !== null && source.minCompatible !== null && semver.gt(source.minCompatible, source.version)) {
      c.add(['source', 'min_compatible'], `${source.minCompatible} is above source.version ${source.version}: servers updated to the target would still be below it`);
    }
    if (source.minCompatible !== null && source.maxCompatible !== null && semver.gt(source.minCompatible, source.maxCompatible)) {
      c.add(['source', 'max_compatible'], `${source.maxCompatible} is below source.min_compatible ${source.minCompatible}`);
    }
    source.minVersion = c.version(['source', 'min_version'], src.min_version);
    source.steppingStones = steppingStones(c, src.stepping_stones);
    checkPathBounds(c, src, source);
  }
  return source;
}
