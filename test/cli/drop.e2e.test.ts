/**
 * `drop NAME SERVER...` end to end (issue 15, item 2) on a real OpenSSH fleet: dropped servers
 * are excluded, never touched by start or resume (their agent's commit and deploy log prove it on
 * the server), shown with who and why in status and logs; refused, with nothing changed, for a
 * running or finished update, an unknown server and one already done.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { currentCommit, readDeployCount } from '../../src/sim/agent.js';
import { actor } from '../../src/util/actor.js';
import { byName, cli, cliStatusJson, planned, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { contents, waitForStore as waitFor, withStore } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 3 });

/** Everything a refused command must leave as it was: updates, server rows, the journal and events. */
async function snapshot(db: string): Promise<string> {
  return await withStore(db, async (store) => await contents(store));
}

test('drop before start: the dropped server is excluded with its reason, start never touches it, the update ends success', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await planned(fleet);
  const base = fleet.upstream.commits.base;
  const target = fleet.upstream.branch('master');
  assert.equal(currentCommit(fleet.home('s2')), base);

  const r = await cli(['--json', 'drop', name, 's2', '--reason', 'disk swap on Friday'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const out = JSON.parse(r.stdout) as { update: string; dropped: Array<{ name: string; update: string }>; error: string; status: { servers: Array<{ name: string; status: string }> } };
  const why = `dropped by ${actor()}: disk swap on Friday`;
  assert.deepEqual(out.dropped, [{ name: 's2', update: name }]);
  assert.equal(out.error, why);
  assert.equal(out.status.servers.find((s) => s.name === 's2')!.status, 'excluded');
  assert.match(r.stderr, /^database: /m, 'a command that writes says which database');

  // status (JSON and text) shows it excluded with the reason, before and after the run
  let doc = await cliStatusJson(db, name);
  assert.equal(byName(doc).s2!.status, 'excluded');
  assert.equal(byName(doc).s2!.error, why);
  assert.equal(doc.status, 'pending');
  const text = await cli(['status', name], { db });
  assert.match(text.stdout, /^s2 .*excluded .*dropped by \S+: disk swap on Friday$/m);
  assert.match(text.stdout, new RegExp(`created +\\S+ by ${actor().replace(/[.]/g, '\\.')}`), 'status says who planned it');

  const run = await cli(['start', name], { db });
  assert.equal(run.code, 0, run.stdout + run.stderr);
  doc = await statusJson(db, name);
  assert.equal(doc.status, 'success', 'excluded + success = success');
  assert.deepEqual(doc.counts, { total: 3, success: 2, excluded: 1 });
  assert.match(doc.reason ?? '', /excluded, never touched: s2/);
  // On the servers: s2 still runs its old commit and was never deployed to; the others were.
  assert.equal(currentCommit(fleet.home('s2')), base, 's2 untouched');
  assert.equal(readDeployCount(fleet.home('s2')), 0);
  for (const s of ['s1', 's3']) {
    assert.equal(currentCommit(fleet.home(s)), target, s);
    assert.equal(readDeployCount(fleet.home(s)), 1, s);
  }
  // Nothing was run on s2 by the rollout: its only journal rows are the plan's probe.
  assert.deepEqual(await withStore(db, async (store) => (await store.getJournal(name, 's2')).map((s) => s.phase)), ['probe']);

  const logs = await cli(['logs', name, '--server', 's2'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /== s2 .* excluded: dropped by \S+: disk swap on Friday/);
  assert.match(logs.stdout, /excluded: dropped by \S+: disk swap on Friday/);
  const logsJson = JSON.parse((await cli(['--json', 'logs', name], { db })).stdout) as { events: Array<{ kind: string; actor: string | null }>; servers: Array<{ name: string; events: Array<{ message: string; actor: string | null }> }> };
  assert.ok(logsJson.events.some((e) => e.kind === 'drop' && e.actor === actor()), 'the drop is journalled with who did it');
  assert.equal(logsJson.servers.find((s) => s.name === 's2')!.events.at(-1)!.actor, actor());

  // A finished update: refused, nothing changed
  const before = await snapshot(db);
  const late = await cli(['drop', name, 's1'], { db });
  assert.equal(late.code, 2, late.stdout + late.stderr);
  assert.match(late.stderr, /cannot drop servers of update u1: it has ended \(success\)/);
  assert.equal(await snapshot(db), before);
});

test('drop while paused (after a test-mode pause): refused for a server already done and an unknown one; the dropped one is never touched by resume', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await planned(fleet, { test_mode: { stop_after: 1 } });
  const base = fleet.upstream.commits.base;
  const canary = await cli(['start', name], { db });
  assert.equal(canary.code, 3, canary.stdout + canary.stderr);
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'success');

  const before = await snapshot(db);
  const done = await cli(['drop', name, 's3', 's1'], { db });
  assert.equal(done.code, 2, done.stdout + done.stderr);
  assert.match(done.stderr, /server s1 of update u1 is success: only a pending server can be dropped; nothing was dropped/);
  assert.equal(await snapshot(db), before, 'all or nothing: s3 was not dropped either');
  const unknown = await cli(['drop', name, 's33'], { db });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /update u1 has no server named "s33"; did you mean "s3"\?/);
  assert.equal(await snapshot(db), before);
  const noUpdate = await cli(['drop', 'u2', 's3'], { db });
  assert.equal(noUpdate.code, 2);
  assert.match(noUpdate.stderr, /no update named "u2".*did you mean "u1"\?/);
  assert.equal(await snapshot(db), before);

  const r = await cli(['drop', name, 's3'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /^dropped from u1: s3$/m);
  assert.match(r.stdout, /continue with: agent-update --db \S+ resume u1/);
  // dropping it again: already excluded
  const again = await cli(['drop', name, 's3'], { db });
  assert.equal(again.code, 2);
  assert.match(again.stderr, /server s3 of update u1 is already excluded \(dropped by \S+\)/);

  const resumed = await cli(['resume', name], { db });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  assert.deepEqual(doc.counts, { total: 3, success: 2, excluded: 1 });
  assert.equal(currentCommit(fleet.home('s3')), base, 's3 untouched');
  assert.equal(readDeployCount(fleet.home('s3')), 0);
  assert.equal(readDeployCount(fleet.home('s1')), 1, 'the canary was not deployed again');
  assert.equal(readDeployCount(fleet.home('s2')), 1);
});

test('drop is refused while the update runs (a server held in verify), and nothing is changed', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await planned(fleet, heldInVerify());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', async (store) => (await store.getServers(name)).some((s) => s.name === 's1' && s.step === 'verify'));
  // The executor keeps writing (health attempts, heartbeats, the lock it takes ahead on s2), so
  // what drop would have written is compared: s2's status and error, and no drop in the journal.
  const dropped = async () =>
    await withStore(db, async (store) => ({
      s2: (await store.getServers(name)).filter((s) => s.name === 's2').map((s) => [s.status, s.error]),
      events: (await store.getEvents(name)).filter((e) => e.kind === 'drop' || /excluded/.test(e.message)).length,
    }));
  const before = await dropped();
  assert.deepEqual(before, { s2: [['pending', null]], events: 0 });
  const r = await cli(['drop', name, 's2'], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stderr, /cannot drop servers of update u1: it is running, and only a pending or paused update's servers can be dropped/);
  assert.match(r.stderr, /pause u1/, 'it says what can be done');
  assert.deepEqual(await dropped(), before);
  openGate(fleet, 'online');
  const done = await run;
  assert.equal(done.exitCode, 0, String(done.stdout) + String(done.stderr));
  const doc = await statusJson(db, name);
  assert.deepEqual(doc.counts, { total: 2, success: 2 }, 's2 was not dropped: it ran');
  assert.equal(readDeployCount(fleet.home('s2')), 1);
});
