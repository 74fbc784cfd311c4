/**
 * Operator controls end to end (issue 3): pause from another process, signals, test mode,
 * split and parallel batches, the executor lease, and takeover after kill -9.
 *
 * Where a test acts while a server is in flight, the server is held there by a gate
 * (test/helpers/gates.ts) that the test opens once it has acted: the same outcome every run,
 * however fast or loaded the machine.
 */
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, readDeployCount, currentCommit } from '../../src/sim/agent.js';
import type { Store } from '../../src/store/port.js';
import { type ServerRecord } from '../../src/model/records.js';
import { byName, cli, cliStatusJson, planned, printed, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate, waitGate } from '../helpers/gates.js';
import { openStore, until, waitForStore as waitFor } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 7 });

const plan = planned;

const serverIs = (name: string, server: string, pred: (s: ServerRecord) => boolean) => async (store: Store) => {
  const s = (await store.getServers(name)).find((x) => x.name === server);
  return s && pred(s) ? s : undefined;
};

/** The first SIGINT was handled: the executor said it pauses after the server in flight. */
const PAUSING = /SIGINT: pausing after the server in flight finishes/;

/** The agent's update commands, then one that waits for the server's `update` gate. */
function updateHeld(): Record<string, unknown> {
  return { agent: { update: [...agentCommands().update, waitGate('update')] } };
}

test('pause from a second process: the server in flight finishes, then the update is paused (exit 3); resume finishes it', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, heldInVerify());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  const p = await cli(['pause', name], { db });
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /pause requested/);
  // pause returned while s1 is still held in verify (its gate is closed): it did not wait for the executor.
  let doc = await statusJson(db, name);
  assert.equal(byName(doc).s1!.status, 'running', 'pause returns at once, before the server in flight finishes');
  assert.equal(doc.pauseRequested, true);
  // who asked is recorded, and named in the pause
  assert.match(doc.pauseRequestedBy ?? '', /^[^@\s]+@\S+$/);
  openGate(fleet, 'online', ['s1']);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  doc = await statusJson(db, name);
  assert.equal(doc.status, 'paused');
  assert.match(String(r.stdout), /pause requested by [^@\s]+@\S+/);
  assert.equal(byName(doc).s1!.status, 'success', 'the server in flight was finished, not abandoned');
  assert.equal(byName(doc).s2!.status, 'pending');
  // Pausing a paused update is harmless.
  assert.equal((await cli(['pause', name], { db })).code, 0);

  openGate(fleet, 'online');
  const resumed = await cli(['resume', name], { db });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  for (const s of doc.servers) assert.equal(readDeployCount(fleet.home(s.name)), 1, `${s.name} deployed once`);
});

test('SIGINT pauses after the server in flight; a second SIGINT stops at once and start takes over', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, heldInVerify());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  const pausing = printed(run, 'stderr', PAUSING);
  run.kill('SIGINT');
  await pausing;
  openGate(fleet, 'online', ['s1']);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stderr));
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'success');

  const again = spawnCli(['resume', name], { db });
  await waitFor(db, 's2 verifying', serverIs(name, 's2', (s) => s.step === 'verify'));
  const pausingAgain = printed(again, 'stderr', PAUSING);
  again.kill('SIGINT');
  await pausingAgain; // two signals sent together may be delivered as one
  again.kill('SIGINT');
  const hard = await again;
  assert.equal(hard.exitCode, 130, String(hard.stderr));
  let doc = await statusJson(db, name);
  assert.equal(doc.status, 'running', 'a hard stop leaves the update running for a takeover');
  assert.equal(byName(doc).s2!.status, 'running');

  // The pause asked by the first Ctrl-C is kept: the takeover finishes s2, then pauses.
  openGate(fleet, 'online', ['s2']);
  const taken = await cli(['start', name], { db });
  assert.equal(taken.code, 3, taken.stdout + taken.stderr);
  assert.match(taken.stdout, /takeover|taking over/);
  doc = await statusJson(db, name);
  assert.equal(byName(doc).s2!.status, 'success');
  assert.equal(byName(doc).s3!.status, 'pending');
  assert.equal(readDeployCount(fleet.home('s2')), 1, 'verified, not redeployed');
  openGate(fleet, 'online', ['s3']);
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
  // the pause reports the 2 servers asked for, not the running total
  assert.match(second.stdout, /test mode: 2 servers finished \(3 in all\)/);
  assert.doesNotMatch(second.stdout, /test mode: 3 servers finished/);

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
  // the suggestion carries the --db in use, so it works when pasted
  assert.match(wrong.stderr, /`agent-update --db \S+plan\.db resume u1`/);
});

test('--parallel with one update: a warning on stderr that it applies to batches, with the split that runs servers in parallel; the update runs as without it', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  const r = await cli(['start', name, '--parallel', '5'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.stderr, /warning: --parallel 5 runs up to 5 of the updates named at once \(the batches of a split\); each update runs its servers one at a time, so u1 runs one server at a time\. To run its servers in parallel: `.*split u1 --batches 5`, then start the batches it names/);
  assert.deepEqual((await statusJson(db, name)).counts, { total: 2, success: 2 });
  // with several updates, or --parallel 1, nothing to say
  const quiet = await cli(['-q', 'start', name, '--parallel', '1'], { db });
  assert.doesNotMatch(quiet.stderr, /--parallel/);
});

test('split 7 servers into 3 balanced batches and run them in parallel', async (t) => {
  const fleet = await fleetFor(t, { servers: 7 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { test_mode: { stop_after: 0 }, ...heldInVerify() });
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
  // status of the update that was split: the whole rollout, its batches and their totals (issue 25)
  const whole = await cliStatusJson(db, name);
  assert.deepEqual(whole.batches!.map((b) => [b.name, b.counts.total]), [['u1', 3], ['u1.2', 2], ['u1.3', 2]]);
  assert.deepEqual(whole.rollout!.counts, { total: 7, pending: 7 });
  assert.equal(whole.counts.total, 3, 'its own counts as before');
  const text = await cli(['status', name], { db });
  assert.match(text.stdout, /^ {2}in all {3}7 servers: 7 pending$/m);
  assert.equal(text.stdout.split('\n').filter((l) => /^s\d +u1(\.[23])? /.test(l)).length, 7, text.stdout);
  // Only a pending update can be split.
  assert.equal((await cli(['split', 'u1.2', '--batches', '2'], { db })).code, 0);

  const batches = [...names, 'u1.2.2'];
  const run = cli(['start', ...batches], { db });
  // The batches really run in parallel: every server is held in verify until the test opens it,
  // so a server of each batch is verifying at the same time only if the batches overlap.
  await waitFor(db, 'a server of every batch verifying at once', async (store) => {
    for (const b of batches) if (!(await store.getServers(b)).some((s) => s.step === 'verify')) return false;
    return true;
  });
  openGate(fleet, 'online');
  const done = await run;
  assert.equal(done.code, 0, done.stdout + done.stderr);
  const after = await Promise.all(batches.map((n) => statusJson(db, n)));
  for (const d of after) assert.equal(d.status, 'success', d.name);
  // Within one batch, strictly one server at a time.
  for (const d of after) {
    for (let i = 1; i < d.servers.length; i++) assert.ok(d.servers[i]!.startedAt! >= d.servers[i - 1]!.endedAt!);
  }
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
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, heldInVerify());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  const second = await cli(['start', name], { db });
  const live = await statusJson(db, name);
  assert.equal(live.executor?.pid, run.pid);
  assert.equal(live.executor?.alive, true);
  assert.equal(second.code, 4, second.stderr);
  assert.match(second.stderr, new RegExp(`pid ${run.pid}`));
  // Refused while s1 is still held in verify: it did not wait for the first executor.
  assert.equal(byName(live).s1!.status, 'running');
  const resumed = await cli(['resume', name], { db });
  assert.equal(resumed.code, 4, 'resume is refused the same way');
  const pausing = printed(run, 'stderr', PAUSING);
  run.kill('SIGINT');
  await pausing;
  openGate(fleet, 'online', ['s1']);
  assert.equal((await run).exitCode, 3);
});

for (const point of ['update', 'verify', 'between servers'] as const) {
  test(`kill -9 of the executor during ${point}: start takes over, nothing finished is redone`, async (t) => {
    const fleet = await fleetFor(t, { servers: 3 });
    if (!fleet) return;
    const { commits } = fleet.upstream;
    // s2 is held where the kill lands; s1 and s3 go through. Between servers: s2 is claimed and
    // held in its re-check (its version_command waits while ~/hold exists, made after the plan's
    // probe), so nothing of the update has run on it. (The next server's connection is opened
    // ahead of its turn, so holding sshd's accept no longer stops s2 before its first command.)
    const gate = point === 'update' ? 'update' : 'online';
    const heldRecheck = { agent: { version_command: `while [ -e ~/hold ]; do sleep 0.05; done; ${agentCommands().version_command}` } };
    const config = point === 'update' ? updateHeld() : point === 'verify' ? heldInVerify() : heldRecheck;
    const { db, name } = await plan(fleet, config);
    openGate(fleet, gate, ['s1', 's3']);
    const holdFile = join(fleet.home('s2'), 'hold');
    if (point === 'between servers') writeFileSync(holdFile, '');
    const run = spawnCli(['start', name], { db });
    if (point === 'update') {
      // s2's update commands have all run (the commit landed, the deploy is logged) but the last, held.
      await until('s2 held at the end of its update', () => readDeployCount(fleet.home('s2')) === 1);
      assert.equal((await statusJson(db, name)).servers[1]!.step, 'update');
    } else if (point === 'verify') {
      await waitFor(db, 's2 verifying', serverIs(name, 's2', (s) => s.step === 'verify'));
    } else {
      await waitFor(db, 's2 in its re-check', async (store) => (await store.getJournal(name, 's2')).some((x) => x.phase === 'recheck' && x.endedAt === null));
    }
    run.kill('SIGKILL');
    await run;
    rmSync(holdFile, { force: true });
    const mid = await statusJson(db, name);
    assert.equal(mid.status, 'running', 'a killed executor leaves the update running');
    assert.equal(mid.executor?.alive, false, 'status shows the executor is gone');
    assert.equal(byName(mid).s2!.status, 'running');
    if (point === 'between servers') assert.equal(byName(mid).s2!.fromCommit, null, 'nothing was run on s2');

    openGate(fleet, gate, ['s2']);
    const taken = await cli(['start', name], { db });
    assert.equal(taken.code, 0, taken.stdout + taken.stderr);
    const doc = await statusJson(db, name);
    assert.equal(doc.status, 'success');
    for (const s of doc.servers) assert.equal(currentCommit(fleet.home(s.name)), commits.good, s.name);
    assert.equal(readDeployCount(fleet.home('s1')), 1, 's1 had finished and was not touched again');
    assert.equal(readDeployCount(fleet.home('s3')), 1);
    const expected = { update: [2, 'killed during its update step: every update command runs again'], verify: [1, 'already at the target: verified, not redeployed'], 'between servers': [1, 'nothing had run: run once, from the start'] } as const;
    assert.equal(readDeployCount(fleet.home('s2')), expected[point][0], expected[point][1]);
  });
}

test('pause of an update whose executor died with a server in flight records the pause: start finishes that server, then pauses', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, updateHeld());
  openGate(fleet, 'update', ['s1', 's3']);
  const run = spawnCli(['start', name], { db });
  await until('s2 held at the end of its update', () => readDeployCount(fleet.home('s2')) === 1);
  run.kill('SIGKILL');
  await run;
  const p = await cli(['pause', name], { db });
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /pause requested: no process is executing u1 now; `agent-update --db \S+ start u1` takes it over, finishes the server in flight and pauses/);
  let doc = await statusJson(db, name);
  assert.equal(doc.status, 'running', 'a server is in flight: not paused on the spot');
  assert.equal(doc.pauseRequested, true);
  assert.equal(byName(doc).s2!.status, 'running');

  openGate(fleet, 'update', ['s2']);
  const taken = await cli(['start', name], { db });
  assert.equal(taken.code, 3, taken.stdout + taken.stderr);
  doc = await statusJson(db, name);
  assert.equal(doc.status, 'paused');
  assert.deepEqual(doc.counts, { total: 3, success: 2, pending: 1 });
  assert.equal(readDeployCount(fleet.home('s3')), 0, 'the pause held before s3');
  const r = await cli(['resume', name], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(['s1', 's2', 's3'].map((s) => readDeployCount(fleet.home(s))), [1, 2, 1]);
});

test('pause of an update whose executor died between servers pauses it at once; resume finishes it', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  // The executor goes from one server's last write to the next server's first without waiting on
  // anything, so no kill from outside lands in between every time. Write the state such a kill
  // leaves instead: s1 finished by a real run, the update running under the lease of a process
  // that no longer exists, no server in flight.
  assert.equal((await cli(['start', name, '--stop-after', '1'], { db })).code, 3);
  const store = openStore(db);
  try {
    await store.tx(async (t) => {
      await t.setUpdateStatus(name, 'running', { reason: null, stopAtWorked: null });
      // A pid above Linux's pid_max (2^22): never a live process.
      const r = await t.acquireLease(name, { token: 'killed-executor', pid: 2_147_483_646, host: hostname(), pidStart: null }, () => true);
      assert.ok(r.ok);
    });
  } finally {
    await store.close();
  }
  const mid = await statusJson(db, name);
  assert.equal(mid.status, 'running');
  assert.equal(mid.executor?.alive, false);
  assert.deepEqual(mid.counts, { total: 3, success: 1, pending: 2 });

  const p = await cli(['pause', name], { db });
  assert.equal(p.code, 0, p.stderr);
  assert.match(p.stdout, /u1 paused \(no process was executing it and no server was in flight\); continue with: agent-update --db \S+ resume u1/);
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
  // Asking again for the state it is in is not an error (as pause of a paused update): exit 0, nothing changes.
  const again = await cli(['cancel', name], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout, /u1 is already cancelled/);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'cancelled');
  // who cancelled it is recorded (user@host), once
  const store = openStore(db);
  try {
    const cancels = (await store.getEvents(name)).filter((e) => e.kind === 'cancel');
    assert.equal(cancels.length, 1, 'the repeated cancel writes nothing');
    assert.match(cancels[0]!.actor ?? '', /^[^@\s]+@\S+$/);
  } finally {
    await store.close();
  }
});

test('cancel of a finished update is refused (exit 2): it is not the state asked for', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db, name } = await plan(fleet);
  assert.equal((await cli(['start', name], { db })).code, 0);
  const c = await cli(['cancel', name], { db });
  assert.equal(c.code, 2, c.stdout + c.stderr);
  assert.match(c.stderr, /cannot|success/);
  assert.equal((await statusJson(db, name)).status, 'success');
});

test('Ctrl-C with --parallel 1: the batches still waiting their turn do not start afterwards', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, heldInVerify());
  assert.equal((await cli(['split', name, '--batches', '2'], { db })).code, 0);
  const run = spawnCli(['start', name, `${name}.2`, '--parallel', '1'], { db });
  await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
  const pausing = printed(run, 'stderr', PAUSING);
  run.kill('SIGINT');
  await pausing;
  openGate(fleet, 'online');
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  assert.equal((await statusJson(db, name)).status, 'paused');
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'success');
  const second = await statusJson(db, `${name}.2`);
  assert.equal(second.status, 'pending', 'the queued batch was not started after the Ctrl-C');
  for (const s of ['s3', 's4']) assert.equal(readDeployCount(fleet.home(s)), 0, `${s} untouched`);
});
