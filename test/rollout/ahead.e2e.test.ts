/**
 * Working ahead of each server's turn (issue 13, items 3 and 4), end to end on the real sshd
 * fleet: the next server's connection opened early (and nothing run on it before its turn), and
 * agent.prepare run on the next servers while the current one updates, under our lock.
 *
 * Order is proven with gates (a server held in its update or verify until the test opens it),
 * the journal's step ids and files the commands leave on the servers; never with wall time.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit } from '../../src/sim/agent.js';
import { LOCK_FILE, ownerText } from '../../src/rollout/remote-lock.js';
import { type JournalEntry } from '../../src/model/records.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { heldInVerify, openGate, waitGate } from '../helpers/gates.js';
import { openStore, waitForStore as waitFor } from '../helpers/db.js';

const fleetFor = sharedFleet({ servers: 3 });

async function plan(fleet: Fleet, overrides: Record<string, unknown> = {}, name = 'u1'): Promise<{ db: string; name: string }> {
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name, ...overrides });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stderr);
  return { db, name };
}

async function journal(db: string, name: string, server?: string): Promise<JournalEntry[]> {
  const store = openStore(db);
  try {
    return await store.getJournal(name, server);
  } finally {
    await store.close();
  }
}

async function events(db: string, name: string, server: string): Promise<string[]> {
  const store = openStore(db);
  try {
    return (await store.getEvents(name)).filter((e) => e.serverName === server).map((e) => `${e.kind}: ${e.message}`);
  } finally {
    await store.close();
  }
}

const PREPARE = 'echo prepared {commit} >> ~/prepare.log';
/** The agent's update commands, then one that waits for the server's `update` gate. */
const updateHeld = () => [...agentCommands().update, waitGate('update')];
const lockOn = (fleet: Fleet, server: string) => join(fleet.home(server), LOCK_FILE);

test('agent.prepare runs on the next server while the current one updates, journalled in phase prepare; the first server is not prepared', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await plan(fleet, { agent: { prepare: [PREPARE], update: updateHeld() } });
  openGate(fleet, 'update', ['s3']);
  const run = spawnCli(['start', name], { db });
  // s1 is held at the end of its update step (its gate is closed) while s2 is prepared; then s2
  // is held the same way while s3 is prepared
  await waitFor(db, 's2 prepared', () => existsSync(join(fleet.home('s2'), 'prepare.log')));
  await waitFor(db, 'the prepare on s2 recorded', async (s) => (await s.getJournal(name, 's2')).some((x) => x.phase === 'prepare' && x.endedAt !== null && x.command.startsWith('echo prepared')));
  const mid = byName(await statusJson(db, name));
  assert.equal(mid.s1!.status, 'running');
  assert.equal(mid.s1!.step, 'update', 's1 is still in its update step');
  assert.equal(mid.s2!.status, 'pending', 'a prepare leaves the server pending');
  assert.equal(existsSync(join(fleet.home('s3'), 'prepare.log')), false, 'prepare_ahead 1: only the next server');
  assert.ok(existsSync(lockOn(fleet, 's2')), 'the prepare runs under our lock on s2');
  openGate(fleet, 'update', ['s1']);
  await waitFor(db, 'the prepare on s3 recorded', async (s) => (await s.getJournal(name, 's3')).some((x) => x.phase === 'prepare' && x.endedAt !== null && x.command.startsWith('echo prepared')));
  openGate(fleet, 'update', ['s2']);
  const r = await run;
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  for (const s of ['s1', 's2', 's3']) {
    assert.equal(currentCommit(fleet.home(s)), commits.good, s);
    assert.equal(existsSync(lockOn(fleet, s)), false, `${s}: no lock left`);
  }
  assert.equal(readFileSync(join(fleet.home('s2'), 'prepare.log'), 'utf8'), `prepared ${commits.good}\n`, '{commit} is the target');
  assert.equal(existsSync(join(fleet.home('s1'), 'prepare.log')), false, 'the first server has nothing ahead of it');
  assert.deepEqual((await journal(db, name, 's1')).filter((s) => s.phase === 'prepare'), []);
  // the journal's order: s2's prepare (lock, command) before s1 restarted; s3's before s2 restarted
  const firstOf = async (server: string, phase: string) => (await journal(db, name, server)).find((s) => s.phase === phase)!.id;
  for (const [prepared, current] of [['s2', 's1'], ['s3', 's2']] as const) {
    const steps = (await journal(db, name, prepared)).filter((s) => s.phase === 'prepare');
    assert.deepEqual(steps.map((s) => [s.command, s.exitCode]), [['(take the agent-update lock)', 0], [`echo prepared ${commits.good} >> ~/prepare.log`, 0]], prepared);
    assert.ok(steps[1]!.id < await firstOf(current, 'restart'), `${prepared} was prepared while ${current} updated`);
    assert.ok(steps[1]!.id < await firstOf(prepared, 'recheck'), `${prepared}: prepared before its turn`);
    assert.ok((await events(db, name, prepared)).includes('prepare: prepared ahead of its turn'));
  }
  const logs = await cli(['logs', name, '--server', 's2'], { db });
  assert.match(logs.stdout, /\[prepare\] \$ echo prepared [0-9a-f]{40} >> ~\/prepare\.log/);
});

test('a failing prepare is journalled, its later commands not run, and the server is updated normally', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { agent: { prepare: ['echo no network >&2; exit 3', 'touch ~/second-prepare'] } });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  assert.equal(byName(doc).s2!.status, 'success', 'updated normally');
  const prepared = (await journal(db, name, 's2')).filter((s) => s.phase === 'prepare');
  assert.deepEqual(prepared.map((s) => [s.command, s.exitCode]), [['(take the agent-update lock)', 0], ['echo no network >&2; exit 3', 3]]);
  assert.match(prepared[1]!.stderr ?? '', /no network/);
  assert.equal(existsSync(join(fleet.home('s2'), 'second-prepare')), false, 'the first failure ends the prepare');
  assert.ok((await events(db, name, 's2')).some((e) => /^prepare: prepare failed \(exited 3: no network\); the server is updated normally on its turn$/.test(e)));
  assert.equal(existsSync(lockOn(fleet, 's2')), false);
});

test('execution.prepare_ahead: 0 runs no prepare at all', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { agent: { prepare: [PREPARE] }, execution: { prepare_ahead: 0 } });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal((await statusJson(db, name)).status, 'success');
  assert.deepEqual((await journal(db, name)).filter((s) => s.phase === 'prepare'), []);
  for (const s of ['s1', 's2', 's3']) assert.equal(existsSync(join(fleet.home(s), 'prepare.log')), false, s);
});

test('the next server is connected while the current one verifies, and nothing runs on it before the current one is finished', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  // Every command the rollout sends appends to ~/commands.log on the server that runs it.
  const logged = (c: string) => `echo x >> ~/commands.log; ${c}`;
  const a = agentCommands();
  const held = heldInVerify() as { agent: { health: { command: string } } };
  const { db, name } = await plan(fleet, {
    ...held,
    agent: {
      version_command: logged(a.version_command),
      update: a.update.map(logged),
      restart: { web: logged(a.restart.web!) },
      health: { ...held.agent.health, command: logged(held.agent.health.command) },
    },
  });
  // the plan's probe ran the version command: the log starts after it
  for (const s of ['s1', 's2']) rmSync(join(fleet.home(s), 'commands.log'), { force: true });
  openGate(fleet, 'online', ['s2']);
  let hold: { release(): void } | null = null;
  t.after(() => hold?.release());
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 verifying', async (s) => (await s.getServers(name)).find((x) => x.name === 's1' && x.step === 'verify'));
  await waitFor(db, 's2 connected ahead', async () => (await events(db, name, 's2')).includes('connection: connected ahead of its turn (nothing run)'));
  assert.equal(existsSync(join(fleet.home('s2'), 'commands.log')), false, 'connected, but no command ran on s2');
  assert.deepEqual((await journal(db, name, 's2')).filter((s) => s.phase !== 'probe'), []);
  // From now on the sshd greets no new connection: s2 can only go on over the one opened ahead.
  hold = fleet.holdNewConnections();
  openGate(fleet, 'online', ['s1']);
  const r = await run;
  hold.release();
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success', 's2 was updated and verified over the connection opened ahead');
  const s1 = (await journal(db, name, 's1')).filter((s) => s.phase !== 'probe');
  const s2 = (await journal(db, name, 's2')).filter((s) => s.phase !== 'probe');
  assert.ok(Math.min(...s2.map((s) => s.id)) > Math.max(...s1.map((s) => s.id)), 's2\'s first command comes after s1\'s last (its lock released)');
  assert.ok(s2.every((s) => s.startedAt >= byName(doc).s1!.endedAt!), 'and after s1 ended');
  assert.ok(existsSync(join(fleet.home('s2'), 'commands.log')));
});

test('kill -9 during a prepare on the next server: start takes over, every server ends success, no lock is left', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { agent: { prepare: [waitGate('prepare'), 'touch ~/prepared'], update: updateHeld() } });
  openGate(fleet, 'update', ['s2', 's3']);
  openGate(fleet, 'prepare', ['s3']);
  const run = spawnCli(['start', name], { db });
  // s1 held in its update, s2 held inside its prepare
  await waitFor(db, 's2 in its prepare', async (s) => (await s.getJournal(name, 's2')).some((x) => x.phase === 'prepare' && x.command.includes('gates/prepare') && x.endedAt === null));
  run.kill('SIGKILL');
  await run;
  const mid = byName(await statusJson(db, name));
  assert.equal(mid.s1!.status, 'running');
  assert.equal(mid.s2!.status, 'pending', 'a server being prepared is still pending');
  assert.ok(existsSync(lockOn(fleet, 's2')), 'the prepare had taken the lock on s2');

  openGate(fleet, 'update', ['s1']);
  openGate(fleet, 'prepare', ['s2']);
  const taken = await cli(['start', name], { db });
  assert.equal(taken.code, 0, taken.stdout + taken.stderr);
  const doc = await statusJson(db, name);
  assert.equal(doc.status, 'success');
  for (const s of doc.servers) {
    assert.equal(s.status, 'success', s.name);
    assert.equal(existsSync(lockOn(fleet, s.name)), false, `${s.name}: no lock left`);
  }
  const shown = await cli(['unlock', 's1', 's2', 's3'], { db });
  assert.equal(shown.code, 0, shown.stdout + shown.stderr);
  assert.equal((shown.stdout.match(/there is no agent-update lock on it/g) ?? []).length, 3, shown.stdout);
  const store = openStore(db);
  try {
    assert.deepEqual((await store.getServers(name)).filter((s) => s.lockHeld).map((s) => s.name), [], 'no lock flag left in the database');
  } finally {
    await store.close();
  }
});

test('kill -9 during a prepare, then cancel: cancel says the prepared server may carry our lock, and the unlock it prints clears it', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { db, name } = await plan(fleet, { agent: { prepare: [waitGate('prepare')], update: updateHeld() } });
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's2 in its prepare', async (s) => (await s.getJournal(name, 's2')).some((x) => x.phase === 'prepare' && x.command.includes('gates/prepare') && x.endedAt === null));
  run.kill('SIGKILL');
  await run;
  assert.ok(existsSync(lockOn(fleet, 's2')));
  const c = await cli(['cancel', name], { db });
  assert.equal(c.code, 0, c.stdout + c.stderr);
  const hint = /s2 may still carry this update's lock \(it was prepared ahead of its turn\): (agent-update --db \S+ unlock s2 --update u1 --yes)/.exec(c.stdout);
  assert.ok(hint, c.stdout);
  const u = await cli(hint[1]!.split(' ').slice(1));
  assert.equal(u.code, 0, u.stdout + u.stderr);
  assert.equal(existsSync(lockOn(fleet, 's2')), false, 'the lock is cleared');
});

test('a pause with a prepared-ahead server releases the lock its prepare took', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  // (agent merged by hand: a spread of heldInVerify() would lose its health command to `agent`)
  const { db, name } = await plan(fleet, { agent: { ...(heldInVerify().agent as object), prepare: ['touch ~/prepared'] } });
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's2 prepared', async () => (await events(db, name, 's2')).includes('prepare: prepared ahead of its turn'));
  assert.ok(existsSync(lockOn(fleet, 's2')));
  const p = await cli(['pause', name], { db });
  assert.equal(p.code, 0, p.stderr);
  openGate(fleet, 'online', ['s1']);
  const r = await run;
  assert.equal(r.exitCode, 3, String(r.stdout) + String(r.stderr));
  const doc = byName(await statusJson(db, name));
  assert.equal(doc.s1!.status, 'success');
  assert.equal(doc.s2!.status, 'pending');
  assert.equal(existsSync(lockOn(fleet, 's2')), false, 'released at the pause');
  assert.ok((await journal(db, name, 's2')).some((s) => s.phase === 'unlock' && s.exitCode === 0));
  const store = openStore(db);
  try {
    assert.equal((await store.getServers(name)).find((s) => s.name === 's2')!.lockHeld, false);
  } finally {
    await store.close();
  }
  assert.equal(currentCommit(fleet.home('s2')), fleet.upstream.commits.base, 'nothing but the prepare ran on s2');
});

test('a server locked by another database is not prepared: its lock is left as it was', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const foreign = `${ownerText({ update: 'theirs', db: 'f'.repeat(32), token: 'their-token', host: 'elsewhere', pid: 1, pidStart: null, since: '2026-01-01T00:00:00.000Z' })}\n`;
  writeFileSync(lockOn(fleet, 's2'), foreign);
  const { db, name } = await plan(fleet, { agent: { prepare: ['touch ~/prepared'] }, execution: { busy_wait: 0 } });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 3, r.stdout + r.stderr);
  assert.equal(existsSync(join(fleet.home('s2'), 'prepared')), false, 'no prepare command ran');
  assert.equal(readFileSync(lockOn(fleet, 's2'), 'utf8'), foreign);
  const prepared = (await journal(db, name, 's2')).filter((s) => s.phase === 'prepare');
  assert.deepEqual(prepared.map((s) => [s.command, s.exitCode]), [['(take the agent-update lock)', 75]]);
  assert.ok((await events(db, name, 's2')).some((e) => /^prepare: prepare skipped: locked by update theirs/.test(e)));
});
