/**
 * `history` and the audit trail end to end (issue 15, item 7) on a real OpenSSH fleet: three
 * updates move the servers base → good → (broken, rolled back on s1) → good2, the last split in
 * two batches; history lists each server's commits in order with who ran each update. Who
 * planned, started, paused, resumed and cancelled an update is recorded and shown.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { currentCommit } from '../../src/sim/agent.js';
import type { HistoryJson } from '../../src/rollout/history.js';
import { actor } from '../../src/util/actor.js';
import { cli, planned, sharedFleet, spawnCli } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { contents, waitForStore, withStore } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 3 });

const short = (c: string) => c.slice(0, 12);

test('history across three updates: each server commit by commit, a rollback and the batches of a split included, oldest first', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { base, good, good2, broken } = fleet.upstream.commits;
  const db = join(fleet.root, 'plan.db');

  // 1: base → good everywhere
  await planned(fleet, {}, 'u1', db);
  assert.equal((await cli(['start', 'u1'], { db })).code, 0);
  // 2: good → broken: s1 never comes online and is rolled back to good; the update stops there
  await planned(fleet, { source: { branch: 'broken' } }, 'u2', db);
  const u2 = await cli(['start', 'u2'], { db });
  assert.equal(u2.code, 1, u2.stdout + u2.stderr);
  // 3: good → good2, split in two batches run in parallel
  await planned(fleet, { source: { branch: 'good2' } }, 'u3', db);
  assert.equal((await cli(['split', 'u3', '--batches', '2'], { db })).code, 0);
  const u3 = await cli(['start', 'u3', 'u3.2'], { db });
  assert.equal(u3.code, 0, u3.stdout + u3.stderr);
  for (const s of ['s1', 's2', 's3']) assert.equal(currentCommit(fleet.home(s)), good2, s);

  const r = await cli(['--json', 'history'], { db });
  assert.equal(r.code, 0, r.stderr);
  const h = JSON.parse(r.stdout) as HistoryJson & { db: string };
  assert.equal(h.db, db);
  assert.deepEqual(h.servers.map((s) => s.name), ['s1', 's2', 's3']);
  const me = actor();
  const of = (name: string) => h.servers.find((s) => s.name === name)!;
  const steps = (name: string) => of(name).entries.map((e) => [e.update, e.outcome, e.from, e.target, e.to]);
  assert.deepEqual(steps('s1'), [
    ['u1', 'success', base, good, good],
    ['u2', 'rolled-back', good, broken, good],
    ['u3', 'success', good, good2, good2],
  ]);
  // u2 stopped at s1: s2 and s3 stayed pending in it, which is no change of theirs. s3 went to the batch u3.2.
  assert.deepEqual(steps('s2'), [['u1', 'success', base, good, good], ['u3', 'success', good, good2, good2]]);
  assert.deepEqual(steps('s3'), [['u1', 'success', base, good, good], ['u3.2', 'success', good, good2, good2]]);
  assert.equal(of('s3').entries[1]!.batchOf, 'u3');
  for (const s of h.servers) {
    const spec = fleet.server(s.name);
    assert.deepEqual(s.accounts, [`${spec.user}@${spec.host}:${spec.port}`]);
    for (const e of s.entries) {
      assert.equal(e.by, me, `${s.name} ${e.update}: who ran it`);
      assert.equal(e.plannedBy, me);
    }
    const times = s.entries.map((e) => e.at);
    assert.deepEqual([...times].sort(), times, `${s.name}: oldest first`);
  }
  assert.match(of('s1').entries[1]!.error ?? '', /./, 'the rolled-back entry says why');

  // Text: a table per server, short commits
  const text = await cli(['history'], { db });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /^s1 \(\S+@127\.\S+:\d+\)$/m);
  const s1Block = text.stdout.split(/\n\n/).find((b) => b.startsWith('s1 '))!;
  const lines = s1Block.split('\n').slice(2);
  assert.equal(lines.length, 3, s1Block);
  assert.match(lines[0]!, new RegExp(`u1 +${short(base)} → ${short(good)} +success +${me.replace(/\./g, '\\.')}`));
  assert.match(lines[1]!, new RegExp(`u2 +${short(good)} → ${short(broken)} \\(rolled back to ${short(good)}\\) +rolled-back`));
  assert.match(lines[2]!, new RegExp(`u3 +${short(good)} → ${short(good2)} +success`));
  assert.match(text.stdout, /u3\.2 \(batch of u3\) +\S+ → \S+ +success/);

  // --server: one server; by account too; an unknown one is exit 2 with the closest name
  const one = JSON.parse((await cli(['--json', 'history', '--server', 's3'], { db })).stdout) as HistoryJson;
  assert.deepEqual(one.servers.map((s) => s.name), ['s3']);
  assert.deepEqual(one.servers[0]!.entries, of('s3').entries);
  const account = of('s2').accounts[0]!;
  const byAccount = JSON.parse((await cli(['--json', 'history', '--server', account], { db })).stdout) as HistoryJson;
  assert.deepEqual(byAccount.servers.map((s) => s.name), ['s2']);
  const unknown = await cli(['history', '--server', 's4'], { db });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no server named "s4" in any update of .*; did you mean "s1", "s2" or "s3"\?/);

  // read-only: nothing written, and a missing database is not created
  const before = await withStore(db, async (store) => await contents(store));
  await cli(['history'], { db });
  assert.equal(await withStore(db, async (store) => await contents(store)), before);
  const missing = join(fleet.root, 'nope.db');
  const none = await cli(['history'], { db: missing });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no plan database at/);
  assert.equal(existsSync(missing), false);
});

test('the audit trail: who planned, started, paused, resumed and cancelled is recorded and shown in status and logs', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const me = actor();
  const { db, name } = await planned(fleet, heldInVerify());
  assert.equal(await withStore(db, async (store) => (await store.getUpdate(name)).createdBy), me, 'plan records who planned it');

  const run = spawnCli(['start', name], { db });
  await waitForStore(db, 's1 verifying', async (store) => (await store.getServers(name)).some((s) => s.name === 's1' && s.step === 'verify'));
  assert.equal((await cli(['pause', name], { db })).code, 0);
  openGate(fleet, 'online', ['s1']);
  assert.equal((await run).exitCode, 3);
  openGate(fleet, 'online', ['s2']);
  assert.equal((await cli(['resume', name, '--stop-after', '1'], { db })).code, 3);
  assert.equal((await cli(['cancel', name], { db })).code, 0);

  const events = await withStore(db, async (store) => await store.getEvents(name));
  for (const kind of ['start', 'pause-requested', 'resume', 'cancel']) {
    const e = events.filter((x) => x.kind === kind);
    assert.equal(e.length, 1, `one ${kind} event`);
    assert.equal(e[0]!.actor, me, `${kind}: who did it`);
  }
  const order = events.filter((e) => e.actor !== null).map((e) => e.kind);
  assert.deepEqual(order, ['start', 'pause-requested', 'resume', 'cancel']);

  const status = await cli(['status', name], { db });
  assert.match(status.stdout, new RegExp(`created +\\S+ by ${me.replace(/\./g, '\\.')}`));
  assert.match(status.stdout, new RegExp(`reason +cancelled by ${me.replace(/\./g, '\\.')}`));
  const logs = await cli(['logs', name], { db });
  for (const what of ['start by', 'pause requested by', 'resume by', 'cancelled by']) assert.match(logs.stdout, new RegExp(`${what} ${me.replace(/\./g, '\\.')}`));
  const logsJson = JSON.parse((await cli(['--json', 'logs', name], { db })).stdout) as { events: Array<{ kind: string; actor: string | null }> };
  assert.deepEqual(logsJson.events.filter((e) => e.actor !== null).map((e) => [e.kind, e.actor]), order.map((k) => [k, me]));

  // history names who ran each server's update: s1 by the start, s2 by the resume (both this user)
  const h = JSON.parse((await cli(['--json', 'history'], { db })).stdout) as HistoryJson;
  assert.deepEqual(h.servers.map((s) => [s.name, s.entries.map((e) => [e.outcome, e.by])]), [['s1', [['success', me]]], ['s2', [['success', me]]]]);
});
