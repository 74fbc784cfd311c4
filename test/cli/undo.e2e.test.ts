/**
 * `agent-update undo NAME` end to end (issue 15, item 5) on the real OpenSSH fleet: each server
 * NAME changed goes back to its own previous commit, verified like any update; servers NAME did
 * not change, or another update changed since, are left out (and listed); NAME is not changed.
 */
import assert from 'node:assert/strict';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit, readDeploys } from '../../src/sim/agent.js';
import { byName, cli, sharedFleet, statusJson } from '../helpers/cli.js';
import { openStore } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 3 });

test('undo of a finished update puts each server it changed back to its own previous commit, verified; refusals and nothing-to-undo', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good, good2 } = fleet.upstream.commits;
  await fleet.setCommit('s2', good2);
  await fleet.setCommit('s3', good);
  const db = join(fleet.root, 'plan.db');
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'a' })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.equal((await cli(['undo', 'a'], { db })).code, 2, 'a pending update has nothing to undo: refused');
  const run = await cli(['start', 'a'], { db });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const before = await statusJson(db, 'a');

  const u = await cli(['undo', 'a'], { db });
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stdout, /planned update a-undo, the undo of a: 2 servers, each back to the commit it had before a/);
  assert.match(u.stdout, /undo of +a: each server back to the commit it had before it \(its TO\)/);
  const planned = await statusJson(db, 'a-undo');
  assert.equal(planned.undoOf, 'a');
  assert.equal(planned.status, 'pending');
  const s = byName(planned);
  assert.deepEqual(Object.keys(s), ['s1', 's2'], 's3 was skipped by a (already at its target): not undone');
  assert.deepEqual(s.s1!.path, [{ commit: base, version: null }]);
  assert.deepEqual(s.s2!.path, [{ commit: good2, version: null }]);
  assert.equal(s.s1!.fromCommit, good);
  // its commands' header names what the undo puts back, not the branch a was planned from
  const shown = await cli(['plan', '--show-commands', 'a-undo'], { db });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /^commands update a-undo will send \(nothing is run now\); target [0-9a-f]{40} \(what most of its servers ran before a, in .*; each goes back to its own\)$/m);
  assert.doesNotMatch(shown.stdout.split('\n')[0]!, / of .* master|\(master of/);

  const again = await cli(['undo', 'a'], { db });
  assert.equal(again.code, 2, 'an unfinished undo of a exists');
  assert.match(again.stderr, /a already has an undo that is not finished: a-undo \(pending\)/);

  const go = await cli(['start', 'a-undo'], { db });
  assert.equal(go.code, 0, go.stdout + go.stderr);
  const done = byName(await statusJson(db, 'a-undo'));
  assert.equal(done.s1!.status, 'success');
  assert.equal(done.s1!.toCommit, base);
  assert.equal(done.s2!.toCommit, good2);
  assert.equal(currentCommit(fleet.home('s1')), base, 's1 back where it was');
  assert.equal(currentCommit(fleet.home('s2')), good2, 's2 back where it was (not to s1’s commit)');
  assert.equal(currentCommit(fleet.home('s3')), good, 's3 untouched');
  assert.deepEqual(readDeploys(fleet.home('s1')), [good, base]);
  assert.deepEqual(readDeploys(fleet.home('s3')), []);
  // verified at its own commit: the health check's expect was the undo commit
  const store = openStore(db);
  try {
    const verify = (await store.getJournal('a-undo', 's2')).filter((x) => x.phase === 'verify');
    assert.ok(verify.length > 0 && verify.at(-1)!.stdout!.includes(good2), 'verified at good2');
  } finally {
    await store.close();
  }
  assert.deepEqual(await statusJson(db, 'a'), before, 'a itself is not changed');

  // an update that changed nothing (s3 was at its target): nothing to undo, nothing written
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'same', include: ['s3'] })], { db })).code, 0);
  assert.equal((await cli(['start', 'same'], { db })).code, 0);
  const none = await cli(['undo', 'same'], { db });
  assert.equal(none.code, 0, none.stdout + none.stderr);
  assert.match(none.stdout, /nothing to undo in same: no server of it was changed by it \(none ended success\); nothing was written/);
  assert.equal((await cli(['status', 'same-undo'], { db })).code, 2, 'no update was written');
});

test('undo leaves out (and lists) a server another update changed since', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good, good2 } = fleet.upstream.commits;
  const db = join(fleet.root, 'plan.db');
  for (const [name, over] of [['c', {}], ['d', { include: ['s1'], source: { branch: 'good2' } }]] as const) {
    const p = await cli(['plan', '-c', fleet.writeConfig({ name, ...over })], { db });
    assert.equal(p.code, 0, p.stdout + p.stderr);
    const r = await cli(['start', name], { db });
    assert.equal(r.code, 0, r.stdout + r.stderr);
  }
  assert.equal(currentCommit(fleet.home('s1')), good2);
  const u = await cli(['undo', 'c'], { db });
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stderr, /1 server left out, changed since by another update \(undoing c there would undo that one too\): s1 by d \(success\)/);
  const planned = await statusJson(db, 'c-undo');
  assert.deepEqual(planned.servers.map((x) => x.name), ['s2', 's3']);
  const go = await cli(['start', 'c-undo'], { db });
  assert.equal(go.code, 0, go.stdout + go.stderr);
  assert.equal(currentCommit(fleet.home('s1')), good2, "d's change is kept");
  assert.equal(currentCommit(fleet.home('s2')), base);
  // undo of the undo: forward again, and then nothing left to undo in d once s1 is changed by nobody else
  const nothing = await cli(['undo', 'c-undo', '--name', 'redo'], { db });
  assert.equal(nothing.code, 0, nothing.stdout + nothing.stderr);
  assert.equal((await statusJson(db, 'redo')).undoOf, 'c-undo');
  assert.deepEqual(byName(await statusJson(db, 'redo')).s2!.path, [{ commit: good, version: null }]);
  const empty = await cli(['undo', 'nope'], { db });
  assert.equal(empty.code, 2);
  const json = await cli(['--json', 'undo', 'd'], { db });
  assert.equal(json.code, 0, json.stdout + json.stderr);
  assert.equal((JSON.parse(json.stdout) as { undoOf: string }).undoOf, 'd');
  // c again: every server it changed has been changed since (s1 by d, the others by c's undo), as --json says it
  const again = await cli(['--json', 'undo', 'c', '--name', 'c-undo-again'], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  const cj = JSON.parse(again.stdout) as { undo: unknown; changedSince: unknown };
  assert.equal(cj.undo, null);
  assert.deepEqual(cj.changedSince, [
    { server: 's1', update: 'c', by: { update: 'd', status: 'success' } },
    { server: 's2', update: 'c', by: { update: 'c-undo', status: 'success' } },
    { server: 's3', update: 'c', by: { update: 'c-undo', status: 'success' } },
  ]);
});

test('a retry of a retry of an undo still sends each server to its own previous commit, not to the undo’s majority commit', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good2 } = fleet.upstream.commits;
  await fleet.setCommit('s3', good2);
  const db = join(fleet.root, 'plan.db');
  // the health check fails on a server whose ~/bad names the commit it checks: an undo that does not come back
  const health = { command: 'c={commit}; [ "$(cat ~/bad 2>/dev/null)" != "$c" ] && ~/agent/bin/health', timeout: '2s', interval: '100ms' };
  const p = await cli(['plan', '-c', fleet.writeConfig({ name: 'a', agent: { health } })], { db });
  assert.equal(p.code, 0, p.stdout + p.stderr);
  assert.equal((await cli(['start', 'a'], { db })).code, 0);
  assert.equal((await cli(['undo', 'a'], { db })).code, 0);
  assert.equal((await statusJson(db, 'a-undo')).source.commit, base, 'the undo’s own commit: the one most of its servers go back to');
  writeFileSync(join(fleet.home('s3'), 'bad'), `${good2}\n`);
  assert.equal((await cli(['start', 'a-undo'], { db })).code, 1);
  assert.equal(byName(await statusJson(db, 'a-undo')).s3!.status, 'rolled-back');
  // the retry of the undo, and the retry of that retry: s3 keeps its own target, good2
  for (const [from, name] of [['a-undo', 'r1'], ['r1', 'r2']] as const) {
    const r = await cli(['retry', from, '--name', name], { db });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    const s3 = byName(await statusJson(db, name)).s3!;
    assert.deepEqual(s3.path, [{ commit: good2, version: null }], `${name}: s3 goes back to good2`);
    if (name === 'r1') assert.equal((await cli(['start', name], { db })).code, 1, 'r1 fails again: s3 still bad');
  }
  rmSync(join(fleet.home('s3'), 'bad'));
  const go = await cli(['start', 'r2'], { db });
  assert.equal(go.code, 0, go.stdout + go.stderr);
  assert.equal(currentCommit(fleet.home('s3')), good2, 's3 back at its own previous commit');
  assert.equal(currentCommit(fleet.home('s1')), base);
});

test('undo names the servers NAME changed that did not end success (rolled back to rollback.commit): not undone; a later plain rollback is not a change since', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good } = fleet.upstream.commits;
  await fleet.setCommit('s1', good);
  const db = join(fleet.root, 'plan.db');
  const quick = { agent: { health: { timeout: '500ms', interval: '100ms' } } };
  // rc: s1 (at good) gets broken, is rolled back to rollback.commit = base: changed, not success
  const rc = fleet.writeConfig({ name: 'rc', include: ['s1'], source: { branch: 'broken' }, rollback: { commit: base }, ...quick });
  assert.equal((await cli(['plan', '-c', rc], { db })).code, 0);
  assert.equal((await cli(['start', 'rc'], { db })).code, 1);
  assert.equal(currentCommit(fleet.home('s1')), base);
  const u = await cli(['undo', 'rc'], { db });
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stdout, /nothing to undo in rc/);
  assert.match(u.stderr, /1 server rc changed but did not end success is not undone: s1 \(rolled back to [0-9a-f]{12}, not to the commit it had\)/);

  // ok: s2 base → good; then bad: s2 good → broken, rolled back to good (a plain rollback): undo ok still takes s2
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'ok', include: ['s2'] })], { db })).code, 0);
  assert.equal((await cli(['start', 'ok'], { db })).code, 0);
  const bad = fleet.writeConfig({ name: 'bad', include: ['s2'], source: { branch: 'broken' }, ...quick });
  assert.equal((await cli(['plan', '-c', bad], { db })).code, 0);
  assert.equal((await cli(['start', 'bad'], { db })).code, 1);
  const undo = await cli(['--json', 'undo', 'ok'], { db });
  assert.equal(undo.code, 0, undo.stdout + undo.stderr);
  const doc = JSON.parse(undo.stdout) as { servers: Array<{ name: string; path: Array<{ commit: string }> }>; changedSince: unknown[] };
  assert.deepEqual(doc.servers.map((s) => [s.name, s.path[0]!.commit]), [['s2', base]]);
  assert.deepEqual(doc.changedSince, []);

  // ok3: s3 base → good; then rc3 sends s3 to broken and rolls it back to rollback.commit (good2):
  // that rollback changed s3, so undoing ok3 there would undo rc3's change too — left out
  const { good2 } = fleet.upstream.commits;
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'ok3', include: ['s3'] })], { db })).code, 0);
  assert.equal((await cli(['start', 'ok3'], { db })).code, 0);
  const rc3 = fleet.writeConfig({ name: 'rc3', include: ['s3'], source: { branch: 'broken' }, rollback: { commit: good2 }, ...quick });
  assert.equal((await cli(['plan', '-c', rc3], { db })).code, 0);
  assert.equal((await cli(['start', 'rc3'], { db })).code, 1);
  assert.equal(currentCommit(fleet.home('s3')), good2);
  const left = await cli(['undo', 'ok3'], { db });
  assert.equal(left.code, 0, left.stdout + left.stderr);
  assert.match(left.stdout, /nothing to undo in ok3/);
  assert.match(left.stderr, /1 server left out, changed since by another update .*: s3 by rc3 \(rolled-back\)/);
});

test('undo NAME --start and retry NAME --start plan and run in one step (kubectl rollout undo); --json is the run’s event stream alone', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { base, good } = fleet.upstream.commits;
  const db = join(fleet.root, 'plan.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'b' })], { db })).code, 0);
  assert.equal((await cli(['start', 'b'], { db })).code, 0);
  assert.equal(currentCommit(fleet.home('s1')), good);

  const u = await cli(['undo', 'b', '--start'], { db });
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.match(u.stdout, /planned update b-undo, the undo of b: 2 servers, .*; starting it/);
  assert.match(u.stdout, /b-undo success/);
  assert.equal((await statusJson(db, 'b-undo')).status, 'success');
  assert.equal(currentCommit(fleet.home('s1')), base);
  assert.equal(currentCommit(fleet.home('s2')), base);

  // a retry of an update whose servers could not be reached, started at once, in --json
  const cfg = fleet.writeConfig({ name: 'c' });
  assert.equal((await cli(['plan', '-c', cfg], { db })).code, 0);
  const store = openStore(db);
  try {
    const [s1] = await store.getServers('c');
    await store.setUpdateStatus('c', 'running');
    await store.setServerStatus(s1!.id, 'running', { step: 'update', startedAt: new Date().toISOString() });
    await store.setServerStatus(s1!.id, 'unreachable', { step: null, error: 'could not connect (simulated)', endedAt: new Date().toISOString() });
  } finally {
    await store.close();
  }
  assert.equal((await cli(['start', 'c'], { db })).code, 1, 'c ends partial: s1 unreachable');
  const r = await cli(['retry', 'c', '--start', '--json'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.every((l) => l.startsWith('{"v":')), `stdout is NDJSON only:\n${r.stdout}`);
  const last = JSON.parse(lines.at(-1)!) as { type: string; status: string };
  assert.deepEqual([last.type, last.status], ['result', 'success']);
  assert.equal(currentCommit(fleet.home('s1')), good);
});
