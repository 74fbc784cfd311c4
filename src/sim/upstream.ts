/**
 * A local git repository holding the history of a simulated agent, for tests and `demo`.
 *
 * Every commit carries `agent.env` (shell variables the simulated agent reads when it restarts:
 * `STARTUP_DELAY_MS`, `BROKEN`) and a `VERSION` file. History:
 *
 *     base ── good ── good2
 *               ├──── broken   (BROKEN=1: health never succeeds)
 *               └──── slow     (online only STARTUP_DELAY_MS after a restart)
 *
 * Branches: `master` → good, and `base`, `good2`, `broken`, `slow` each at its commit. With
 * `versions` (options), a chain of releases from base, each on `v<version>` with VERSION = it.
 * The repository is a normal one with a worktree (checked out on master); its path is usable as
 * a git URL by `git fetch`/`git clone`.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import * as path from 'node:path';
import { execa } from 'execa';

export type UpstreamCommitName = 'base' | 'good' | 'good2' | 'broken' | 'slow';

export interface UpstreamOptions {
  /** STARTUP_DELAY_MS of the `slow` commit; default 3000 */
  slowDelayMs?: number;
  /**
   * Versioned releases (agent.semver_command): one commit per version, in this order, each the
   * child of the one before (the first of `base`), with VERSION holding the version, on the
   * branch `v<version>`; `Upstream.versions` maps each version to its commit. Default none.
   */
  versions?: string[];
}

/** What the simulated agent reads from `agent.env` at restart. */
export interface AgentEnv {
  startupDelayMs?: number;
  broken?: boolean;
  /** a crash loop: online this long once started, then down (health fails) until the next restart */
  crashAfterMs?: number;
  /** a crash loop counted in health checks: this many answer online after a restart, then it is down */
  crashAfterChecks?: number;
}

export interface AddCommitOptions extends AgentEnv {
  /** commit (or branch) the new commit's parent is; default the branch's current tip, or master */
  parent?: string;
  /** content of VERSION; default the branch name plus a counter */
  version?: string;
  message?: string;
}

export interface Upstream {
  /** absolute path of the repository, usable as a git URL */
  repo: string;
  /** full 40-hex ids */
  commits: Record<UpstreamCommitName, string>;
  /** UpstreamOptions.versions: each version's commit (empty without them) */
  versions: Record<string, string>;
  /** the commit a branch points to (`master`, `base`, `good2`, `broken`, `slow`, or one made by addCommit) */
  branch(name: string): string;
  /**
   * Commit on `branch` (created when missing) a new version of the agent and move the branch to
   * it; returns its 40-hex id. For tests where the branch tip moves after planning.
   */
  addCommit(branch: string, options?: AddCommitOptions): Promise<string>;
}

const GIT_IDENTITY = [
  '-c',
  'user.name=agent-update sim',
  '-c',
  'user.email=sim@agent-update.invalid',
  '-c',
  'init.defaultBranch=master',
  '-c',
  'commit.gpgsign=false',
  '-c',
  'core.hooksPath=/dev/null',
];

function envFile(env: AgentEnv): string {
  return (
    `# read by the simulated agent at restart\nSTARTUP_DELAY_MS=${Math.max(0, Math.round(env.startupDelayMs ?? 0))}\nBROKEN=${env.broken ? 1 : 0}\n` +
    (env.crashAfterMs !== undefined ? `CRASH_AFTER_MS=${Math.max(0, Math.round(env.crashAfterMs))}\n` : '') +
    (env.crashAfterChecks !== undefined ? `CRASH_AFTER_CHECKS=${Math.max(0, Math.round(env.crashAfterChecks))}\n` : '')
  );
}

export async function createUpstream(dir: string, options: UpstreamOptions = {}): Promise<Upstream> {
  const repo = path.resolve(dir);
  await mkdir(repo, { recursive: true });
  const git = async (...args: string[]): Promise<string> => {
    const result = await execa('git', [...GIT_IDENTITY, '-C', repo, ...args], {
      env: { GIT_TERMINAL_PROMPT: '0' },
    });
    return result.stdout.trim();
  };
  await git('init', '--quiet');

  const branches = new Map<string, string>();
  let counter = 0;

  /** Check out `branch` at `parent` (or as an orphan-free root when null), write, commit. */
  const commitOn = async (branch: string, parent: string | null, version: string, env: AgentEnv, message: string) => {
    if (parent !== null) await git('checkout', '--quiet', '-B', branch, parent);
    else await git('checkout', '--quiet', '-B', branch);
    await writeFile(path.join(repo, 'agent.env'), envFile(env));
    await writeFile(path.join(repo, 'VERSION'), `${version}\n`);
    await git('add', 'agent.env', 'VERSION');
    await git('commit', '--quiet', '--allow-empty', '-m', message);
    const id = await git('rev-parse', 'HEAD');
    branches.set(branch, id);
    return id;
  };

  const slowDelayMs = options.slowDelayMs ?? 3000;
  const base = await commitOn('base', null, 'base', {}, 'base: the version servers start on');
  const good = await commitOn('master', base, 'good', {}, 'good: comes online at once');
  const good2 = await commitOn('good2', good, 'good2', {}, 'good2: another good version');
  const broken = await commitOn('broken', good, 'broken', { broken: true }, 'broken: never comes online');
  const slow = await commitOn(
    'slow',
    good,
    'slow',
    { startupDelayMs: slowDelayMs },
    `slow: online ${slowDelayMs}ms after a restart`,
  );
  const versions: Record<string, string> = {};
  let previous = base;
  for (const v of options.versions ?? []) {
    previous = await commitOn(`v${v}`, previous, v, {}, `release ${v}`);
    versions[v] = previous;
  }
  await git('checkout', '--quiet', 'master');

  return {
    repo,
    commits: { base, good, good2, broken, slow },
    versions,
    branch(name: string): string {
      const id = branches.get(name);
      if (id === undefined) throw new Error(`upstream has no branch ${JSON.stringify(name)}`);
      return id;
    },
    async addCommit(branch: string, opts: AddCommitOptions = {}): Promise<string> {
      counter += 1;
      const parent = opts.parent ?? branches.get(branch) ?? branches.get('master') ?? good;
      const version = opts.version ?? `${branch}-${counter}`;
      const id = await commitOn(branch, parent, version, opts, opts.message ?? `${version}`);
      await git('checkout', '--quiet', 'master');
      return id;
    },
  };
}
