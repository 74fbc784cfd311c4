/**
 * One server, one update at a time (issue 10), end to end against the real OpenSSH fleet: two
 * updates over the same servers in one process, in two processes and in two databases; the lock
 * a kill -9 leaves on a server, taken over by its own update and refused for another; `unlock`;
 * the way out of an update whose server in flight never comes back.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit, readDeploys } from '../../src/sim/agent.js';
import { LOCK_FILE } from '../../src/rollout/remote-lock.js';
import type { Store } from '../../src/store/port.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, fleetFor, spawnCli, statusJson } from '../helpers/cli.js';
import { gateOpen, heldInVerify, openGate } from '../helpers/gates.js';
import { openStore, waitForStore as waitFor, withSqliteFile } from '../helpers/db.js';

/** Each server comes online a little after its restart, so two executors would have time to collide. */
const slowish = { source: { branch: 'slow' }, agent: { health: { timeout: '30s', interval: '100ms' } } };

async function plan(fleet: Fleet, db: string, name: string, overrides: Record<string, unknown> = {}) {
  const config = fleet.writeConfig({ name, ...slowish, ...overrides });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return r;
}

/**
 * What ran on each server, from every database's journal, in time order: the update of each
 * command that touched the agent. Two updates interleaving on one server is the bug.
 */
type Work = { update: string; at: string; end: string; command: string; phase: string; outcome: string };
async function workOnServers(dbs: string[]): Promise<Map<string, Work[]>> {
  const out = new Map<string, Work[]>();
  for (const db of dbs) {
    const store = openStore(db);
    try {
      for (const u of await store.listUpdates()) {
        for (const st of await store.getJournal(u.name)) {
          if (st.phase === 'probe' || /agent-update-lock: held/.test(st.stdout ?? '')) continue; // kept off, nothing ran
          const s = (await store.getServers(u.name)).find((x) => x.id === st.serverId)!;
          const key = `${s.host}:${s.port}`;
          const list = out.get(key) ?? [];
          const outcome = `${st.exitCode ?? st.error ?? 'no end'}${st.stdout ? ` out=${JSON.stringify(st.stdout.slice(-120))}` : ''}`;
          list.push({ update: `${db}#${u.name}`, at: st.startedAt, end: st.endedAt ?? st.startedAt, command: st.command, phase: st.phase, outcome });
          out.set(key, list);
        }
      }
    } finally {
      await store.close();
    }
  }
  for (const list of out.values()) list.sort((a, b) => a.at.localeCompare(b.at));
  return out;
}

/**
 * Every server's commands come in one block per update, never A, B, A; and the first command of
 * an update that changes the agent (update, restart, rollback) starts only after the previous
 * update's last command on that server ended. The release of the lock (`unlock`) is left out:
 * it is the last thing an executor does, after recording the outcome, and the next update may
 * already be at the door then (its lock script finds the lock and waits, or runs just after it).
 */
async function assertNoInterleaving(dbs: string[]): Promise<void> {
  for (const [server, all] of await workOnServers(dbs)) {
    const list = all.filter((c) => c.phase !== 'unlock');
    const blocks: string[] = [];
    for (const c of list) if (blocks[blocks.length - 1] !== c.update) blocks.push(c.update);
    assert.equal(new Set(blocks).size, blocks.length, `${server}: updates interleaved: ${all.map((c) => `${c.at} ${c.update} [${c.phase}] ${c.command} → ${c.outcome}`).join(' | ')}`);
    for (let i = 1; i < list.length; i++) {
      const prev = list[i - 1]!;
      if (list[i]!.update === prev.update) continue;
      const firstChange = list.slice(i).find((c) => c.update === list[i]!.update && ['update', 'restart', 'rollback'].includes(c.phase));
      if (firstChange) assert.ok(firstChange.at >= prev.end, `${server}: ${firstChange.update} changed the agent before ${prev.update}'s last command ended`);
    }
  }
}

test('two updates of one database over the same servers, in one process: one at a time on each server, both end success', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 700 } });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  await plan(fleet, db, 'a');
  const second = await plan(fleet, db, 'b');
  // plan says so, naming the other update
  assert.match(second.stderr, /warning: 3 of this plan's servers are also in update a \(pending\), not finished: s1, s2, s3/);
  const asJson = await cli(['plan', '-c', fleet.writeConfig({ name: 'c', ...slowish }), '--json'], { db });
  const doc = JSON.parse(asJson.stdout) as { overlaps: Array<{ update: string; servers: string[] }>; warnings: string[] };
  assert.deepEqual(doc.overlaps.map((o) => [o.update, o.servers.length]), [['a', 3], ['b', 3]]);
  assert.equal((await cli(['cancel', 'c'], { db })).code, 0);

  const r = await cli(['start', 'a', 'b'], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  const [a, b] = [await statusJson(db, 'a'), await statusJson(db, 'b')];
  assert.equal(a.status, 'success');
  assert.equal(b.status, 'success');
  for (const s of fleet.servers.slice(0, 3)) {
    const outcomes = [byName(a)[s.name]!.status, byName(b)[s.name]!.status].sort();
    assert.deepEqual(outcomes, ['skipped', 'success'], `${s.name}: deployed by one, found at the target by the other`);
    assert.equal(readDeploys(fleet.home(s.name)).length, 1, `${s.name} deployed once`);
    assert.equal(existsSync(join(fleet.home(s.name), LOCK_FILE)), false, `${s.name}: no lock left behind`);
  }
  assert.match(r.stdout, /waiting for s1: server s1 \(.*\) is in flight in update (a|b)/);
  await assertNoInterleaving([db]);
});

test('two processes on one database, and two databases: each server worked on by one executor at a time', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, upstream: { slowDelayMs: 700 } });
  if (!fleet) return;
  // Two processes, one database.
  const db = join(fleet.root, 'one.db');
  await plan(fleet, db, 'p1');
  await plan(fleet, db, 'p2', { source: { branch: 'master' } });
  const [r1, r2] = await Promise.all([spawnCli(['start', 'p1'], { db }), spawnCli(['start', 'p2'], { db })]);
  assert.equal(r1.exitCode, 0, String(r1.stdout) + String(r1.stderr));
  assert.equal(r2.exitCode, 0, String(r2.stdout) + String(r2.stderr));
  await assertNoInterleaving([db]);
  // Both targets differ, so each update deployed every server: whichever went last is what runs.
  for (const s of fleet.servers.slice(0, 3)) assert.equal(readDeploys(fleet.home(s.name)).length, 2, s.name);

  // Two databases (two operators): only the lock on the servers keeps them apart. Their journals
  // cannot show the order on a server to the millisecond (a step's row is written before its
  // command reaches the server), so each update also writes its name into ~/order.log on the
  // server, from its first update command and from every health check: on each server the names
  // must come in one block per update. Whoever takes s1 first is held in its verify (gate
  // `online`, closed) until the other has been refused the lock on s1, so they always meet.
  const dbA = join(fleet.root, 'alice.db');
  const dbB = join(fleet.root, 'bob.db');
  const tagged = (name: string, branch: string) => ({
    source: { branch },
    agent: {
      update: [`echo ${name} >> ~/order.log`, ...agentCommands().update],
      health: { command: `echo ${name} >> ~/order.log; ${gateOpen('online')} && ~/agent/bin/health`, timeout: '30s', interval: '50ms' },
    },
  });
  // targets that differ from each other and from where the servers are now: both deploy everywhere
  await plan(fleet, dbA, 'alice', tagged('alice', 'good2'));
  await plan(fleet, dbB, 'bob', tagged('bob', 'base'));
  const runs = [spawnCli(['start', 'alice'], { db: dbA }), spawnCli(['start', 'bob'], { db: dbB })];
  const refusedOnS1 = (db: string, name: string) => async (store: Store) =>
    (await store.getJournal(name, 's1')).some((x) => x.phase === 'recheck' && /agent-update-lock: held/.test(x.stdout ?? ''));
  await Promise.race([waitFor(dbA, 'alice refused on s1', refusedOnS1(dbA, 'alice')), waitFor(dbB, 'bob refused on s1', refusedOnS1(dbB, 'bob'))]);
  openGate(fleet, 'online');
  const [ra, rb] = await Promise.all(runs);
  assert.equal(ra!.exitCode, 0, String(ra!.stdout) + String(ra!.stderr));
  assert.equal(rb!.exitCode, 0, String(rb!.stdout) + String(rb!.stderr));
  for (const s of fleet.servers.slice(0, 3)) {
    const order: string[] = readFileSync(join(fleet.home(s.name), 'order.log'), 'utf8').trim().split('\n');
    const blocks: string[] = order.filter((n: string, i: number) => i === 0 || order[i - 1] !== n);
    assert.equal(blocks.length, 2, `${s.name}: one block per update, never A, B, A: ${order.join(' ')}`);
    assert.deepEqual([...blocks].sort(), ['alice', 'bob'], s.name);
  }
  const waited = String(ra!.stdout) + String(rb!.stdout);
  assert.match(waited, /is locked by update (alice|bob) \(database .*\.db\), pid \d+ on .* since .*, from another plan database/);
  for (const s of fleet.servers.slice(0, 3)) {
    assert.equal(readDeploys(fleet.home(s.name)).length, 4, s.name);
    assert.equal(existsSync(join(fleet.home(s.name), LOCK_FILE)), false, `${s.name}: no lock left behind`);
  }
});

test('kill -9 leaves the lock on the server in flight: its own update takes it over, another is refused naming it; unlock clears it', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, upstream: { slowDelayMs: 4000 } });
  if (!fleet) return;
  const db1 = join(fleet.root, 'first.db');
  const db2 = join(fleet.root, 'second.db');
  await plan(fleet, db1, 'u1');
  const run = spawnCli(['start', 'u1'], { db: db1 });
  await waitFor(db1, 's1 verifying', async (s) => (await s.getServers('u1')).find((x) => x.name === 's1' && x.step === 'verify'));
  const pid = run.pid!;
  run.kill('SIGKILL');
  await run;
  const lockFile = join(fleet.home('s1'), LOCK_FILE);
  const lock = readFileSync(lockFile, 'utf8');
  assert.match(lock, new RegExp(`^agent-update-lock v2\nupdate=u1\ndb=[0-9a-f]{32}\ntoken=[0-9a-f-]{36}\nhost=.+\npid=${pid}\npid_start=\\d+\nsince=.+\ndb_path=${db1.replace(/[.]/g, '\\.')}\n$`));

  // Another update, of another database, is refused with who holds it and since when (busy_wait 0: at once).
  await plan(fleet, db2, 'u2', { execution: { busy_wait: 0 } });
  const refused = await cli(['start', 'u2'], { db: db2 });
  assert.equal(refused.code, 3, refused.stdout + refused.stderr + JSON.stringify(await statusJson(db2, 'u2')));
  assert.match(refused.stdout, new RegExp(`s1 \\(.*\\) is locked by update u1 \\(database ${db1.replace(/[.]/g, '\\.')}\\), pid ${pid} on .* since `));
  assert.match(refused.stdout, new RegExp(`agent-update --db ${db2.replace(/[.]/g, '\\.')} unlock s1 --yes`));
  const u2 = await statusJson(db2, 'u2');
  assert.equal(u2.status, 'paused');
  assert.equal(byName(u2).s1!.status, 'pending', 'not touched');
  assert.equal(readFileSync(lockFile, 'utf8'), lock, 'the lock is as it was');

  // unlock without --yes shows it and changes nothing (exit 2).
  const shown = await cli(['unlock', 's1'], { db: db2 });
  assert.equal(shown.code, 2, shown.stdout + shown.stderr);
  assert.match(shown.stdout, /s1 \(.*\): locked by update u1 .*; nothing this database knows of is working on it\nnothing was changed; to clear it: agent-update --db \S+ unlock s1 --yes/);
  assert.equal(readFileSync(lockFile, 'utf8'), lock);
  // From the database whose update left it in flight, unlock refuses: a takeover is the way.
  const notStale = await cli(['unlock', 's1', '--yes'], { db: db1 });
  assert.equal(notStale.code, 2);
  assert.match(notStale.stdout, /not stale: update u1 left it in flight \(step verify\) when its executor died: `agent-update --db \S+ start u1` takes it over/);
  assert.equal(readFileSync(lockFile, 'utf8'), lock);

  // Its own update takes it over: the lock holds the dead executor's token, not the new one's, so
  // it is judged (its process is gone) and taken; the server finished, the lock released.
  const taken = await cli(['start', 'u1'], { db: db1 });
  assert.equal(taken.code, 0, taken.stdout + taken.stderr);
  assert.equal(existsSync(lockFile), false, 'released after the takeover');
  const steps = openStore(db1);
  try {
    const takeover = (await steps.getJournal('u1', 's1')).filter((s) => s.phase === 'takeover');
    assert.match(takeover[0]!.stdout!, /agent-update-lock: held/);
    assert.match(takeover[1]!.stdout!, /agent-update-lock: cleared-stale/);
  } finally {
    await steps.close();
  }
  const resumed = await cli(['resume', 'u2'], { db: db2 });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.equal(byName(await statusJson(db2, 'u2')).s1!.status, 'skipped', 'found at the target its owner put there');
});

test('unlock --yes clears a dead executor\'s lock after checking, journalled; refused while the executor lives', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db1 = join(fleet.root, 'first.db');
  const db2 = join(fleet.root, 'second.db');
  // u1 stays in verify until it is killed (its gate never opens), however long the unlocks below take
  await plan(fleet, db1, 'u1', heldInVerify());
  await plan(fleet, db2, 'u2', { execution: { busy_wait: 0 } });
  const run = spawnCli(['start', 'u1'], { db: db1 });
  await waitFor(db1, 's1 verifying', async (s) => (await s.getServers('u1')).find((x) => x.name === 's1' && x.step === 'verify'));
  const lockFile = join(fleet.home('s1'), LOCK_FILE);
  // While it lives: refused from its own database and from another one.
  const own = await cli(['unlock', 's1', '--yes'], { db: db1 });
  assert.equal(own.code, 2, own.stdout + own.stderr);
  assert.match(own.stdout, /not stale: update u1 is working on it now \(pid \d+ on /);
  const other = await cli(['unlock', 's1', '--yes'], { db: db2 });
  assert.equal(other.code, 2, other.stdout + other.stderr);
  assert.match(other.stdout, new RegExp(`not stale: the process that took it, pid ${run.pid} on this host, is still running`));
  assert.ok(existsSync(lockFile));
  run.kill('SIGKILL');
  await run;
  // The pid the lock names is alive again, but as another process (its start time differs: the
  // pid was reused): that process never took the lock, so it does not keep it.
  const text = readFileSync(lockFile, 'utf8');
  assert.match(text, /^pid_start=\d+$/m, 'the lock names its process by pid and start time');
  writeFileSync(lockFile, text.replace(/^pid=\d+$/m, `pid=${process.pid}`).replace(/^pid_start=\d+$/m, 'pid_start=1'));

  const cleared = await cli(['unlock', 's1', '--yes'], { db: db2 });
  assert.equal(cleared.code, 0, cleared.stdout + cleared.stderr);
  assert.match(cleared.stdout, /s1 \(.*\): cleared the lock of update u1/);
  assert.equal(existsSync(lockFile), false);
  const logs = await cli(['logs', 'u2', '--json'], { db: db2 });
  const journal = JSON.parse(logs.stdout) as { servers: Array<{ steps: Array<{ phase: string; command: string }>; events: Array<{ kind: string; message: string }> }> };
  assert.ok(journal.servers[0]!.steps.some((s) => s.phase === 'unlock' && /clear the agent-update lock of update u1/.test(s.command)));
  assert.ok(journal.servers[0]!.events.some((e) => e.kind === 'unlock' && /cleared the lock of update u1/.test(e.message)));
  const again = await cli(['unlock', 's1', '--yes'], { db: db2 });
  assert.equal(again.code, 0);
  assert.match(again.stdout, /there is no agent-update lock on it/);
  // unknown server: exit 2, nothing run
  const unknown = await cli(['unlock', 'nope', '--yes'], { db: db2 });
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no server named "nope"/);
});

test('a server in flight that never comes back after a kill -9: start says how out, cancel leaves it fatal for a person', async (t) => {
  const fleet = await fleetFor(t, { servers: 2, upstream: { slowDelayMs: 4000 } });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  await plan(fleet, db, 'u1', { ssh: { ...fleet.sshConfigYaml(), connect_timeout: '3s' } });
  const run = spawnCli(['start', 'u1'], { db });
  await waitFor(db, 's1 verifying', async (s) => (await s.getServers('u1')).find((x) => x.name === 's1' && x.step === 'verify'));
  run.kill('SIGKILL');
  await run;
  // The server is gone for good: nobody listens where it was.
  // (no command moves a planned server: its row is changed in the file)
  withSqliteFile(db, (d) => d.prepare("UPDATE servers SET host = '127.255.255.254' WHERE name = 's1'").run());
  const stuck = await cli(['start', 'u1'], { db });
  assert.equal(stuck.code, 1, stuck.stdout + stuck.stderr);
  assert.match(stuck.stderr, /cannot reach s1 to re-check it after a crash .* `agent-update --db \S+ cancel u1` \(the server is then marked fatal, for a person\)/);
  const cancelled = await cli(['cancel', 'u1'], { db });
  assert.equal(cancelled.code, 0, cancelled.stdout + cancelled.stderr);
  assert.match(cancelled.stdout, /u1 cancelled; nothing more will run\n {2}s1 \(.*\) is fatal, for a person: it was in flight \(step verify\)/);
  const doc = await statusJson(db, 'u1');
  assert.equal(doc.status, 'cancelled');
  assert.equal(byName(doc).s1!.status, 'fatal');
  assert.equal(byName(doc).s2!.status, 'pending');
  assert.equal(currentCommit(fleet.home('s2')), fleet.upstream.commits.base, 's2 untouched');
});
