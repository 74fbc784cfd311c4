/**
 * A plan shared by several operators and runners (issue 23, 3): the rollout guarantees that
 * matter for sharing, each test body run on both plan stores (test/helpers/stores.ts): a SQLite
 * file and a PostgreSQL schema. Every command is the real CLI in a process of its own, as two
 * operators or runners would type them: the lease (a second start is exit 4 naming the holder),
 * a takeover after kill -9, a pause from a second process, split batches run in parallel by two
 * processes, two `auto` runs at once.
 *
 * On PostgreSQL the URL carries a password the server checks: no output of any command (stdout
 * and stderr), no journal (`logs`), no lock file on a server may contain it.
 *
 * A server is held where the test acts by a gate (test/helpers/gates.ts), never by a sleep.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import type { ServerRecord } from '../../src/model/records.js';
import { LOCK_FILE, parseOwner } from '../../src/rollout/remote-lock.js';
import { currentCommit, readDeployCount } from '../../src/sim/agent.js';
import type { Store } from '../../src/store/port.js';
import { isPostgresUrl, parsePgUrl } from '../../src/store/postgres/url.js';
import type { Fleet } from '../fleet/fleet.js';
import { byName, cli, sharedFleet, spawnCli, type CliResult } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { statusAt, storeTargets, waitForStoreAt as waitFor, withStoreAt, type StoreTarget } from '../helpers/stores.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 6 });
const stores = storeTargets();

const serverIs = (name: string, server: string, pred: (s: ServerRecord) => boolean) => async (store: Store) => {
  const s = (await store.getServers(name)).find((x) => x.name === server);
  return s && pred(s) ? s : undefined;
};

/** What a finished CLI process wrote, whether it came from cli() or spawnCli(). */
type Ran = CliResult | { exitCode?: number; stdout: unknown; stderr: unknown };
const textOf = (r: Ran) => `${String(r.stdout)}\n${String(r.stderr)}`;

/** Asserts no output of `runs` contains the store's password; returns the first. */
function noSecret<R extends Ran>(store: StoreTarget, ...runs: [R, ...Ran[]]): R {
  if (store.secret !== null) {
    for (const r of runs) assert.ok(!textOf(r).includes(store.secret), `the password was printed:\n${textOf(r)}`);
  }
  return runs[0];
}

/** `cli()` on `db`, its output checked for the password. */
async function run(store: StoreTarget, db: string, args: string[]): Promise<CliResult> {
  return noSecret(store, await cli(args, { db }));
}

/** `plan -c` of a config of `fleet` (its defaults, then `overrides`) into `db`. */
async function plan(store: StoreTarget, fleet: Fleet, db: string, overrides: Record<string, unknown> = {}, name = 'u1'): Promise<string> {
  const r = await run(store, db, ['plan', '-c', fleet.writeConfig({ name, ...overrides })]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return name;
}

/** How the plan database is named where a person reads it (the lock file, messages): the path, or the URL without its password. */
function shownDb(db: string): string {
  return isPostgresUrl(db) ? parsePgUrl(db).location : db;
}

/** The lock file on `server`: it names this database without its password. */
function assertLockNamesDb(store: StoreTarget, fleet: Fleet, server: string, db: string): void {
  const text = readFileSync(join(fleet.home(server), LOCK_FILE), 'utf8');
  if (store.secret !== null) assert.ok(!text.includes(store.secret), `the password is in the lock file:\n${text}`);
  assert.equal(parseOwner(text).dbPath, shownDb(db), text);
}

/** `logs NAME` and `logs NAME --json`: the journal, which never holds the password. */
async function assertLogsClean(store: StoreTarget, db: string, name: string): Promise<void> {
  for (const args of [['logs', name], ['logs', name, '--json']]) {
    const r = await run(store, db, args);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /s1/);
  }
}

for (const store of stores) {
  test(`[${store.kind}] lease: a second start of a running update, from another process, is exit 4 naming the holder`, { skip: store.skip }, async (t) => {
    const fleet = await fleetFor(t, { servers: 2 });
    if (!fleet) return;
    const db = await store.db(fleet.root);
    const name = await plan(store, fleet, db, heldInVerify());
    const first = spawnCli(['start', name], { db });
    await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
    const second = await run(store, db, ['start', name]);
    assert.equal(second.code, 4, second.stdout + second.stderr);
    assert.match(second.stderr, new RegExp(`pid ${first.pid}`));
    const live = await statusAt(db, name);
    assert.equal(live.executor?.pid, first.pid);
    assert.equal(live.executor?.alive, true);
    assert.equal(byName(live).s1!.status, 'running', 'refused at once, while s1 is still held in verify');
    assert.equal((await run(store, db, ['resume', name])).code, 4, 'resume is refused the same way');
    assert.equal((await run(store, db, ['--json', 'start', name])).code, 4);
    // The lock on the server names the database, as a person may read it.
    assertLockNamesDb(store, fleet, 's1', db);

    openGate(fleet, 'online');
    const r = noSecret(store, await first);
    assert.equal(r.exitCode, 0, textOf(r));
    assert.equal((await statusAt(db, name)).status, 'success');
    for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 1, `${s} deployed once`);
    await assertLogsClean(store, db, name);
  });

  test(`[${store.kind}] takeover: kill -9 of the executor mid-verify, start from a new process finishes; nothing finished is touched again`, { skip: store.skip }, async (t) => {
    const fleet = await fleetFor(t, { servers: 3 });
    if (!fleet) return;
    const { commits } = fleet.upstream;
    const db = await store.db(fleet.root);
    const name = await plan(store, fleet, db, heldInVerify());
    openGate(fleet, 'online', ['s1', 's3']);
    const first = spawnCli(['start', name], { db });
    await waitFor(db, 's2 verifying', serverIs(name, 's2', (s) => s.step === 'verify'));
    first.kill('SIGKILL');
    noSecret(store, await first);
    const mid = await statusAt(db, name);
    assert.equal(mid.status, 'running', 'a killed executor leaves the update running');
    assert.equal(mid.executor?.alive, false, 'status shows the executor is gone');
    assert.equal(byName(mid).s1!.status, 'success');
    assert.equal(byName(mid).s2!.status, 'running');
    // kill -9 left its lock on s2, naming the database without the password
    assertLockNamesDb(store, fleet, 's2', db);
    const shown = await run(store, db, ['status', name]);
    assert.equal(shown.code, 0, shown.stderr);

    openGate(fleet, 'online', ['s2']);
    const takenAt = new Date().toISOString();
    const taken = await run(store, db, ['start', name]);
    assert.equal(taken.code, 0, taken.stdout + taken.stderr);
    assert.match(taken.stdout, /takeover|taking over/);
    const doc = await statusAt(db, name);
    assert.equal(doc.status, 'success');
    for (const s of doc.servers) assert.equal(currentCommit(fleet.home(s.name)), commits.good, s.name);
    assert.equal(readDeployCount(fleet.home('s1')), 1, 's1 had finished and was not deployed again');
    assert.equal(readDeployCount(fleet.home('s2')), 1, 'already at the target: verified, not redeployed');
    assert.equal(readDeployCount(fleet.home('s3')), 1);
    const s1Later = await withStoreAt(db, async (s) => (await s.getJournal(name, 's1')).filter((st) => st.startedAt >= takenAt));
    assert.deepEqual(s1Later.map((st) => `${st.phase}: ${st.command}`), [], 's1 had finished: the takeover ran nothing on it');
    await assertLogsClean(store, db, name);
  });

  test(`[${store.kind}] pause from a second process stops the executor at its next server (exit 3); resume finishes`, { skip: store.skip }, async (t) => {
    const fleet = await fleetFor(t, { servers: 3 });
    if (!fleet) return;
    const db = await store.db(fleet.root);
    const name = await plan(store, fleet, db, heldInVerify());
    const first = spawnCli(['start', name], { db });
    await waitFor(db, 's1 verifying', serverIs(name, 's1', (s) => s.step === 'verify'));
    const p = await run(store, db, ['pause', name]);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /pause requested/);
    let doc = await statusAt(db, name);
    assert.equal(doc.pauseRequested, true);
    assert.equal(byName(doc).s1!.status, 'running', 'pause returns at once, before the server in flight finishes');

    openGate(fleet, 'online', ['s1']);
    const r = noSecret(store, await first);
    assert.equal(r.exitCode, 3, textOf(r));
    assert.match(String(r.stdout), /pause requested by [^@\s]+@\S+/);
    doc = await statusAt(db, name);
    assert.equal(doc.status, 'paused');
    assert.equal(byName(doc).s1!.status, 'success', 'the server in flight was finished, not abandoned');
    assert.equal(byName(doc).s2!.status, 'pending', 'stopped at its next server');
    assert.equal(byName(doc).s3!.status, 'pending');

    openGate(fleet, 'online');
    const resumed = await run(store, db, ['resume', name]);
    assert.equal(resumed.code, 0, resumed.stdout + resumed.stderr);
    assert.equal((await statusAt(db, name)).status, 'success');
    for (const s of ['s1', 's2', 's3']) assert.equal(readDeployCount(fleet.home(s)), 1, `${s} deployed once`);
  });

  test(`[${store.kind}] split in 3 batches, run by two processes (one with --parallel 2): all three at once, each ends success`, { skip: store.skip }, async (t) => {
    const fleet = await fleetFor(t, { servers: 6 });
    if (!fleet) return;
    const db = await store.db(fleet.root);
    const name = await plan(store, fleet, db, heldInVerify());
    const r = await run(store, db, ['split', name, '--batches', '3', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const batches = (JSON.parse(r.stdout) as { updates: string[] }).updates;
    assert.deepEqual(batches, ['u1', 'u1.2', 'u1.3']);

    const a = spawnCli(['start', 'u1', 'u1.2', '--parallel', '2'], { db });
    const b = spawnCli(['start', 'u1.3'], { db });
    // Every server is held in verify until the test opens it: a server of each batch verifying
    // at the same time means the three batches really run at once, in two processes.
    await waitFor(db, 'a server of every batch verifying at once', async (s) => {
      for (const n of batches) if (!(await s.getServers(n)).some((x) => x.step === 'verify')) return false;
      return true;
    });
    const executors = await Promise.all(batches.map(async (n) => (await statusAt(db, n)).executor?.pid));
    assert.deepEqual(executors, [a.pid, a.pid, b.pid]);
    openGate(fleet, 'online');
    const [ra, rb] = [noSecret(store, await a), noSecret(store, await b)];
    assert.equal(ra.exitCode, 0, textOf(ra));
    assert.equal(rb.exitCode, 0, textOf(rb));
    const docs = await Promise.all(batches.map((n) => statusAt(db, n)));
    for (const d of docs) {
      assert.equal(d.status, 'success', d.name);
      assert.equal(d.servers.length, 2, d.name);
      // within one batch, strictly one server at a time
      for (let i = 1; i < d.servers.length; i++) assert.ok(d.servers[i]!.startedAt! >= d.servers[i - 1]!.endedAt!, d.name);
    }
    for (const s of fleet.servers) assert.equal(readDeployCount(fleet.home(s.name)), 1, `${s.name} deployed once`);
  });

  test(`[${store.kind}] auto twice at once on one config and database: one rolls out, the other says so and runs no executor`, { skip: store.skip }, async (t) => {
    const fleet = await fleetFor(t, { servers: 2 });
    if (!fleet) return;
    const db = await store.db(fleet.root);
    const config = fleet.writeConfig({ name: 'cron', ...heldInVerify() });
    // Both on a database that does not exist yet (no file, no schema): both may create it.
    const runs = [spawnCli(['auto', '-c', config], { db }), spawnCli(['auto', '-c', config], { db })];
    // The rollout is held in verify on s1, so the one that does not do the work ends first,
    // having seen the other at work (its claim or its running update); never "nothing to do".
    const loser = await Promise.race(runs.map(async (p, i) => ({ i, r: await p })));
    const winner = runs[1 - loser.i]!;
    noSecret(store, loser.r);
    assert.equal(loser.r.exitCode, 0, textOf(loser.r));
    assert.match(String(loser.r.stdout), /another auto run of this config \(pid \d+|already running: cron \(pid \d+/);
    assert.match(String(loser.r.stdout), new RegExp(`pid ${winner.pid} `), 'it names the one at work');
    assert.doesNotMatch(textOf(loser.r), /planned cron to|starting it|taking over/);
    assert.equal(winner.exitCode, null, 'the other still runs');
    await waitFor(db, 's1 verifying', async (s) => (await s.findUpdate('cron')) && (await s.getServers('cron')).find((x) => x.name === 's1' && x.step === 'verify'));
    assert.equal((await statusAt(db, 'cron')).executor?.pid, winner.pid);

    openGate(fleet, 'online');
    const w = noSecret(store, await winner);
    assert.equal(w.exitCode, 0, textOf(w));
    assert.match(String(w.stdout), /planned cron to [0-9a-f]{12}; starting it/);
    assert.equal((await statusAt(db, 'cron')).status, 'success');
    for (const s of ['s1', 's2']) assert.equal(readDeployCount(fleet.home(s)), 1, `${s} deployed once`);
    const { updates, autoRuns } = await withStoreAt(db, async (s) => ({ updates: (await s.listUpdates()).map((u) => u.name), autoRuns: await s.autoRuns() }));
    assert.deepEqual(updates, ['cron'], 'one update');
    assert.deepEqual(autoRuns.map((r) => [r.outcome, r.updateName, r.pid]), [['started', 'cron', winner.pid]], 'one auto run did the work; the other wrote nothing');
  });
}

test('[postgres] the password of the URL: checked by the server, and never shown when it is wrong or the database does not answer', { skip: stores[1]!.skip }, async (t) => {
  const pgStore = stores[1]!;
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = await pgStore.db(fleet.root);
  const name = await plan(pgStore, fleet, db);
  // The password is checked: a wrong one is refused (exit 2), the message names the URL without either.
  const wrong = db.replace(pgStore.secret!, 'Wr0ng-pw');
  assert.notEqual(wrong, db);
  for (const args of [['status', name], ['--json', 'status', name], ['pause', name], ['start', name]]) {
    const r = await cli(args, { db: wrong });
    assert.equal(r.code, 2, textOf(r));
    assert.match(textOf(r), /password authentication failed/);
    assert.doesNotMatch(textOf(r), /Wr0ng-pw/);
    noSecret(pgStore, r);
  }
  // The reports that name the database, and a schema that holds no plan store (exit 2).
  for (const args of [['status'], ['--json', 'status'], ['status', name, '-v'], ['history'], ['--json', 'history'], ['logs', name, '-v']]) {
    const r = await run(pgStore, db, args);
    assert.equal(r.code, 0, textOf(r));
  }
  const elsewhere = await run(pgStore, db.replace(/schema=\w+/, 'schema=nothing_here'), ['status', name]);
  assert.equal(elsewhere.code, 2, textOf(elsewhere));
  assert.match(elsewhere.stderr, /no plan store at postgres:\/\/operator@127\.0\.0\.1:\d+\/agent_update_e2e \(schema nothing_here\)/);
  // No server at that port: exit 1, no password.
  const gone = new URL(db);
  gone.port = '1';
  const unreachable = await cli(['status', name], { db: gone.toString() });
  assert.equal(unreachable.code, 1, textOf(unreachable));
  noSecret(pgStore, unreachable);
  // Given in $AGENT_UPDATE_DB, the database a writing command names is still without it.
  const cancelled = noSecret(pgStore, await cli(['cancel', name], { env: { AGENT_UPDATE_DB: db } }));
  assert.equal(cancelled.code, 0, textOf(cancelled));
  assert.match(cancelled.stderr, /database: postgres:\/\/operator@127\.0\.0\.1:\d+\/agent_update_e2e \(schema e2e_\d+\) \(from \$AGENT_UPDATE_DB\)/);
});
