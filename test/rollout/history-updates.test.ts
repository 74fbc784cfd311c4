/**
 * `history` per update (issue 25 §4): `history --updates` / `-c FILE` list a repo's updates in the
 * order they were planned, with commit, status, counts, who planned and who ran them, their
 * lineage both ways (batch, retry, undo) and the repo's freezes where they happened; `history
 * NAME` is one update's timeline. Built through the port, read through rollout/history.ts, and
 * the text forms checked for the order a person reads.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { updatesHistoryText, updateTimelineText } from '../../src/output/history-text.js';
import { readUpdatesHistory, readUpdateTimeline } from '../../src/rollout/history.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { UsageError } from '../../src/errors.js';
import { openStore } from '../helpers/db.js';
import { tempDirFor } from '../helpers/tmp.js';
import { newUpdate, steppingClock } from '../store/contract.js';

const C = (ch: string) => ch.repeat(40);
// eslint-disable-next-line no-control-regex
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

test('history --updates / -c: a repo\'s updates in order with lineage both ways, who planned and ran them, and its freezes; history NAME: one update\'s timeline', async (t) => {
  const store = openStore(join(tempDirFor(t, 'agent-update-history-'), 'p.db'), steppingClock());
  t.after(() => store.close());
  const repo = 'https://github.com/example/agent.git';
  const servers = (n: number) => Array.from({ length: n }, (_, i) => ({ name: `s${i + 1}`, host: `h${i + 1}`, port: 22, user: 'u', type: 'app' }));

  // a: planned by alice, run by bob; one server success, one rolled back
  await store.createUpdate(newUpdate('a', 2, { repo, commit: C('a'), configFile: '/c.yaml', createdBy: 'alice@laptop', servers: servers(2) }));
  await store.setUpdateStatus('a', 'pending');
  await store.addEvent('a', null, 'start', 'start by bob@ci (pid 1)', 'bob@ci');
  await store.setUpdateStatus('a', 'running');
  const [s1, s2] = await store.getServers('a');
  await store.setServerStatus(s1!.id, 'running', { step: 'update' });
  await store.setServerStatus(s1!.id, 'success', { step: null });
  await store.setServerStatus(s2!.id, 'running', { step: 'update' });
  await store.setServerStatus(s2!.id, 'rolled-back', { step: null, error: 'health check failed' });
  await store.setUpdateStatus('a', 'partial-success', { reason: '1 server rolled back', endedAt: (await store.getEvents('a')).at(-1)!.at });
  // a freeze, and its lifting, between a and its retry
  await store.freeze({ repoKey: 'github.com/example/agent', repo, configFile: '/c.yaml', reason: 'incident 42', frozenBy: 'carol@oncall' });
  await store.unfreeze('github.com/example/agent', 'alice@laptop');
  // the retry (another form of the same repo), split in two; an undo; another repo's update
  await store.createUpdate(newUpdate('a-retry', 3, { repo: 'git@github.com:example/agent', commit: C('a'), retryOf: 'a', createdBy: 'alice@laptop', servers: servers(3) }));
  await store.setUpdateStatus('a-retry', 'pending');
  assert.deepEqual(await splitUpdate(store, 'a-retry', 2), ['a-retry', 'a-retry.2']);
  await store.createUpdate(newUpdate('a-undo', 1, { repo, commit: C('b'), undoOf: 'a', createdBy: 'dave@desk' }));
  await store.setUpdateStatus('a-undo', 'pending');
  await store.setUpdateStatus('a-undo', 'cancelled', { reason: 'not needed' });
  await store.createUpdate(newUpdate('other', 1, { repo: '/srv/other.git' }));
  // frozen again, in force
  await store.freeze({ repoKey: 'github.com/example/agent', repo, configFile: '/c.yaml', reason: 'release day', frozenBy: 'carol@oncall' });

  const all = await readUpdatesHistory(store);
  assert.deepEqual(all.repos.map((r) => [r.repoKey, r.updates.map((u) => u.name)]), [
    ['/srv/other', ['other']],
    ['github.com/example/agent', ['a', 'a-retry', 'a-retry.2', 'a-undo']],
  ]);
  const mine = await readUpdatesHistory(store, 'ssh://git@github.com/example/agent');
  assert.deepEqual(mine.repos.map((r) => r.repoKey), ['github.com/example/agent'], '-c: only the config\'s repo, whatever form it is written in');
  const r = mine.repos[0]!;
  const byName = Object.fromEntries(r.updates.map((u) => [u.name, u]));
  assert.deepEqual(
    { ...byName.a!, createdAt: '', startedAt: null, endedAt: '' },
    {
      name: 'a', status: 'partial-success', createdAt: '', startedAt: null, endedAt: '', repo, branch: 'master', commit: C('a'), configFile: '/c.yaml',
      createdBy: 'alice@laptop', ranBy: ['bob@ci'], counts: { total: 2, success: 1, 'rolled-back': 1 }, reason: '1 server rolled back',
      batchOf: null, retryOf: null, undoOf: null, batches: [], retries: ['a-retry'], undos: ['a-undo'],
    },
  );
  assert.deepEqual([byName['a-retry']!.retryOf, byName['a-retry']!.batches], ['a', ['a-retry.2']]);
  assert.deepEqual([byName['a-retry.2']!.batchOf, byName['a-retry.2']!.createdBy], ['a-retry', 'alice@laptop'], "a batch's planner is its original's");
  assert.deepEqual(r.freezes.map((f) => [f.reason, f.frozenBy, f.unfrozenBy]), [['incident 42', 'carol@oncall', 'alice@laptop'], ['release day', 'carol@oncall', null]]);

  // the text: each row where it happened, the freeze and its lifting between a and its retry
  const text = plain(updatesHistoryText(mine, store.location));
  const rows = text.split('\n').slice(2).map((l) => l.trim().split(/\s+/)[1]);
  assert.deepEqual(rows, ['a', '(freeze)', '(unfreeze)', 'a-retry', 'a-retry.2', 'a-undo', '(freeze)'], text);
  assert.match(text, /a-retry\s.*retry of a; split into a-retry, a-retry\.2/);
  assert.match(text, /\ba\s+a{12} \(master\)\s+partial-success\s+2 servers: 1 success, 1 rolled-back\s+alice@laptop \(ran: bob@ci\)\s+retried by a-retry; undone by a-undo; 1 server rolled back/);
  assert.match(text, /FROZEN\s+carol@oncall\s+release day/);

  // in a terminal of 70 columns: every line fits, the header whole, the NOTE cut with …; whole without a width
  const visible = (l: string) => [...l].length;
  for (const [what, fitted] of [['updates', plain(updatesHistoryText(mine, store.location, undefined, 70))], ['timeline', plain(updateTimelineText(await readUpdateTimeline(store, 'a'), 70))]] as const) {
    for (const line of fitted.split('\n')) if (!/^\S|^ {2}(target|planned|retried)/.test(line)) assert.ok(visible(line) <= 70, `${what}: ${visible(line)} columns: ${line}`);
    assert.match(fitted, /…/, `${what}: something was cut`);
  }
  assert.match(plain(updatesHistoryText(mine, store.location, undefined, 70)).split('\n')[1]!, /^ {2}WHEN +UPDATE +COMMIT +STATUS/, 'the header whole');
  assert.doesNotMatch(text, /…/, 'without a width (a pipe, --wide): nothing cut');

  // one update's timeline: lineage, the freezes of its life, its events in order
  const tl = await readUpdateTimeline(store, 'a');
  assert.equal(tl.update.name, 'a');
  assert.deepEqual(tl.events.map((e) => e.kind).slice(0, 4), ['planning', 'update-status', 'start', 'update-status']);
  assert.equal(tl.events.find((e) => e.kind === 'start')?.actor, 'bob@ci');
  assert.deepEqual(tl.freezes.map((f) => f.reason), [], 'a ended before either freeze');
  assert.deepEqual((await readUpdateTimeline(store, 'a-retry')).freezes.map((f) => f.reason), ['release day'], 'in force while a-retry is unfinished');
  const tt = plain(updateTimelineText(tl));
  assert.match(tt, /^a: partial-success, 2 servers: 1 success, 1 rolled-back\n {2}target a{12} of master in https:\/\/github\.com\/example\/agent\.git \(config \/c\.yaml\)\n/);
  assert.match(tt, /retried by a-retry; undone by a-undo/);
  assert.match(tt, /start\s+bob@ci\s+start by bob@ci/);
  await assert.rejects(readUpdateTimeline(store, 'nope'), UsageError);

  // a repo never used: nothing, said so
  const none = await readUpdatesHistory(store, 'https://github.com/example/unused');
  assert.deepEqual(none.repos.map((x) => [x.updates.length, x.freezes.length]), [[0, 0]]);
  assert.match(updatesHistoryText(none, store.location, 'https://github.com/example/unused'), /no update of https:\/\/github\.com\/example\/unused in .* yet, and it was never frozen/);
});
