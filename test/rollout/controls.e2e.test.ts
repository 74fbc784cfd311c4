/**
 * Operator controls end to end (issue 3): pause from another process, signals, test mode,
 * split and parallel batches, the executor lease, and takeover after kill -9.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { readDeployCount, currentCommit } from '../../src/sim/agent.js';
import { Store, type ServerRecord } from '../../src/store/store.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, spawnCli, statusJson, fleetFor } from '../helpers/cli.js';

async function plan(fleet: Fleet, overrides: Record<string, unknown> = {}, name = 'u1'): Promise<{ db: string; name: string }> {
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name, ...overrides });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stderr);
  return { db, name };
}

/** Poll the plan database (a second reader, as `status` would be) until `pred` holds. */
async function waitFor<T>(db: string, what: string, pred: (store: Store) => T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const store = new Store(db);
  try {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = pred(store);
      if (v) return v;
      if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  } finally {
    store.close();
  }
}

const serverIs = (name: string, server: string, pred: (s: ServerRecord) => boolean) => (store: Store) => {
  const s = store.getServers(name).find((x) => x.name === server);
  return s && pred(s) ? s : undefined;
};

/** Slow agent: comes online `delay` after a restart; health polled quickly. */
const slow = (delay = '20s') => ({ source: { branch: 'slow' }, agent: { health: { timeout: delay, interval: '100ms' } } });

test('pause from a second process: the server in flight finishes, then the update is paused (exit 3); resume finishes it', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 2500 } });
  if (!fleet) return;
  const { db, name } = await plan(fleet, slow());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  const began = Date.now();
  const p = await cli(['pause', name], { db });
  assert.equal(p.code, 0, p.stderr);
  assert.ok(Date.now() - began < 10_000, 'pause returns at once');
  assert.match(p.stdout, /pause requested/);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  let doc = await statusJson(db, name);
  assert.equal(doc.status, 'paused');
  assert.equal(byName(doc).s1!.status, 'success', 'the server in flight was finished, not abandoned');
  assert.equal(byName(doc).s2!.status, 'pending');
  // Pausing a paused update is harmless.
  assert.equal((await cli(['pause', name], { db })).code, 0);

  const resumed = await cli(['resume', name], { db });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  for (const s of doc.servers) assert.equal(readDeployCount(fleet.home(s.name)), 1, `${s.name} deployed once`);
});

test('SIGINT pauses after the server in flight; a second SIGINT stops at once and start takes over', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 2000 } });
  if (!fleet) return;
  const { db, name } = await plan(fleet, slow());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  run.kill('SIGINT');
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stderr));
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'success');

  const again = spawnCli(['resume', name], { db });
  await waitFor(db, 's2 verifying', serverIs(name, 's2', (s) => s.step === 'verify'));
  again.kill('SIGINT');
  await new Promise((res) => setTimeout(res, 200));
  again.kill('SIGINT');
  const hard = await again;
  assert.equal(hard.exitCode, 130, String(hard.stderr));
  let doc = await statusJson(db, name);
  assert.equal(doc.status, 'running', 'a hard stop leaves the update running for a takeover');
  assert.equal(byName(doc).s2!.status, 'running');

  // The pause asked by the first Ctrl-C is kept: the takeover finishes s2, then pauses.
  const taken = await cli(['start', name], { db });
  assert.equal(taken.code, 3, taken.stdout + taken.stderr);
  assert.match(taken.stdout, /takeover|taking over/);
  doc = await statusJson(db, name);
  assert.equal(byName(doc).s2!.status, 'success');
  assert.equal(readDeployCount(fleet.home('s2')), 1, 'verified, not redeployed');
  assert.equal((await cli(['resume', name], { db })).code, 0);
});

test('test mode: stop_after pauses after N servers; resume goes on to the end or to the next --stop-after', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 1 } });
  const first = await cli(['start', name], { db });
  assert.equal(first.code, 3, first.stdout + first.stderr);
  let doc = await statusJson(db, name);
  assert.equal(doc.status, 'paused');
  assert.deepEqual(doc.counts, { total: 4, success: 1, pending: 3 });
  assert.match(first.stdout, /agent-update --db \S+ resume u1/);
  // start on an update paused by test mode is refused (exit 2), naming the command to use instead.
  const wrong = await cli(['start', name], { db });
  assert.equal(wrong.code, 2, wrong.stdout + wrong.stderr);
  assert.match(wrong.stderr, /agent-update (--db \S+ )?resume u1/);
  assert.deepEqual((await statusJson(db, name)).counts, { total: 4, success: 1, pending: 3 }, 'and nothing ran');

  const second = await cli(['resume', name, '--stop-after', '2'], { db });
  assert.equal(second.code, 3);
  doc = await statusJson(db, name);
  assert.deepEqual(doc.counts, { total: 4, success: 3, pending: 1 });

  const last = await cli(['resume', name], { db });
  assert.equal(last.code, 0);
  assert.equal((await statusJson(db, name)).status, 'success');
});

test('--stop-after on start overrides the config; start on a paused update says to resume', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  assert.equal((await cli(['start', name, '--stop-after', '2'], { db })).code, 3);
  assert.deepEqual((await statusJson(db, name)).counts, { total: 3, success: 2, pending: 1 });
  const wrong = await cli(['start', name], { db });
  assert.equal(wrong.code, 2);
  assert.match(wrong.stderr, /agent-update resume u1/);
});

test('split 7 servers into 3 balanced batches and run them in parallel', async (t) => {
  const fleet = await fleetFor(t, { servers: 7 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 0 } });
  const r = await cli(['split', name, '--batches', '3', '--json'], { db });
  assert.equal(r.code, 0, r.stderr);
  const names = (JSON.parse(r.stdout) as { updates: string[] }).updates;
  assert.deepEqual(names, ['u1', 'u1.2', 'u1.3']);
  const docs = await Promise.all(names.map((n) => statusJson(db, n)));
  assert.deepEqual(docs.map((d) => d.servers.length), [3, 2, 2]);
  const all = docs.flatMap((d) => d.servers.map((s) => s.name)).sort();
  assert.deepEqual(all, ['s1', 's2', 's3', 's4', 's5', 's6', 's7'], 'disjoint and together the original set');
  assert.equal(docs[1]!.batchOf, 'u1');
  assert.equal(docs[0]!.batchOf, null);
  // Only a pending update can be split.
  assert.equal((await cli(['split', 'u1.2', '--batches', '2'], { db })).code, 0);

  const began = Date.now();
  const run = await cli(['start', ...names, 'u1.2.2'], { db });
  const parallelMs = Date.now() - began;
  assert.equal(run.code, 0, run.stdout + run.stderr);
  const after = await Promise.all([...names, 'u1.2.2'].map((n) => statusJson(db, n)));
  for (const d of after) assert.equal(d.status, 'success', d.name);
  // The batches really overlapped: some server of each batch ran while one of another did.
  const intervals = after.flatMap((d) => d.servers.map((s) => ({ b: d.name, a: Date.parse(s.startedAt!), z: Date.parse(s.endedAt!) })));
  const overlapping = intervals.some((x) => intervals.some((y) => x.b !== y.b && x.a < y.z && y.a < x.z));
  assert.ok(overlapping, 'batches ran in parallel');
  // Within one batch, strictly one server at a time.
  for (const d of after) {
    for (let i = 1; i < d.servers.length; i++) assert.ok(d.servers[i]!.startedAt! >= d.servers[i - 1]!.endedAt!);
  }
  // One at a time, the same servers would take about the sum of their durations.
  const sequentialMs = intervals.reduce((sum, x) => sum + (x.z - x.a), 0);
  t.diagnostic(`4 batches of 7 servers in parallel: ${parallelMs} ms wall, ${sequentialMs} ms of server work (${(parallelMs / sequentialMs).toFixed(2)}x)`);
});

test('split keeps test mode on the first batch only', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 1 } });
  assert.equal((await cli(['split', name, '--batches', '2'], { db })).code, 0);
  const r = await cli(['start', name, `${name}.2`], { db });
  assert.equal(r.code, 3, 'the worst of paused (first batch) and success (second)');
  assert.equal((await statusJson(db, name)).status, 'paused');
  assert.equal((await statusJson(db, `${name}.2`)).status, 'success');
  assert.match(r.stdout, new RegExp(`${name} paused \\(test mode: 1 server finished\\); continue with: agent-update --db \\S+ resume ${name}$`, 'm'));
  assert.doesNotMatch(r.stdout, /continue all/, 'one paused batch: no combined line');
});

test('--stop-after on several batches pauses each; the one line printed to continue them all works', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 0 } });
  assert.equal((await cli(['split', name, '--batches', '2'], { db })).code, 0);
  const r = await cli(['start', name, `${name}.2`, '--stop-after', '1'], { db });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  const m = /^continue all 2 with: agent-update --db (\S+) (resume .*)$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  assert.equal(m[1], db);
  assert.deepEqual(m[2]!.split(' '), ['resume', name, `${name}.2`]);
  const resumed = await cli(m[2]!.split(' '), { db });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  for (const n of [name, `${name}.2`]) assert.equal((await statusJson(db, n)).status, 'success', n);
  for (const s of ['s1', 's2', 's3', 's4']) assert.equal(readDeployCount(fleet.home(s)), 1, s);
});

test('a second start of a running update is refused at once with exit 4, naming the holder', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, upstream: { slowDelayMs: 3000 } });
  if (!fleet) return;
  const { db, name } = await plan(fleet, slow());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 running', serverIs(name, 's1', (s) => s.status === 'running'));
  const began = Date.now();
  const second = await cli(['start', name], { db });
  const tookMs = Date.now() - began;
  const live = await statusJson(db, name);
  assert.equal(live.executor?.pid, run.pid);
  assert.equal(live.executor?.alive, true);
  assert.equal(second.code, 4, second.stderr);
  assert.match(second.stderr, new RegExp(`pid ${run.pid}`));
  assert.ok(tookMs < 10_000, `refused in ${tookMs} ms`);
  t.diagnostic(`second start refused in ${tookMs} ms (including node start-up)`);
  const resumed = await cli(['resume', name], { db });
  assert.equal(resumed.code, 4, 'resume is refused the same way');
  run.kill('SIGINT');
  await run;
});

for (const point of ['update', 'verify', 'between servers'] as const) {
  test(`kill -9 of the executor during ${point}: start takes over, nothing finished is redone`, async (t) => {
    const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 1500 } });
    if (!fleet) return;
    const { commits } = fleet.upstream;
    // A slow update command gives the kill a window inside the update step.
    const base = fleet.configObject();
    const update = [...((base.agent as { update: string[] }).update), 'sleep 1'];
    const { db, name } = await plan(fleet, { ...slow(), agent: { update, health: { timeout: '20s', interval: '100ms' } } });
    const run = spawnCli(['start', name], { db });
    if (point === 'update') await waitFor(db, 's2 updating', serverIs(name, 's2', (s) => s.step === 'update' && s.fromCommit !== null));
    else if (point === 'verify') await waitFor(db, 's2 verifying', serverIs(name, 's2', (s) => s.step === 'verify'));
    else await waitFor(db, 's1 done', serverIs(name, 's1', (s) => s.status === 'success'));
    run.kill('SIGKILL');
    await run;
    const mid = await statusJson(db, name);
    assert.equal(mid.status, 'running', 'a killed executor leaves the update running');
    assert.equal(mid.executor?.alive, false, 'status shows the executor is gone');

    const taken = await cli(['start', name], { db });
    assert.equal(taken.code, 0, taken.stdout + taken.stderr);
    const doc = await statusJson(db, name);
    assert.equal(doc.status, 'success');
    for (const s of doc.servers) assert.equal(currentCommit(fleet.home(s.name)), commits.slow, s.name);
    assert.equal(readDeployCount(fleet.home('s1')), 1, 's1 had finished and was not touched again');
    assert.equal(readDeployCount(fleet.home('s3')), 1);
    const s2 = readDeployCount(fleet.home('s2'));
    if (point === 'verify') assert.equal(s2, 1, 'already at the target: verified, not redeployed');
    else assert.ok(s2 >= 1 && s2 <= 2, `s2 deployed ${s2} times`);
  });
}

test('pause of an update whose executor died between servers pauses it at once; resume finishes it', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 1500 } });
  if (!fleet) return;
  const { db, name } = await plan(fleet, slow());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 done', serverIs(name, 's1', (s) => s.status === 'success'));
  run.kill('SIGKILL');
  await run;
  // Make sure no server is in flight for this case: if s2 had started, finish it by takeover first.
  const mid = await statusJson(db, name);
  if (byName(mid).s2!.status === 'running') {
    assert.equal((await cli(['start', name, '--stop-after', '1'], { db })).code, 3);
  } else {
    const p = await cli(['pause', name], { db });
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /paused \(no process was executing it/);
  }
  assert.equal((await statusJson(db, name)).status, 'paused');
  const r = await cli(['resume', name], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  for (const s of ['s1', 's2', 's3']) assert.equal(readDeployCount(fleet.home(s)), 1, s);
});

test('cancel ends a pending or paused update; a running one must be paused first', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  const c = await cli(['cancel', name], { db });
  assert.equal(c.code, 0, c.stderr);
  assert.equal((await statusJson(db, name)).status, 'cancelled');
  const s = await cli(['start', name], { db });
  assert.equal(s.code, 2);
  assert.equal(readDeployCount(fleet.home('s1')), 0);
  const again = await cli(['cancel', name], { db });
  assert.equal(again.code, 2, 'a cancelled update cannot be cancelled again');
});

test('Ctrl-C with --parallel 1: the batches still waiting their turn do not start afterwards', async (t) => {
  const fleet = await fleetFor(t, { servers: 4, upstream: { slowDelayMs: 2000 } });
  if (!fleet) return;
  const { db, name } = await plan(fleet, slow());
  assert.equal((await cli(['split', name, '--batches', '2'], { db })).code, 0);
  const run = spawnCli(['start', name, `${name}.2`, '--parallel', '1'], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  run.kill('SIGINT');
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  assert.equal((await statusJson(db, name)).status, 'paused');
  const second = await statusJson(db, `${name}.2`);
  assert.equal(second.status, 'pending', 'the queued batch was not started after the Ctrl-C');
  for (const s of ['s3', 's4']) assert.equal(readDeployCount(fleet.home(s)), 0, `${s} untouched`);
});
