import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { holderIsDead, acquireLease, processStartTime } from '../../src/rollout/lease.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { BusyError, TransitionError, UsageError } from '../../src/errors.js';
import { Store, type NewUpdate } from '../../src/store/store.js';
import { MIGRATIONS } from '../../src/store/schema.js';
import { stringify } from 'yaml';
import { generateKeyPair } from '../../src/sim/keys.js';
import { createUpstream } from '../../src/sim/upstream.js';
import { cli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

function tmpStore(t: { after(fn: () => void): void }): Store {
  const dir = makeTempDir('agent-update-store-');
  const store = new Store(join(dir, 'p.db'));
  t.after(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

function newUpdate(name: string, n: number): NewUpdate {
  return {
    name,
    repo: '/r',
    branch: 'master',
    commit: 'c'.repeat(40),
    configFile: null,
    settings: {} as NewUpdate['settings'],
    testStopAfter: 2,
    servers: Array.from({ length: n }, (_, i) => ({ name: `s${i + 1}`, host: `h${i + 1}`, port: 22, user: 'u', type: 'app' })),
  };
}

test('the store is WAL, migrated to the latest schema version, and refuses a newer one', (t) => {
  const store = tmpStore(t);
  assert.equal(store.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(store.db.pragma('user_version', { simple: true }), MIGRATIONS.length);
  store.db.pragma(`user_version = ${MIGRATIONS.length + 1}`);
  assert.throws(() => new Store(store.path), /newer agent-update/);
});

test('status changes go through the table, inside the transaction', (t) => {
  const store = tmpStore(t);
  store.createUpdate(newUpdate('a', 2));
  assert.equal(store.getUpdate('a').status, 'planning');
  assert.throws(() => store.setUpdateStatus('a', 'running'), TransitionError);
  store.setUpdateStatus('a', 'pending');
  const [s1] = store.getServers('a');
  assert.throws(() => store.setServerStatus(s1!.id, 'success'), TransitionError);
  store.setServerStatus(s1!.id, 'running', { step: 'update' });
  assert.equal(store.getServers('a')[0]!.step, 'update');
  assert.ok(store.getEvents('a').some((e) => e.message.includes('running (update)')), 'every change is in the event log');
  assert.throws(() => store.getUpdate('zzz'), /no update named "zzz".*known updates: a/);
});

test('split moves servers and their journal, keeps test mode on the first batch only', (t) => {
  const store = tmpStore(t);
  store.createUpdate(newUpdate('a', 7));
  store.setUpdateStatus('a', 'pending');
  const first = store.getServers('a')[6]!;
  store.endStep(store.beginStep(first, 'probe', 'x'), { code: 0, stdout: 'o', stderr: '', error: null });
  assert.deepEqual(splitUpdate(store, 'a', 3), ['a', 'a.2', 'a.3']);
  assert.deepEqual(store.getServers('a.3').map((s) => s.name), ['s6', 's7']);
  assert.deepEqual(store.getServers('a.3').map((s) => s.position), [0, 1]);
  assert.equal(store.getSteps('a.3', 's7').length, 1);
  assert.equal(store.getUpdate('a').testStopAfter, 2);
  assert.equal(store.getUpdate('a.2').testStopAfter, 0);
  assert.equal(store.getUpdate('a.2').batchOf, 'a');
  assert.throws(() => splitUpdate(store, 'a', 2), /a\.2 already exists/);
  store.setUpdateStatus('a.3', 'running');
  assert.throws(() => splitUpdate(store, 'a.3', 2), (e: unknown) => e instanceof TransitionError && /only a pending update/.test(e.message));
});

test('the lease: a live holder refuses a second executor; a dead or stale one is taken over', (t) => {
  const store = tmpStore(t);
  store.createUpdate(newUpdate('a', 1));
  const held = acquireLease(store, 'a', () => {});
  t.after(() => held.release());
  assert.throws(() => acquireLease(store, 'a', () => {}), (e: unknown) => e instanceof BusyError && new RegExp(`pid ${process.pid}`).test(e.message));
  held.release();
  const again = acquireLease(store, 'a', () => {});
  again.release();

  const now = new Date();
  const live = { token: 't', pid: process.pid, host: 'here', pidStart: processStartTime(process.pid), since: now.toISOString(), heartbeat: now.toISOString() };
  assert.equal(holderIsDead(live, now, 'here'), false);
  assert.equal(holderIsDead({ ...live, pid: 2 ** 22 + 12345 }, now, 'here'), true, 'pid gone');
  assert.equal(holderIsDead({ ...live, pidStart: '1' }, now, 'here'), true, 'pid reused by another process');
  assert.equal(holderIsDead({ ...live, host: 'elsewhere' }, now, 'here'), false, 'another host: only the heartbeat tells');
  const old = new Date(now.getTime() - 60_000).toISOString();
  assert.equal(holderIsDead({ ...live, host: 'elsewhere', heartbeat: old }, now, 'here'), true, 'stale heartbeat');
});

test('a database written by another process is read consistently (WAL, two connections)', (t) => {
  const store = tmpStore(t);
  store.createUpdate(newUpdate('a', 1));
  const other = new Database(store.path, { readonly: true });
  t.after(() => other.close());
  assert.equal((other.prepare('SELECT status FROM updates').get() as { status: string }).status, 'planning');
});

test('a --db that is not a plan database is refused, and left exactly as it was', async (t) => {
  const dir = makeTempDir('agent-update-store-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const missingDir = join(dir, 'no-such-folder', 'p.db');
  assert.throws(() => new Store(missingDir), (e: unknown) => e instanceof UsageError && /cannot open the plan database .*no-such-folder/.test(e.message));
  assert.equal(existsSync(join(dir, 'no-such-folder')), false);

  const text = join(dir, 'README.md');
  writeFileSync(text, '# not a database\n'.repeat(100));
  const textBefore = readFileSync(text);
  assert.throws(() => new Store(text), (e: unknown) => e instanceof UsageError && /is not a SQLite database/.test(e.message));
  assert.deepEqual(readFileSync(text), textBefore);

  const foreign = join(dir, 'other-app.sqlite');
  const other = new Database(foreign);
  other.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices (total) VALUES (12.5);");
  other.close();
  const foreignBefore = readFileSync(foreign);
  assert.throws(() => new Store(foreign), (e: unknown) => e instanceof UsageError && /SQLite database of something else \(tables: invoices\)/.test(e.message));
  assert.deepEqual(readFileSync(foreign), foreignBefore, 'not switched to WAL, no table added');
  assert.equal(existsSync(`${foreign}-wal`), false);

  // Through the CLI: exit 2 and the reason, not an internal error; `plan` too, which creates
  // the database (here in a folder that does not exist).
  const upstream = await createUpstream(join(dir, 'upstream'));
  writeFileSync(join(dir, 'known_hosts'), '');
  writeFileSync(join(dir, 'id'), generateKeyPair().private, { mode: 0o600 });
  const config = join(dir, 'rollout.yaml');
  writeFileSync(
    config,
    stringify({
      source: { repo: upstream.repo, branch: 'master' },
      servers: [{ name: 's1', host: '127.0.0.1', type: 'app' }],
      ssh: { known_hosts: join(dir, 'known_hosts'), identity_file: join(dir, 'id') },
      agent: { version_command: 'true', update: ['true'], restart: { web: 'true' }, health: { command: 'true' } },
      restart: ['web'],
    }),
  );
  const cases: Array<[string[], string, RegExp]> = [
    [['status'], missingDir, /no plan database at/],
    [['plan', '-c', config], missingDir, /cannot open the plan database .*directory does not exist/],
    [['status'], text, /not a SQLite database/],
    [['plan', '-c', config], text, /not a SQLite database/],
    [['status'], foreign, /something else/],
    [['plan', '-c', config], foreign, /something else/],
  ];
  for (const [args, db, why] of cases) {
    const r = await cli(args, { db });
    assert.equal(r.code, 2, `${args[0]} --db ${db}: ${r.stderr}`);
    assert.match(r.stderr, why);
    assert.doesNotMatch(r.stderr, /internal error/);
  }
  assert.equal(existsSync(join(dir, 'no-such-folder')), false);
  assert.deepEqual(readFileSync(text), textBefore);
  assert.deepEqual(readFileSync(foreign), foreignBefore);
});
