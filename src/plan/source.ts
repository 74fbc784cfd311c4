import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Config, SteppingStone } from '../config/types.js';
import { UsageError } from '../errors.js';
import { isFullCommit } from '../util/commit.js';
import { didYouMean } from '../util/did-you-mean.js';
import { parseVersion } from '../util/version.js';
import semver from 'semver';

/** Git must never prompt: a plan run from cron has no one to answer. */
const GIT_ENV = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true', SSH_ASKPASS: 'true' };

async function git(args: string[], cwd?: string): Promise<string> {
  const r = await execa('git', args, { cwd, env: GIT_ENV, reject: false, timeout: 120_000, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    const why = (r.stderr || r.stdout || (r.timedOut ? 'timed out after 2m' : `exit ${r.exitCode}`)).trim().split('\n').slice(-2).join(' ');
    throw new UsageError(`git ${args.filter((a) => !a.startsWith('-')).slice(0, 1).join(' ')} failed: ${why}`);
  }
  return r.stdout;
}

/** The branch names of `repo` (for "did you mean"); none when they cannot be read. */
async function branchesOf(repo: string): Promise<string[]> {
  const out = await git(['ls-remote', '--heads', '--', repo]).catch(() => '');
  return out.split('\n').flatMap((l) => /\trefs\/heads\/(.+)$/.exec(l)?.[1] ?? []);
}

/** What an error about the branch or the commit names them by: the config's keys, or the options that replaced them. */
export interface SourceKeys {
  branch: string;
  commit: string;
}

const CONFIG_KEYS: SourceKeys = { branch: 'source.branch', commit: 'source.commit' };

/**
 * The target commit of a config (its source, as `--branch`/`--commit`/`--version` left it:
 * plan/overrides.ts), errors naming what set each value: the branch's tip or the commit
 * (resolveCommit), or with `--version` alone the commit of its tag (the branch still read: it
 * must exist, it is what `{branch}` fetches).
 */
export async function resolveTarget(config: Pick<Config, 'source' | 'overrides' | 'sourceAt'>): Promise<string> {
  const o = config.overrides?.source;
  // a value from the file is named with where it was written, one from an option by the option
  const inFile = (key: 'branch' | 'commit') => (config.sourceAt?.[key] !== undefined ? `${config.sourceAt[key]}: ${CONFIG_KEYS[key]}` : CONFIG_KEYS[key]);
  const keys: SourceKeys = { branch: o?.branch !== undefined ? '--branch' : inFile('branch'), commit: o?.commit !== undefined ? '--commit' : inFile('commit') };
  let commit = config.source.commit;
  if (o?.version !== undefined && o.commit === undefined && config.source.version) commit = (await resolveVersionTag(config.source.repo, config.source.version)).commit;
  return resolveCommit(config.source.repo, config.source.branch, commit, keys);
}

/**
 * The commit of the release `version` (normal semver form): the tag named `v<version>` or
 * `<version>` (any tag whose name parseVersion reads as it; an annotated tag peeled to its
 * commit). A UsageError (exit 2) when the repository has none (with the nearest versions it has)
 * or two tags of that version name different commits.
 */
export async function resolveVersionTag(repo: string, version: string): Promise<{ commit: string; tag: string }> {
  const out = await git(['ls-remote', '--tags', '--', repo]).catch((e: Error) => {
    throw new UsageError(`--version: cannot read the tags of ${repo}: ${e.message}`);
  });
  // refs/tags/NAME: the tag object (or the commit of a lightweight tag); refs/tags/NAME^{}: its commit
  const tags = new Map<string, string>();
  for (const line of out.split('\n')) {
    const [sha, ref] = line.split('\t').map((x) => x.trim());
    if (!sha || !ref?.startsWith('refs/tags/') || !isFullCommit(sha)) continue;
    const peeled = ref.endsWith('^{}');
    const name = ref.slice('refs/tags/'.length, peeled ? -3 : undefined);
    if (peeled || !tags.has(name)) tags.set(name, sha);
  }
  const versions = new Map<string, Array<{ tag: string; commit: string }>>();
  for (const [tag, commit] of tags) {
    const v = parseVersion(tag);
    if (v !== null) versions.set(v, [...(versions.get(v) ?? []), { tag, commit }]);
  }
  const found = versions.get(version) ?? [];
  if (found.length === 0) {
    const known = [...versions.keys()].sort(semver.rcompare);
    const near = didYouMean(version, known);
    throw new UsageError(
      `--version: ${repo} has no tag of version ${version} (v${version} or ${version})` +
        (near || (known.length === 0 ? '; it has no version tags at all' : `; its newest versions: ${known.slice(0, 5).join(', ')}`)),
    );
  }
  const commits = [...new Set(found.map((f) => f.commit))];
  if (commits.length > 1) {
    throw new UsageError(`--version: the tags ${found.map((f) => `${f.tag} (${f.commit.slice(0, 12)})`).join(', ')} of ${repo} are all version ${version} but name different commits; give --commit`);
  }
  return found.sort((a, b) => (a.tag.startsWith('v') ? -1 : 0) - (b.tag.startsWith('v') ? -1 : 0))[0]!;
}

/**
 * The full 40-hex commit to roll out: the tip of `branch` when no commit is given (through
 * `git ls-remote`, which works for local paths and remote URLs alike), or the given commit,
 * expanded to its full form and checked to exist when it is abbreviated.
 */
export async function resolveCommit(repo: string, branch: string, commit: string | null, keys: SourceKeys = CONFIG_KEYS): Promise<string> {
  // `--` keeps a repo value from ever being read as an option.
  const out = await git(['ls-remote', '--heads', '--', repo, `refs/heads/${branch}`]).catch((e: Error) => {
    throw new UsageError(`cannot read ${repo}: ${e.message}`);
  });
  const tip = out.split('\n').map((l) => l.split('\t')[0]?.trim() ?? '').find(isFullCommit);
  if (!tip) throw new UsageError(`${keys.branch}: ${repo} has no branch ${JSON.stringify(branch)}${didYouMean(branch, await branchesOf(repo))}`);
  if (commit === null) return tip;
  if (isFullCommit(commit)) return commit;
  if (tip.startsWith(commit)) return tip;
  // An abbreviated commit that is not the tip: fetch the branch (no file contents) to expand it.
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-resolve-'));
  try {
    await git(['init', '--quiet', '--bare', dir]);
    await git(['fetch', '--quiet', '--filter=blob:none', '--', repo, `refs/heads/${branch}`], dir);
    const full = (await git(['rev-parse', '--verify', '--quiet', `${commit}^{commit}`], dir).catch(() => '')).trim();
    if (!isFullCommit(full)) {
      throw new UsageError(`${keys.commit}: ${commit} is not a commit on branch ${branch} of ${repo}`);
    }
    return full;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The full commits of `repo` whose id starts with `prefix` (lower-case hex), looking at every
 * branch and tag: a blobless fetch of them into a temporary repository, then git's own
 * disambiguation, keeping commits only (a tree or tag object with the same prefix is not a
 * rollback target).
 */
export async function commitsMatching(repo: string, prefix: string): Promise<string[]> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-resolve-'));
  try {
    await git(['init', '--quiet', '--bare', dir]);
    await git(['fetch', '--quiet', '--no-tags', '--filter=blob:none', '--', repo, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], dir);
    const objects = (await git(['rev-parse', `--disambiguate=${prefix}`], dir).catch(() => ''))
      .split('\n')
      .map((l) => l.trim())
      .filter(isFullCommit);
    if (objects.length === 0) return [];
    const types = await execa('git', ['cat-file', '--batch-check=%(objectname) %(objecttype)'], {
      cwd: dir,
      env: { ...GIT_ENV, GIT_NO_LAZY_FETCH: '1' },
      input: objects.join('\n') + '\n',
      reject: false,
      timeout: 120_000,
    });
    return types.stdout
      .split('\n')
      .map((l) => l.trim().split(' '))
      .filter(([sha, type]) => type === 'commit' && isFullCommit(sha))
      .map(([sha]) => sha as string)
      .sort();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * `rollback.commit` as the full 40-hex commit the executor compares `version_command` with: an
 * abbreviation is expanded against every branch and tag of `repo` (the commit to go back to is
 * usually not the branch tip), and must name exactly one commit. Throws a UsageError (exit 2)
 * naming the key otherwise.
 */
export async function resolveRollbackCommit(repo: string, commit: string, key = 'rollback.commit'): Promise<string> {
  const c = commit.toLowerCase();
  if (isFullCommit(c)) return c;
  const found = await commitsMatching(repo, c).catch((e: Error) => {
    throw new UsageError(`${key}: cannot read ${repo} to expand ${commit}: ${e.message}`);
  });
  if (found.length === 0) throw new UsageError(`${key}: ${commit} is not a commit of ${repo} (none of its branches or tags has it)`);
  if (found.length > 1) {
    throw new UsageError(`${key}: ${commit} is ambiguous in ${repo}: it could be ${found.join(', ')}; give more digits`);
  }
  return found[0] as string;
}

/** `source.stepping_stones` with each commit expanded to its 40 hex, like rollback.commit (no I/O when they already are). */
export async function resolveStones(repo: string, stones: readonly SteppingStone[] | undefined): Promise<SteppingStone[]> {
  const out: SteppingStone[] = [];
  for (const s of stones ?? []) {
    out.push({ ...s, commit: await resolveRollbackCommit(repo, s.commit, `source.stepping_stones (${s.version}) commit`) });
  }
  return out;
}

/** The config with its stepping stones' commits expanded (exit 2 for one the repo does not have). */
export async function withResolvedStones(config: Config): Promise<Config> {
  if (!config.source.steppingStones?.length) return config;
  return { ...config, source: { ...config.source, steppingStones: await resolveStones(config.source.repo, config.source.steppingStones) } };
}

/** How a commit running on a server stands to the target, in the source repository's history. */
export type CommitRelation =
  /** the target itself */
  | 'target'
  /** an ancestor of the target: updating adds `behind` commits */
  | 'behind'
  /** a descendant of the target: "updating" is a downgrade that drops `ahead` commits */
  | 'ahead'
  /** neither: the target lacks `ahead` commits of it and it lacks `behind` of the target's */
  | 'diverged'
  /** not on any branch or tag of the repository */
  | 'unknown';

/** One commit of `git log --oneline`: the full id, git's abbreviation, the subject line. */
export interface LogEntry {
  commit: string;
  short: string;
  subject: string;
}

/**
 * The commit graph of a source repository, read locally: every branch and tag fetched without
 * trees or blobs (`--filter=tree:0`; a server that does not support filters sends everything)
 * into a temporary bare repository, removed by close(). Commits only: no server is involved.
 */
export class SourceHistory {
  private constructor(private readonly dir: string) {}

  /** Fetch `repo`'s branches and tags; throws an Error saying why (the caller decides how bad that is). */
  static async fetch(repo: string, opts: { signal?: AbortSignal } = {}): Promise<SourceHistory> {
    const dir = mkdtempSync(join(tmpdir(), 'agent-update-history-'));
    const h = new SourceHistory(dir);
    try {
      await h.git(['init', '--quiet', '--bare', dir], opts.signal);
      await h.git(['fetch', '--quiet', '--no-tags', '--filter=tree:0', '--', repo, '+refs/heads/*:refs/heads/*', '+refs/tags/*:refs/tags/*'], opts.signal);
      // No lazy fetches afterwards: a commit this history lacks is "unknown", not fetched object
      // by object (GIT_NO_LAZY_FETCH below says the same to a git that knows it).
      await h.git(['config', '--unset-all', `remote.${repo}.promisor`]).catch(() => undefined);
      return h;
    } catch (e) {
      h.close();
      throw e;
    }
  }

  private async git(args: string[], signal?: AbortSignal, input?: string): Promise<string> {
    const r = await execa('git', args, {
      cwd: this.dir,
      env: { ...GIT_ENV, GIT_NO_LAZY_FETCH: '1' },
      reject: false,
      timeout: 120_000,
      ...(input === undefined ? { stdin: 'ignore' as const } : { input }),
      ...(signal ? { cancelSignal: signal } : {}),
    });
    if (r.exitCode !== 0) {
      // git's first fatal or error line says what went wrong; its advice lines after it do not
      const lines = (r.stderr || r.stdout).split('\n').map((l) => l.trim()).filter((l) => l !== '' && !/^warning: /.test(l));
      const first = lines.find((l) => /^(fatal|error): /.test(l))?.replace(/^(fatal|error): /, '');
      const why = r.isCanceled ? 'interrupted' : r.timedOut ? 'timed out after 2m' : (first ?? lines.slice(-2).join(' ')) || `exit ${r.exitCode}`;
      throw new Error(`git ${args[0]} failed: ${why}`);
    }
    return r.stdout;
  }

  /** Which of `commits` (40 hex) this history has, as commits. */
  async known(commits: readonly string[]): Promise<Set<string>> {
    if (commits.length === 0) return new Set();
    const out = await this.git(['cat-file', '--batch-check=%(objectname) %(objecttype)'], undefined, commits.join('\n') + '\n');
    return new Set(
      out
        .split('\n')
        .map((l) => l.trim().split(' '))
        .filter(([sha, type]) => type === 'commit' && isFullCommit(sha))
        .map(([sha]) => sha as string),
    );
  }

  /** How `commit` stands to `target`; both must be known(). */
  async relation(commit: string, target: string): Promise<{ relation: Exclude<CommitRelation, 'unknown'>; behind: number; ahead: number }> {
    if (commit === target) return { relation: 'target', behind: 0, ahead: 0 };
    // "<ahead>\t<behind>": commits only `commit` has, commits only `target` has
    const [ahead, behind] = (await this.git(['rev-list', '--left-right', '--count', `${commit}...${target}`])).trim().split(/\s+/).map(Number) as [number, number];
    return { relation: ahead === 0 ? 'behind' : behind === 0 ? 'ahead' : 'diverged', behind, ahead };
  }

  /** The newest `max` commits of `from..to`, as `git log --oneline` lists them. */
  async log(from: string, to: string, max: number): Promise<LogEntry[]> {
    if (max <= 0) return [];
    const out = await this.git(['log', '--no-decorate', `--max-count=${max}`, '--format=%H %h %s', `${from}..${to}`, '--']);
    return out
      .split('\n')
      .filter((l) => l[40] === ' ' && isFullCommit(l.slice(0, 40)))
      .map((l) => {
        const [commit, short, ...subject] = l.split(' ');
        return { commit: commit as string, short: short as string, subject: subject.join(' ') };
      });
  }

  close(): void {
    rmSync(this.dir, { recursive: true, force: true });
  }
}
