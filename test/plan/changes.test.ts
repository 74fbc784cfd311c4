/**
 * What a plan says the update changes (src/plan/changes.ts) against a real git repository (the
 * simulated agent's upstream): the commit count and log from the oldest running commit, and
 * downgrades, diverged and unknown commits said as such, with no count.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import * as path from 'node:path';
import { createUpstream, type Upstream } from '../../src/sim/upstream.js';
import { SourceHistory } from '../../src/plan/source.js';
import { LOG_LINES, planChanges } from '../../src/plan/changes.js';
import type { ServerRecord } from '../../src/model/records.js';
import { makeTempDir } from '../helpers/tmp.js';

const work = makeTempDir('agent-update-changes-');
test.after(() => rmSync(work, { recursive: true, force: true }));

/** The upstream, plus a branch `long` of 12 commits on top of good. */
let made: Promise<{ u: Upstream; tip: string }> | null = null;
function repo(): Promise<{ u: Upstream; tip: string }> {
  made ??= (async () => {
    const u = await createUpstream(path.join(work, 'upstream'));
    let tip = '';
    for (let i = 1; i <= 12; i++) tip = await u.addCommit('long', { message: `long ${i}: step ${i} of the long branch` });
    return { u, tip };
  })();
  return made;
}

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
}

let id = 0;
function server(name: string, status: ServerRecord['status'], fromCommit: string | null): ServerRecord {
  return { id: ++id, updateName: 'u', position: id, name, host: 'h', port: 22, user: 'u', type: 'app', types: ['app'], status, step: null, fromCommit, toCommit: null, error: null, startedAt: null, endedAt: null, lockHeld: false };
}

async function withHistory<T>(repoPath: string, fn: (h: SourceHistory) => Promise<T>): Promise<T> {
  const h = await SourceHistory.fetch(repoPath);
  try {
    return await fn(h);
  } finally {
    h.close();
  }
}

test('the count and the log run from the oldest running commit to the target, as git log says; the other commits are placed', async () => {
  const { u, tip } = await repo();
  const { base, good, good2 } = u.commits;
  const unknown = 'd'.repeat(40);
  const servers = [
    server('s1', 'pending', good),
    server('s2', 'pending', base),
    server('s3', 'pending', good2),
    server('s4', 'skipped', tip),
    server('s5', 'pending', unknown),
    server('s6', 'unreachable', null),
    server('s7', 'pending', base),
  ];
  const c = await withHistory(u.repo, (h) => planChanges(h, tip, servers));
  assert.equal(c.error, null);
  assert.equal(c.to, tip);
  assert.equal(c.from, base, 'the oldest running commit');
  assert.equal(c.commits, Number(git(u.repo, 'rev-list', '--count', `${base}..${tip}`)));
  assert.equal(c.commits, 13);
  const expected = git(u.repo, 'log', `--max-count=${LOG_LINES}`, '--format=%H %s', `${base}..${tip}`).split('\n');
  assert.deepEqual(c.log.map((e) => `${e.commit} ${e.subject}`), expected);
  for (const e of c.log) assert.ok(e.commit.startsWith(e.short) && e.short.length >= 7, e.short);
  assert.equal(c.log[0]!.subject, 'long 12: step 12 of the long branch');
  assert.equal(c.more, 3);
  assert.deepEqual(
    c.running.map((r) => [r.commit, r.servers, r.relation, r.behind, r.ahead]),
    [
      [base, ['s2', 's7'], 'behind', 13, 0],
      [good, ['s1'], 'behind', 12, 0],
      [tip, ['s4'], 'target', 0, 0],
      [good2, ['s3'], 'diverged', 12, 1],
      [unknown, ['s5'], 'unknown', null, null],
    ],
  );
});

test('a downgrade has no count: the target is behind every running commit', async () => {
  const { u, tip } = await repo();
  const c = await withHistory(u.repo, (h) => planChanges(h, u.commits.good, [server('a', 'pending', tip), server('b', 'pending', u.commits.good2)]));
  assert.equal(c.error, null);
  assert.equal(c.from, null);
  assert.equal(c.commits, null);
  assert.deepEqual(c.log, []);
  assert.deepEqual(
    c.running.map((r) => [r.servers, r.relation, r.behind, r.ahead]),
    [
      [['a'], 'ahead', 0, 12],
      [['b'], 'ahead', 0, 1],
    ],
  );
});

test('a history that cannot be read is an error kept in the changes, with the running commits still listed', async () => {
  await assert.rejects(SourceHistory.fetch(path.join(work, 'no-such-repo')), /git fetch failed: .*no-such-repo/);
  const { u } = await repo();
  const c = await planChanges({ error: 'git fetch failed: nope' }, u.commits.good, [server('a', 'pending', u.commits.base)]);
  assert.deepEqual(c, {
    to: u.commits.good,
    from: null,
    commits: null,
    log: [],
    more: 0,
    running: [{ commit: u.commits.base, servers: ['a'], relation: null, behind: null, ahead: null }],
    error: 'git fetch failed: nope',
  });
});
