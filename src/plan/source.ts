import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { UsageError } from '../errors.js';

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

/**
 * The full 40-hex commit to roll out: the tip of `branch` when no commit is given (through
 * `git ls-remote`, which works for local paths and remote URLs alike), or the given commit,
 * expanded to its full form and checked to exist when it is abbreviated.
 */
export async function resolveCommit(repo: string, branch: string, commit: string | null): Promise<string> {
  // `--` keeps a repo value from ever being read as an option.
  const out = await git(['ls-remote', '--heads', '--', repo, `refs/heads/${branch}`]).catch((e: Error) => {
    throw new UsageError(`cannot read ${repo}: ${e.message}`);
  });
  const tip = out.split('\n').map((l) => l.split('\t')[0]?.trim() ?? '').find((sha) => /^[0-9a-f]{40}$/.test(sha));
  if (!tip) throw new UsageError(`source.branch: ${repo} has no branch ${JSON.stringify(branch)}`);
  if (commit === null) return tip;
  if (commit.length === 40 || tip.startsWith(commit)) return commit.length === 40 ? commit : tip;
  // An abbreviated commit that is not the tip: fetch the branch (no file contents) to expand it.
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-resolve-'));
  try {
    await git(['init', '--quiet', '--bare', dir]);
    await git(['fetch', '--quiet', '--filter=blob:none', '--', repo, `refs/heads/${branch}`], dir);
    const full = (await git(['rev-parse', '--verify', '--quiet', `${commit}^{commit}`], dir).catch(() => '')).trim();
    if (!/^[0-9a-f]{40}$/.test(full)) {
      throw new UsageError(`source.commit: ${commit} is not a commit on branch ${branch} of ${repo}`);
    }
    return full;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
