/**
 * Resolving `rollback.commit` at plan time (issue 10, 2.4): an abbreviation becomes the one full
 * commit it names in the repository (any branch or tag), or a UsageError (exit 2).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createUpstream, type Upstream } from '../../src/sim/upstream.js';
import { commitsMatching, resolveRollbackCommit } from '../../src/plan/source.js';
import { EXIT, UsageError } from '../../src/errors.js';

const work = mkdtempSync(path.join(tmpdir(), 'agent-update-source-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

let upstream: Upstream | null = null;
async function repo(): Promise<Upstream> {
  upstream ??= await createUpstream(path.join(work, 'upstream'));
  return upstream;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], {
    encoding: 'utf8',
    env: { ...process.env, GIT_AUTHOR_NAME: 't', GIT_AUTHOR_EMAIL: 't@x', GIT_COMMITTER_NAME: 't', GIT_COMMITTER_EMAIL: 't@x' },
  }).trim();
}

async function usageError(p: Promise<unknown>): Promise<UsageError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof UsageError, `expected a UsageError, got ${String(e)}`);
    assert.equal(e.exitCode, EXIT.usage);
    return e;
  }
  assert.fail('expected a UsageError');
}

test('a full commit is kept (lower case), an abbreviation is expanded wherever the commit is: branch tip, ancestor, other branch, tag only', async () => {
  const u = await repo();
  const { commits } = u;
  assert.equal(await resolveRollbackCommit(u.repo, commits.good.toUpperCase()), commits.good);
  assert.equal(await resolveRollbackCommit(u.repo, commits.good.slice(0, 7)), commits.good, 'the master tip');
  assert.equal(await resolveRollbackCommit(u.repo, commits.base.slice(0, 7)), commits.base, 'an ancestor of master');
  assert.equal(await resolveRollbackCommit(u.repo, commits.broken.slice(0, 10).toUpperCase()), commits.broken, 'on another branch');
  // a commit only a tag reaches
  const tree = git(u.repo, 'rev-parse', `${commits.base}^{tree}`);
  const tagged = git(u.repo, 'commit-tree', tree, '-p', commits.base, '-m', 'only tagged');
  git(u.repo, 'tag', '-a', '-m', 'release', 'v0-tagged', tagged);
  assert.equal(await resolveRollbackCommit(u.repo, tagged.slice(0, 8)), tagged, 'reachable from a tag only');
});

test('an abbreviation naming no commit is a UsageError naming rollback.commit', async () => {
  const u = await repo();
  const unknown = ['deadbee', 'dead', '0000000'].find((p) => !Object.values(u.commits).some((c) => c.startsWith(p)))!;
  const e = await usageError(resolveRollbackCommit(u.repo, unknown));
  assert.match(e.message, new RegExp(`^rollback\\.commit: ${unknown} is not a commit of ${u.repo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  const gone = await usageError(resolveRollbackCommit(path.join(work, 'no-such-repo'), 'abc1234'));
  assert.match(gone.message, /^rollback\.commit: cannot read .*no-such-repo/);
});

test('an abbreviation shared by two commits is ambiguous (a tree with the same prefix does not count)', async () => {
  // 2000 commits: two of them surely share a 4-hex prefix (a config needs 7, but the rule is the same).
  const dir = path.join(work, 'many');
  git(work, 'init', '--quiet', dir);
  let script = '';
  for (let i = 1; i <= 2000; i++) {
    const msg = `c${i}\n`;
    const content = `content ${i}\n`;
    script += `commit refs/heads/master\nmark :${i}\ncommitter t <t@x> ${1_700_000_000 + i} +0000\ndata ${msg.length}\n${msg}`;
    if (i > 1) script += `from :${i - 1}\n`;
    script += `M 644 inline f\ndata ${content.length}\n${content}\n`;
  }
  execFileSync('git', ['-C', dir, 'fast-import', '--quiet'], { input: script });
  const objects = git(dir, 'cat-file', '--batch-all-objects', '--batch-check=%(objectname) %(objecttype)')
    .split('\n')
    .map((l) => l.split(' ') as [string, string]);
  const byPrefix = new Map<string, { commits: string[]; trees: string[] }>();
  for (const [sha, type] of objects) {
    const e = byPrefix.get(sha.slice(0, 4)) ?? { commits: [], trees: [] };
    if (type === 'commit') e.commits.push(sha);
    if (type === 'tree') e.trees.push(sha);
    byPrefix.set(sha.slice(0, 4), e);
  }
  const shared = [...byPrefix].find(([, e]) => e.commits.length === 2);
  assert.ok(shared, 'two commits share a 4-hex prefix');
  const [prefix, { commits }] = shared;
  assert.deepEqual(await commitsMatching(dir, prefix), [...commits].sort());
  const e = await usageError(resolveRollbackCommit(dir, prefix));
  assert.match(e.message, new RegExp(`^rollback\\.commit: ${prefix} is ambiguous in .*: it could be ${[...commits].sort().join(', ')}; give more digits$`));

  const withTree = [...byPrefix].find(([, e]) => e.commits.length === 1 && e.trees.length > 0);
  assert.ok(withTree, 'a commit shares its 4-hex prefix with a tree');
  assert.equal(await resolveRollbackCommit(dir, withTree[0]), withTree[1].commits[0]);
});
