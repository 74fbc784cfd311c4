/**
 * Never twice at once on one server (issue 20), end to end on the real OpenSSH fleet: each way
 * an outside review made one update command run twice at once (a frozen executor, one machine
 * under two names, a prepare's lock, a copied plan database, a silent partition), each read from
 * the server's own log of its commands' begin and end, which the command itself writes: nothing
 * of the tool's own decides whether two overlapped.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { LOCK_FILE } from '../../src/rollout/remote-lock.js';
import { Store } from '../../src/store/store.js';
import { agentCommands, currentCommit } from '../../src/sim/agent.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, planned, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { until, waitForStore, withStore } from '../helpers/db.js';
import { openGate, waitGate } from '../helpers/gates.js';

const fleetFor = sharedFleet({ servers: 2 });

/**
 * A command that writes `begin TAG PID` and `end TAG PID` to the server's ~/cmdlog around
 * `body`, and `overlap` first when the one before it is still running (its pid in ~/running).
 */
function logged(tag: string, body: string): string {
  return (
    'if [ -f ~/running ] && kill -0 "$(cat ~/running)" 2>/dev/null; then echo "overlap $$ with $(cat ~/running)" >> ~/cmdlog; fi; ' +
    `echo $$ > ~/running; echo "begin ${tag} $$" >> ~/cmdlog; ${body}; s=$?; echo "end ${tag} $$" >> ~/cmdlog; rm -f ~/running; exit $s`
  );
}

function cmdlog(fleet: Fleet, server: string): string[] {
  const file = join(fleet.home(server), 'cmdlog');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

/** The server's log shows its commands one after another: every begin's end before the next begin. */
function assertOneAtATime(fleet: Fleet, server: string, begins: number): void {
  const log = cmdlog(fleet, server);
  assert.deepEqual(log.filter((l) => l.startsWith('overlap')), [], `${server}: ${log.join(' | ')}`);
  let open: string | null = null;
  for (const l of log) {
    const [what, , pid] = l.split(' ');
    if (what === 'begin') {
      assert.equal(open, null, `${server}: a command began while ${open} ran: ${log.join(' | ')}`);
      open = pid!;
    } else if (what === 'end') {
      assert.equal(pid, open, `${server}: ${log.join(' | ')}`);
      open = null;
    }
  }
  assert.equal(log.filter((l) => l.startsWith('begin')).length, begins, `${server}: ${log.join(' | ')}`);
}

/** A plan whose first update command logs itself and waits on the `update` gate of its server. */
function gatedUpdate(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { update } = agentCommands();
  return { agent: { update: [logged('update', waitGate('update')), ...update] }, execution: { busy_wait: 0 }, ...extra };
}

async function beganOn(fleet: Fleet, server: string, tag = 'update'): Promise<void> {
  await until(`${server} to begin ${tag}`, () => cmdlog(fleet, server).some((l) => l.startsWith(`begin ${tag}`)));
}

/** `sqlite3 db '.backup to'`: a consistent copy, its db_id included, as a backup restored would be. */
async function copyDb(db: string, to: string): Promise<void> {
  const store = new Store(db);
  try {
    await store.db.backup(to);
  } finally {
    store.close();
  }
}

test('a frozen executor (SIGSTOP) is not taken over while its process lives, whatever its heartbeat: exit 4, "stopped?"; continued, it finishes alone', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const config = fleet.writeConfig({ name: 'u', ...gatedUpdate() });
  const db = join(fleet.root, 'plan.db');
  assert.equal((await cli(['plan', '-c', config], { db })).code, 0);
  const first = spawnCli(['start', 'u'], { db });
  await beganOn(fleet, 's1');
  process.kill(first.pid!, 'SIGSTOP');
  try {
    // as 33 s later: its heartbeat is older than the 30 s after which a lease elsewhere is judged dead
    withStore(db, (s) => s.db.prepare("UPDATE updates SET lease_heartbeat = ? WHERE name = 'u'").run(new Date(Date.now() - 33_000).toISOString()));
    const second = await cli(['start', 'u'], { db });
    assert.equal(second.code, 4, second.stdout + second.stderr);
    assert.match(second.stderr, new RegExp(`update u is being executed by pid ${first.pid} .*not beaten for 3\\ds although its process is alive: stopped\\? .*kill -CONT ${first.pid}`));
    // auto (from cron) judges it the same way: executing, nothing touched
    const auto = await cli(['auto', '-c', config], { db });
    assert.equal(auto.code, 0, auto.stdout + auto.stderr);
    assert.match(auto.stdout + auto.stderr, /already running: u /);
  } finally {
    process.kill(first.pid!, 'SIGCONT');
  }
  openGate(fleet, 'update', ['s1']);
  const r = await first;
  assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
  assertOneAtATime(fleet, 's1', 1);
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
});

test('one machine under two names in one database: the second update finds the first one\'s lock and waits; it never clears it as stale', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const s1 = fleet.server('s1');
  // the same account as an IPv4-mapped IPv6 address: another host string, the same sshd and home
  const alias = `::ffff:${s1.host}`;
  const knownHosts = join(fleet.root, 'known_hosts.alias');
  const line = readFileSync(fleet.knownHosts as unknown as string, 'utf8').split('\n').find((l) => l.startsWith(`[${s1.host}]:`))!;
  writeFileSync(knownHosts, `${line}\n${line.replace(`[${s1.host}]`, `[${alias}]`)}\n`);
  const ssh = { ...fleet.sshConfigYaml(), known_hosts: knownHosts };
  const db = join(fleet.root, 'plan.db');
  await planned(fleet, { ...gatedUpdate(), ssh }, 'u1', db);
  await planned(fleet, { ...gatedUpdate(), ssh, servers: [{ name: 'web-1', host: alias, type: 'app' }] }, 'u2', db);
  const first = spawnCli(['start', 'u1'], { db });
  await beganOn(fleet, 's1');
  const second = await cli(['start', 'u2'], { db });
  assert.equal(second.code, 3, second.stdout + second.stderr);
  assert.match(second.stdout, /web-1 \(.*\) is locked by update u1 /);
  assert.equal(byName(await statusJson(db, 'u2'))['web-1']!.status, 'pending', 'not touched');
  openGate(fleet, 'update', ['s1']);
  assert.equal((await first).exitCode, 0);
  const resumed = await cli(['resume', 'u2'], { db });
  assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
  assert.equal(byName(await statusJson(db, 'u2'))['web-1']!.status, 'skipped', 'found at the target u1 put there');
  assertOneAtATime(fleet, 's1', 1);
});

test('a lock agent.prepare took on a pending server is not cleared as stale by another update of the database', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  // u1: s1 waits in its update while s2 is prepared ahead, its prepare waiting on a gate too
  await planned(fleet, { ...gatedUpdate(), agent: { ...(gatedUpdate().agent as object), prepare: [logged('prepare', waitGate('prepare'))] } }, 'u1', db);
  await planned(fleet, { ...gatedUpdate(), servers: [{ name: 's2', host: fleet.server('s2').host, type: 'db' }] }, 'u2', db);
  const first = spawnCli(['start', 'u1'], { db });
  await beganOn(fleet, 's2', 'prepare');
  const second = await cli(['start', 'u2'], { db });
  assert.equal(second.code, 3, second.stdout + second.stderr);
  assert.match(second.stdout, /s2 \(.*\) is locked by update u1 /);
  assert.deepEqual(cmdlog(fleet, 's2').filter((l) => l.startsWith('begin update')), [], 'u2 ran nothing on s2');
  openGate(fleet, 'prepare', ['s2']);
  openGate(fleet, 'update', ['s1', 's2']);
  assert.equal((await first).exitCode, 0);
  assert.equal(byName(await statusJson(db, 'u1')).s2!.status, 'success');
  assertOneAtATime(fleet, 's2', 2);
});

test('a copied plan database on this host: the copy\'s executor finds the lock of the live one and leaves the server alone', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db } = await planned(fleet, gatedUpdate(), 'u');
  const copy = join(fleet.root, 'copy.db');
  await copyDb(db, copy);
  const first = spawnCli(['start', 'u'], { db });
  await beganOn(fleet, 's1');
  const second = await cli(['start', 'u'], { db: copy });
  assert.equal(second.code, 3, second.stdout + second.stderr);
  assert.match(second.stdout, /s1 \(.*\) is locked by update u .*another executor of this same update \(a copy of this plan database\?\), still alive/);
  openGate(fleet, 'update', ['s1']);
  assert.equal((await first).exitCode, 0);
  assertOneAtATime(fleet, 's1', 1);
});

test('a copied plan database on another host: the copy takes the server over, waits for the command in flight, and the first executor\'s next command is fenced', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { db } = await planned(fleet, gatedUpdate(), 'u');
  const copy = join(fleet.root, 'copy.db');
  await copyDb(db, copy);
  const first = spawnCli(['start', 'u'], { db });
  await beganOn(fleet, 's1');
  // The copy runs on another machine: nothing there can be looked at, so the lock of this
  // update there is taken over (as a heartbeat's wrong guess would) and fencing must make it harmless.
  const lockFile = join(fleet.home('s1'), LOCK_FILE);
  writeFileSync(lockFile, readFileSync(lockFile, 'utf8').replace(/^host=.*$/m, 'host=another-machine'));
  const second = spawnCli(['start', 'u'], { db: copy });
  await waitForStore(copy, 'the copy to wait for the command in flight', (s) => s.getEvents('u').find((e) => e.kind === 'in-flight' && /waiting up to/.test(e.message)));
  assert.deepEqual(cmdlog(fleet, 's1').filter((l) => l.startsWith('begin')).length, 1, 'nothing started beside it');
  openGate(fleet, 'update', ['s1']);
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(r2.exitCode, 0, String(r2.stdout) + String(r2.stderr));
  assert.equal(r1.exitCode, 4, String(r1.stdout) + String(r1.stderr));
  assert.match(String(r1.stderr), /lost s1: its agent-update lock no longer holds this executor's fencing token .*nothing more is run there/);
  withStore(db, (s) => {
    assert.ok(s.getEvents('u').some((e) => e.kind === 'fenced'), 'journalled in the first database');
    const fencedStep = s.getSteps('u', 's1').find((st) => /not run: the agent-update lock/.test(st.error ?? ''));
    assert.ok(fencedStep, 'the fenced command is journalled as not run');
  });
  assert.equal(byName(await statusJson(copy, 'u')).s1!.status, 'success');
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
  assertOneAtATime(fleet, 's1', 2);
});
