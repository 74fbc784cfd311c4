/**
 * `agent-update db copy FROM TO` end to end: a real rollout's SQLite database (a success, a
 * rollback, and an update whose executor was killed with a server in verify, its lock left on the
 * server) copied into PostgreSQL while its executor lives is refused, once it is dead copied;
 * `status`, `logs` and `history` print the same from both; `start` on the copy takes the update
 * over and recognises the lock its original's executor left (the same store identity); and the
 * PostgreSQL plan copied back into a file reads the same again. Then the refusals, each with
 * exit 2 and nothing written.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import pg from 'pg';
import { processStartTime } from '../../src/liveness.js';
import { currentCommit } from '../../src/sim/agent.js';
import { cli, planned, sharedFleet, spawnCli, type CliResult } from '../helpers/cli.js';
import { contents, waitForStore, withStore } from '../helpers/db.js';
import { heldInVerify, openGate } from '../helpers/gates.js';
import { postgresForFile } from '../helpers/postgres.js';
import { tempDirFor } from '../helpers/tmp.js';
import { newUpdate } from '../store/contract.js';

const fleetFor = sharedFleet({ servers: 2 });
const { skip, postgres } = postgresForFile();


/** The test server's URL for `schema`, with a password (trust authentication takes any) that must never be printed. */
function pgUrl(schema: string, password = 's3cret-pw'): string {
  const u = new URL(postgres().url);
  u.password = password;
  u.searchParams.set('schema', schema);
  return u.toString();
}

async function schemaExists(schema: string): Promise<boolean> {
  const c = new pg.Client({ connectionString: postgres().url });
  await c.connect();
  try {
    return (await c.query('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [schema])).rowCount === 1;
  } finally {
    await c.end();
  }
}

/** JSON output with every `db` (the store's location, where FROM and TO differ) left out. */
function parsed(r: CliResult): unknown {
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return JSON.parse(r.stdout, (k, v: unknown) => (k === 'db' ? undefined : v));
}

/** Each of these commands prints the same JSON on `a` as on `b`. */
async function sameOn(a: string, b: string, commands: string[][]): Promise<void> {
  for (const args of commands) {
    const [x, y] = await Promise.all([cli([...args, '--json'], { db: a }), cli([...args, '--json'], { db: b })]);
    assert.deepEqual(parsed(y), parsed(x), `${args.join(' ')}: the same on ${b.replace(/:[^:@/]*@/, ':***@')} as on ${a}`);
  }
}

const noPassword = (r: CliResult) => assert.ok(!`${r.stdout}${r.stderr}`.includes('s3cret-pw'), `the password is never printed:\n${r.stdout}${r.stderr}`);

test('a real rollout copied SQLite → PostgreSQL → SQLite: status, logs and history the same on each; start on the copy takes over and recognises its own lock', { skip }, async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { good, good2 } = fleet.upstream.commits;
  const db = join(fleet.root, 'plan.db');

  await planned(fleet, {}, 'u1', db);
  assert.equal((await cli(['start', 'u1'], { db })).code, 0);
  await planned(fleet, { source: { branch: 'broken' } }, 'u2', db);
  const u2 = await cli(['start', 'u2'], { db });
  assert.equal(u2.code, 1, 'u2 fails: s1 rolled back');
  // u3: s1 held in verify, its lock on the server, while its executor lives
  await planned(fleet, { source: { branch: 'good2' }, ...heldInVerify() }, 'u3', db);
  const run = spawnCli(['start', 'u3'], { db });
  await waitForStore(db, 's1 verifying in u3', async (s) => (await s.getServers('u3')).find((x) => x.name === 's1')?.step === 'verify');

  const to = pgUrl('team_a');
  const busy = await cli(['db', 'copy', db, to]);
  assert.equal(busy.code, 2, busy.stdout + busy.stderr);
  assert.match(busy.stderr, /update u3 in \S+ is running, executed by pid \d+ on .*: pause it first \(`agent-update --db \S+ pause u3`\) and wait until it has stopped, or wait until it ends, then copy; nothing was written/);
  assert.equal(await schemaExists('team_a'), false, 'TO is not created while a check fails');

  run.kill('SIGKILL');
  await run;
  const copied = await cli(['--json', 'db', 'copy', db, to]);
  assert.equal(copied.code, 0, copied.stdout + copied.stderr);
  noPassword(copied);
  const report = JSON.parse(copied.stdout) as Record<string, unknown>;
  const dbId = await withStore(db, (s) => s.dbId);
  const expected = await withStore(db, async (s) => {
    const updates = await s.listUpdates();
    const per = await Promise.all(updates.map(async (u) => ({ servers: (await s.getServers(u.name)).length, journal: (await s.getJournal(u.name)).length, events: (await s.getEvents(u.name)).length })));
    const sum = (k: 'servers' | 'journal' | 'events') => per.reduce((n, p) => n + p[k], 0);
    return { updates: updates.length, servers: sum('servers'), journal: sum('journal'), events: sum('events') };
  });
  assert.deepEqual(report, { from: db, to: `${postgres().url} (schema team_a)`, dbId, ...expected, autoRuns: 0, freezes: 0 });
  assert.ok(expected.journal > 10 && expected.events > 10, JSON.stringify(expected));

  const commands = [['status'], ['status', 'u1'], ['status', 'u2'], ['status', 'u3'], ['logs', 'u1'], ['logs', 'u2'], ['logs', 'u3'], ['history']];
  await sameOn(db, to, commands);
  const mid = parsed(await cli(['status', 'u3', '--json'], { db: to })) as { status: string; executor: { alive: boolean } | null };
  assert.equal(mid.status, 'running');
  assert.equal(mid.executor?.alive, false, 'the copy shows the dead executor as the original does');

  // a second copy into it: refused, it holds a plan now
  const again = await cli(['db', 'copy', db, to]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already holds a plan store with 3 updates: db copy writes only into a new or empty one \(it never merges\); nothing was written/);
  noPassword(again);

  // The copy goes on: start takes u3 over. The lock the killed executor left on s1 names the
  // store's identity, which the copy kept: it is this plan's own, its holder dead, so it is
  // cleared and s1 finished (with another identity it would be a stranger's lock: busy).
  openGate(fleet, 'online');
  const taken = await cli(['start', 'u3'], { db: to });
  assert.equal(taken.code, 0, taken.stdout + taken.stderr);
  noPassword(taken);
  const done = parsed(await cli(['status', 'u3', '--json'], { db: to })) as { status: string; servers: Array<{ name: string; status: string }> };
  assert.equal(done.status, 'success');
  assert.deepEqual(done.servers.map((s) => [s.name, s.status]), [['s1', 'success'], ['s2', 'success']]);
  for (const s of ['s1', 's2']) assert.equal(currentCommit(fleet.home(s)), good2, s);
  assert.equal((await withStore(db, (s) => s.getUpdate('u3'))).status, 'running', 'FROM is left as it was');
  // and a new plan on the copy (new ids after the copied ones): the undo of u3, linked to it
  const undo = await cli(['undo', 'u3'], { db: to });
  assert.equal(undo.code, 0, undo.stdout + undo.stderr);
  const back3 = await cli(['start', 'u3-undo'], { db: to });
  assert.equal(back3.code, 0, back3.stdout + back3.stderr);
  for (const s of ['s1', 's2']) assert.equal(currentCommit(fleet.home(s)), good, s);

  // PostgreSQL → a new file: the same again
  const back = join(fleet.root, 'back.db');
  const home = await cli(['db', 'copy', to, back]);
  assert.equal(home.code, 0, home.stdout + home.stderr);
  noPassword(home);
  assert.match(home.stdout, /^copied 4 updates, \d+ server rows, \d+ journal entries, \d+ events and 0 auto runs from postgres:\/\/postgres@127\.0\.0\.1:\d+\/\w+ \(schema team_a\) to \S+back\.db, with its identity [0-9a-f]{32}\n/);
  assert.match(home.stdout, /\nfrom now on use only the copy \(FROM is left as it was\): agent-update --db \S+back\.db status$/);
  await sameOn(to, back, [...commands, ['status', 'u3-undo'], ['logs', 'u3-undo']]);
  assert.equal(await withStore(back, (s) => s.dbId), dbId);
});

test('db copy refuses, exit 2 and nothing written: FROM missing, TO holding a plan, the same store, an executor or auto at work on FROM, bad usage', { skip }, async (t) => {
  const dir = tempDirFor(t, 'agent-update-dbcopy-');
  const from = join(dir, 'from.db');
  await withStore(from, async (s) => {
    await s.createUpdate(newUpdate('a', 2));
    await s.setUpdateStatus('a', 'pending');
  });
  const refused = async (args: string[], message: RegExp, created?: string) => {
    const r = await cli(args);
    assert.equal(r.code, 2, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, message);
    noPassword(r);
    if (created !== undefined) assert.equal(existsSync(created), false, `${created} was not created`);
  };
  const newFile = join(dir, 'new.db');

  await refused(['db', 'copy', join(dir, 'missing.db'), newFile], /FROM: no plan database at \S+missing\.db; nothing was written/, newFile);
  await refused(['db', 'copy', pgUrl('nothing_here'), newFile], /FROM: no plan store at postgres:\/\/postgres@127\.0\.0\.1:\d+\/\w+ \(schema nothing_here\); nothing was written/, newFile);
  assert.equal(await schemaExists('nothing_here'), false, 'FROM is never created');
  await refused(['db', 'copy', from, from], /FROM and TO are the same plan store/);
  await refused(['db', 'copy', pgUrl('x'), pgUrl('x', 'other')], /FROM and TO are the same plan store/);
  await refused(['db', 'copy', from, join(dir, 'no', 'such', 'folder.db')], /TO: the folder \S+ does not exist/);
  await refused(['db', 'copy', from], /missing required argument 'to'/);
  await refused(['--db', from, 'db', 'copy', from, newFile], /leave out --db/, newFile);
  await refused(['db', 'copy', from, 'postgres://u:s3cret-pw@[bad/x'], /TO: .* is not a valid postgres:\/\/ URL/);

  // TO holds a plan (a file, a schema): nothing of it changes
  const other = join(dir, 'other.db');
  await withStore(other, (s) => s.createUpdate(newUpdate('mine', 1)));
  const before = await withStore(other, (s) => contents(s));
  await refused(['db', 'copy', from, other], /TO: \S+other\.db already holds a plan store with 1 update: .*never merges\); nothing was written/);
  assert.equal(await withStore(other, (s) => contents(s)), before);
  assert.equal((await cli(['db', 'copy', other, pgUrl('taken')])).code, 0);
  await refused(['db', 'copy', from, pgUrl('taken')], /TO: postgres:\/\/postgres@\S+ \(schema taken\) already holds a plan store with 1 update/);

  // an executor alive on this host holds a's lease: pause it first
  await withStore(from, async (s) => {
    await s.acquireLease('a', { token: 'live', pid: process.pid, host: hostname(), pidStart: processStartTime(process.pid) }, () => true);
    await s.setUpdateStatus('a', 'running');
  });
  await refused(['db', 'copy', from, newFile], /update a in \S+from\.db is running, executed by pid \d+ on .*: pause it first/, newFile);
  await refused(['db', 'copy', from, pgUrl('fresh')], /pause it first/);
  assert.equal(await schemaExists('fresh'), false);
  await withStore(from, (s) => s.releaseLease('a', 'live'));
  // an auto of a config planning right now
  const run = await withStore(from, (s) => s.beginAutoRun({ configFile: '/c.yaml', actor: 'cron@ci', pid: process.pid, host: hostname(), pidStart: processStartTime(process.pid), commit: null }));
  await refused(['db', 'copy', from, newFile], /an auto of \/c\.yaml is at work on \S+from\.db \(pid \d+ on .*\): wait until it ends/, newFile);
  await withStore(from, (s) => s.endAutoRun(run, 'nothing-to-do', 'up to date'));

  // with --json the refusal is a JSON object on stdout too
  const j = await cli(['--json', 'db', 'copy', join(dir, 'missing.db'), newFile]);
  assert.equal(j.code, 2);
  assert.match((JSON.parse(j.stdout) as { error: string; exitCode: number }).error, /FROM: no plan database/);

  // all checks pass: copied, into a file and into a schema
  const ok = await cli(['db', 'copy', from, newFile]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^copied 1 update, 2 server rows, 0 journal entries, \d+ events and 1 auto run from /);
  assert.equal(await withStore(newFile, (s) => contents(s)), await withStore(from, (s) => contents(s)));
  assert.equal((await cli(['db', 'copy', newFile, pgUrl('fresh')])).code, 0);
});
