/**
 * The plan database (PostgreSQL) goes away in the middle of a rollout (issue 23): the executor
 * sends nothing more to a server while it cannot record it, waits for the database up to
 * $AGENT_UPDATE_DB_RETRY, and goes on when it is back in time; when it is not, it stops (exit 1,
 * saying what to run), and the next `start` takes over. Real sshd fleet, real PostgreSQL server
 * taken down with `pg_ctl stop -m fast` (a restart: every session ended) and up again.
 *
 * Every command of the agent in these configs first writes a line to the server's own
 * `~/commands.log`: what the server ran, to hold against what the journal recorded.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit, readDeployCount } from '../../src/sim/agent.js';
import { statusDocument } from '../../src/output/status-json.js';
import { PgStore } from '../../src/store/postgres/store.js';
import type { JournalEntry } from '../../src/model/records.js';
import { cli, planned, printed, sharedFleet, spawnCli } from '../helpers/cli.js';
import { openGate, waitGate } from '../helpers/gates.js';
import { postgresForFile } from '../helpers/postgres.js';
import type { Fleet } from '../fleet/fleet.js';

const fleetFor = sharedFleet({ servers: 3 });
const { skip, postgres } = postgresForFile();


/**
 * The agent's commands, each logged on the server first; s2 is held in verify by a health check
 * that waits for its `online` gate (one command, running until the test opens it).
 */
function loggedConfig(): Record<string, unknown> {
  const c = agentCommands();
  const log = (tag: string, command: string) => `echo ${tag} >> ~/commands.log; ${command}`;
  return {
    agent: {
      version_command: log('version', c.version_command),
      update: c.update.map((u, i) => log(`update${i}`, u)),
      restart: Object.fromEntries(Object.entries(c.restart).map(([k, v]) => [k, log(`restart-${k}`, v)])),
      health: { ...c.health, command: log('health', `${waitGate('online')} && ${c.health.command}`), timeout: '60s', interval: '50ms' },
    },
  };
}

/** What the server ran of the agent's commands, in order. */
function ranOn(fleet: Fleet, server: string): string[] {
  const file = join(fleet.home(server), 'commands.log');
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

/** The plan store at `db`, opened for `f` (as `status` opens it from another process). */
async function withPg<T>(db: string, f: (store: PgStore) => Promise<T>): Promise<T> {
  const u = new URL(db);
  const schema = u.searchParams.get('schema') ?? undefined;
  u.searchParams.delete('schema');
  const store = await PgStore.open(u.toString(), { clock: { now: () => new Date() }, schema, create: false });
  try {
    return await f(store);
  } finally {
    await store.close();
  }
}

/**
 * Per command of the agent (its tag in ~/commands.log): how many times `server` ran it, and how
 * many journal rows of `server` hold it. A row may hold one the server did not run (its lock
 * script found the lock taken, and a takeover re-checks after clearing it); every run must have a row.
 */
function tally(fleet: Fleet, server: string, journal: JournalEntry[]): Record<string, { ran: number; recorded: number }> {
  const out: Record<string, { ran: number; recorded: number }> = {};
  const of = (tag: string) => (out[tag] ??= { ran: 0, recorded: 0 });
  for (const tag of ranOn(fleet, server)) of(tag).ran++;
  for (const j of journal.filter((x) => x.serverName === server)) {
    const tag = /echo (\S+) >> ~\/commands\.log/.exec(j.command)?.[1];
    if (tag) of(tag).recorded++;
  }
  return out;
}

/** Every command `server` ran has its journal row, and (`exact`) every row holding one is of a run. */
function assertRecorded(fleet: Fleet, server: string, journal: JournalEntry[], exact: boolean): void {
  for (const [tag, { ran, recorded }] of Object.entries(tally(fleet, server, journal))) {
    if (exact) assert.equal(recorded, ran, `${server} ${tag}: ran ${ran} times, recorded ${recorded}`);
    else assert.ok(recorded >= ran, `${server} ${tag}: ran ${ran} times, recorded only ${recorded}`);
  }
}

/** s2 held in verify: its health check recorded, begun and not ended, i.e. running on the server. */
async function s2HeldInVerify(db: string, name: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const held = await withPg(db, async (store) => (await store.getJournal(name, 's2')).some((j) => j.phase === 'verify' && j.endedAt === null));
    if (held) return;
    if (Date.now() > deadline) throw new Error('timed out waiting for s2 held in verify');
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the database restarted while a server is in verify, back within the bound: the executor waits, then finishes; the journal is complete', { skip }, async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = `${postgres().url}?schema=gone_back`;
  const { name } = await planned(fleet, loggedConfig(), 'u1', db);
  openGate(fleet, 'online', ['s1', 's3']);
  const run = spawnCli(['start', name], { db, env: { AGENT_UPDATE_DB_RETRY: '60' } });
  const unreachable = printed(run, 'stderr', /plan database .* unreachable \(.*\): nothing is sent to a server until it answers; retrying for up to 1m/);
  await s2HeldInVerify(db, name);
  await postgres().stopServer();
  let up = false;
  try {
    // s2's health check ends while the database is down: its result cannot be recorded yet
    openGate(fleet, 'online', ['s2']);
    await unreachable;
    assert.equal(run.exitCode, null, 'still running, waiting for the database');
    const s3Before = ranOn(fleet, 's3').length;
    await postgres().startServer();
    up = true;
    const r = await run;
    assert.equal(r.exitCode, 0, String(r.stdout) + String(r.stderr));
    assert.match(String(r.stderr), /plan database postgres:\/\/postgres@127\.0\.0\.1:\d+\/agent_update_test \(schema gone_back\) reachable again after [\d.]+m?s; going on/);
    assert.ok(ranOn(fleet, 's3').length > s3Before, 's3 was worked on only once the database was back');
  } finally {
    if (!up) await postgres().startServer();
  }
  await withPg(db, async (store) => {
    const doc = await statusDocument(store, name);
    assert.equal(doc.status, 'success');
    for (const s of doc.servers) assert.equal(s.status, 'success', s.name);
    const journal = await store.getJournal(name);
    assert.deepEqual(journal.filter((j) => j.endedAt === null), [], 'every command recorded begun and ended');
    for (const s of ['s1', 's2', 's3']) assertRecorded(fleet, s, journal, true);
  });
  for (const s of ['s1', 's2', 's3']) {
    assert.equal(currentCommit(fleet.home(s)), fleet.upstream.commits.good, s);
    assert.equal(readDeployCount(fleet.home(s)), 1, s);
  }
});

test('the database gone for longer than the bound: start stops with exit 1 saying what to run, nothing ran unrecorded; once it is back, start takes over and finishes', { skip }, async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = `${postgres().url}?schema=gone_long`;
  const { name } = await planned(fleet, loggedConfig(), 'u1', db);
  openGate(fleet, 'online', ['s1', 's3']);
  const run = spawnCli(['start', name, '--json'], { db, env: { AGENT_UPDATE_DB_RETRY: '2' } });
  await s2HeldInVerify(db, name);
  const s1Ran = ranOn(fleet, 's1');
  await postgres().stopServer();
  let r: Awaited<typeof run>;
  let s2Ran: string[];
  try {
    openGate(fleet, 'online', ['s2']);
    r = await run;
    s2Ran = ranOn(fleet, 's2');
  } finally {
    await postgres().startServer();
  }
  const stderr = String(r.stderr);
  assert.equal(r.exitCode, 1, String(r.stdout) + stderr);
  const message =
    /the plan database postgres:\/\/postgres@127\.0\.0\.1:\d+\/agent_update_test \(schema gone_long\) could not be reached for \ds \(.*\)\. Update u1 stopped: nothing was run on a server without being recorded first; once the database answers again, `agent-update --db 'postgres:\/\/postgres@127\.0\.0\.1:\d+\/agent_update_test\?schema=gone_long' start u1` goes on from where it stopped \(a server left in flight is re-checked first\)/;
  assert.match(stderr, message);
  assert.equal(stderr.match(/could not be reached/g)?.length, 1, 'said once');
  assert.match(stderr, /unreachable .*retrying for up to 2s/);
  // --json: the last line is the error, with its exit code
  const last = JSON.parse(String(r.stdout).trim().split('\n').at(-1)!) as { type: string; exitCode: number; error: string };
  assert.equal(last.type, 'error');
  assert.equal(last.exitCode, 1);
  assert.match(last.error, /could not be reached for/);
  assert.doesNotMatch(stderr, /internal error/);

  await withPg(db, async (store) => {
    const doc = await statusDocument(store, name);
    assert.equal(doc.status, 'running', 'left as a crash leaves it, for a takeover');
    assert.equal(doc.servers.find((s) => s.name === 's2')!.status, 'running');
    const journal = await store.getJournal(name);
    // s2's last health check ran, and its row was committed before it was sent; its result never could be
    for (const s of ['s1', 's2', 's3']) assertRecorded(fleet, s, journal, true);
    assert.deepEqual(ranOn(fleet, 's2'), s2Ran, 'nothing ran on s2 after the executor stopped');
    assert.deepEqual(journal.filter((j) => j.endedAt === null).map((j) => `${j.serverName} ${j.phase}`), ['s2 verify']);
    assert.deepEqual(ranOn(fleet, 's3'), ['version'], 's3: its probe only (the plan), nothing of the rollout');
  });

  const again = await cli(['start', name], { db });
  assert.equal(again.code, 0, again.stdout + again.stderr);
  assert.match(again.stdout + again.stderr, /taking over|takeover/);
  await withPg(db, async (store) => {
    const doc = await statusDocument(store, name);
    assert.equal(doc.status, 'success');
    for (const s of doc.servers) assert.equal(s.status, 'success', s.name);
    const journal = await store.getJournal(name);
    for (const s of ['s1', 's2', 's3']) assertRecorded(fleet, s, journal, false);
    assert.equal(tally(fleet, 's2', journal).health!.ran, tally(fleet, 's2', journal).health!.recorded);
  });
  assert.deepEqual(ranOn(fleet, 's1'), s1Ran, 's1 had finished: not touched again');
  assert.equal(readDeployCount(fleet.home('s1')), 1);
  assert.equal(readDeployCount(fleet.home('s2')), 1, 's2 was at the target: verified again, not redeployed');
  assert.equal(readDeployCount(fleet.home('s3')), 1);
  for (const s of ['s1', 's2', 's3']) assert.equal(currentCommit(fleet.home(s)), fleet.upstream.commits.good, s);
});
