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
import { agentCommands, currentCommit } from '../../src/sim/agent.js';
import { knownHostsAs, type Fleet } from '../fleet/fleet.js';
import { byName, cli, planned, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { copyDatabase, openStore, until, waitForStore, withStore } from '../helpers/db.js';
import { openGate, waitGate } from '../helpers/gates.js';
import { startProxy } from '../helpers/proxy.js';

const fleetFor = sharedFleet({ servers: 2 });

/**
 * A command that writes `begin TAG PID` and `end TAG PID` to the server's ~/cmdlog around
 * `body`, and `overlap` first when the one before it is still running (its pid in ~/running,
 * alive and not a zombie: where pid 1 reaps no orphans, a killed command stays one).
 */
function logged(tag: string, body: string): string {
  return (
    "p=$(cat ~/running 2>/dev/null); z=$(awk '{ print $3 }' /proc/\"$p\"/stat 2>/dev/null); " +
    'if [ -n "$p" ] && [ -n "$z" ] && [ "$z" != Z ]; then echo "overlap $$ with $p ($z)" >> ~/cmdlog; fi; ' +
    `echo $$ > ~/running; echo "begin ${tag} $$" >> ~/cmdlog; ${body}; s=$?; echo "end ${tag} $$" >> ~/cmdlog; rm -f ~/running; exit $s`
  );
}

function cmdlog(fleet: Fleet, server: string): string[] {
  const file = join(fleet.home(server), 'cmdlog');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n') : [];
}

/**
 * The server's log shows its commands one after another: no command began while an earlier one
 * was still running (its `overlap` check: the earlier pid alive), and `begins` began in all (one
 * killed before its end has no `end` line).
 */
function assertOneAtATime(fleet: Fleet, server: string, begins: number): void {
  const log = cmdlog(fleet, server);
  assert.deepEqual(log.filter((l) => l.startsWith('overlap')), [], `${server}: ${log.join(' | ')}`);
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
    const behind = openStore(db, { now: () => new Date(Date.now() - 33_000) });
    try {
      await behind.heartbeat('u', (await behind.getUpdate('u')).lease!.token);
    } finally {
      await behind.close();
    }
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
  const knownHosts = knownHostsAs(fleet, join(fleet.root, 'known_hosts.alias'), [s1, { host: alias, port: s1.port }]);
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

/** A plan of update u, a copy of its database made before it starts, and `start u` from the original, in its update on s1. */
async function startWithACopy(fleet: Fleet) {
  const { db } = await planned(fleet, gatedUpdate(), 'u');
  const copy = join(fleet.root, 'copy.db');
  await copyDatabase(db, copy);
  const first = spawnCli(['start', 'u'], { db });
  await beganOn(fleet, 's1');
  return { db, copy, first };
}

test('a copied plan database on this host: the copy\'s executor finds the lock of the live one and leaves the server alone', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { copy, first } = await startWithACopy(fleet);
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
  const { db, copy, first } = await startWithACopy(fleet);
  // The copy runs on another machine: nothing there can be looked at, so the lock of this
  // update there is taken over (as a heartbeat's wrong guess would) and fencing must make it harmless.
  const lockFile = join(fleet.home('s1'), LOCK_FILE);
  writeFileSync(lockFile, readFileSync(lockFile, 'utf8').replace(/^host=.*$/m, 'host=another-machine'));
  const second = spawnCli(['start', 'u'], { db: copy });
  await waitForStore(copy, 'the copy to wait for the command in flight', async (s) => (await s.getEvents('u')).find((e) => e.kind === 'in-flight' && /waiting up to/.test(e.message)));
  assert.deepEqual(cmdlog(fleet, 's1').filter((l) => l.startsWith('begin')).length, 1, 'nothing started beside it');
  openGate(fleet, 'update', ['s1']);
  const [r1, r2] = await Promise.all([first, second]);
  assert.equal(r2.exitCode, 0, String(r2.stdout) + String(r2.stderr));
  assert.equal(r1.exitCode, 4, String(r1.stdout) + String(r1.stderr));
  assert.match(String(r1.stderr), /lost s1: its agent-update lock no longer holds this executor's fencing token .*nothing more is run there/);
  await withStore(db, async (s) => {
    assert.ok((await s.getEvents('u')).some((e) => e.kind === 'fenced'), 'journalled in the first database');
    const fencedStep = (await s.getJournal('u', 's1')).find((st) => /not run: the agent-update lock/.test(st.error ?? ''));
    assert.ok(fencedStep, 'the fenced command is journalled as not run');
  });
  assert.equal(byName(await statusJson(copy, 'u')).s1!.status, 'success');
  assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
  assertOneAtATime(fleet, 's1', 2);
});

for (const deadMan of ['default', 'off'] as const) {
  test(`a silent partition mid-command (packets dropped, nothing closed), dead-man timer ${deadMan}: the reconnect never re-runs the command beside the first`, async (t) => {
    const fleet = await fleetFor(t, { servers: 1 });
    if (!fleet) return;
    const s1 = fleet.server('s1');
    const proxy = await startProxy({ host: s1.host, port: s1.port });
    t.after(() => proxy.close());
    const knownHosts = knownHostsAs(fleet, join(fleet.root, 'known_hosts.proxy'), [{ host: '127.0.0.1', port: proxy.port }]);
    const { update } = agentCommands();
    const { db } = await planned(
      fleet,
      {
        servers: [{ name: 's1', host: '127.0.0.1', port: proxy.port, type: 'app' }],
        ssh: {
          ...fleet.sshConfigYaml(),
          known_hosts: knownHosts,
          keepalive_interval: '1s',
          reconnect_for: '60s',
          // with the dead-man timer off, only the command's own timeout ends the first run
          // on the server: the re-run must wait for it
          ...(deadMan === 'off' ? { dead_man_timeout: 0, command_timeout: '8s' } : { command_timeout: '30s' }),
        },
        // the first run sleeps; a re-run (the file is there by then) goes straight on
        agent: { update: [logged('update', '[ -e ~/second ] || { touch ~/second; sleep 60; }'), ...update] },
      },
      'u',
    );
    const run = spawnCli(['start', 'u'], { db });
    await beganOn(fleet, 's1');
    proxy.cutOff(); // the connection open now goes silent; a new one goes through
    const r = await run;
    assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
    await withStore(db, async (s) => {
      const events = (await s.getEvents('u')).filter((e) => ['connection', 'in-flight'].includes(e.kind));
      t.diagnostic(events.map((e) => `${e.kind}: ${e.message}`).join(' | '));
      assert.ok(events.some((e) => e.kind === 'connection' && /connection lost/.test(e.message)), 'it did reconnect');
      if (deadMan === 'off') {
        assert.ok(events.some((e) => e.kind === 'in-flight' && /this executor's earlier try of a command, cut off by a lost connection .* waiting up to/.test(e.message)), 'the re-run waited');
        assert.ok(events.some((e) => e.kind === 'in-flight' && /ended$/.test(e.message)), 'for its end');
      }
    });
    assertOneAtATime(fleet, 's1', 2);
    assert.equal(currentCommit(fleet.home('s1')), fleet.upstream.commits.good);
  });
}
