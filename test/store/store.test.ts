import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import Database from 'better-sqlite3';
import { holderIsDead, acquireLease } from '../../src/rollout/lease.js';
import { processStartTime, systemLiveness } from '../../src/liveness.js';
import { liveness } from '../helpers/liveness.js';
import { splitUpdate } from '../../src/rollout/split.js';
import { BusyError, TransitionError, UsageError } from '../../src/errors.js';
import type { NewUpdate, Store } from '../../src/store/port.js';
import { MIGRATIONS } from '../../src/store/sqlite/schema.js';
import { stringify } from 'yaml';
import { generateKeyPair } from '../../src/sim/keys.js';
import { createUpstream } from '../../src/sim/upstream.js';
import { cli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';
import { openStore, withSqliteFile } from '../helpers/db.js';

function tmpStore(t: { after(fn: () => void | Promise<void>): void }): Store {
  const dir = makeTempDir('agent-update-store-');
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return store;
}

/** A pragma of the database file, read on a connection of its own. */
const pragma = (file: string, name: string) => withSqliteFile(file, (d) => d.pragma(name, { simple: true }), { readonly: true });

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
  assert.equal(pragma(store.location, 'journal_mode'), 'wal');
  assert.equal(pragma(store.location, 'user_version'), MIGRATIONS.length);
  withSqliteFile(store.location, (d) => d.pragma(`user_version = ${MIGRATIONS.length + 1}`));
  assert.throws(() => openStore(store.location), /newer agent-update/);
});

test('status changes go through the table, inside the transaction', async (t) => {
  const store = tmpStore(t);
  await store.createUpdate(newUpdate('a', 2));
  assert.equal((await store.getUpdate('a')).status, 'planning');
  await assert.rejects(store.setUpdateStatus('a', 'running'), TransitionError);
  await store.setUpdateStatus('a', 'pending');
  const [s1] = await store.getServers('a');
  await assert.rejects(store.setServerStatus(s1!.id, 'success'), TransitionError);
  await store.setServerStatus(s1!.id, 'running', { step: 'update' });
  assert.equal((await store.getServers('a'))[0]!.step, 'update');
  assert.ok((await store.getEvents('a')).some((e) => e.message.includes('running (update)')), 'every change is in the event log');
  await assert.rejects(store.getUpdate('zzz'), /no update named "zzz".*known updates: a/);
});

test('split moves servers and their journal, keeps test mode on the first batch only', async (t) => {
  const store = tmpStore(t);
  await store.createUpdate(newUpdate('a', 7));
  await store.setUpdateStatus('a', 'pending');
  const first = (await store.getServers('a'))[6]!;
  await store.endCommand(await store.beginCommand(first, 'probe', 'x'), { code: 0, stdout: 'o', stderr: '', error: null });
  assert.deepEqual(await splitUpdate(store, 'a', 3), ['a', 'a.2', 'a.3']);
  assert.deepEqual((await store.getServers('a.3')).map((s) => s.name), ['s6', 's7']);
  assert.deepEqual((await store.getServers('a.3')).map((s) => s.position), [0, 1]);
  assert.equal((await store.getJournal('a.3', 's7')).length, 1);
  assert.equal((await store.getUpdate('a')).testStopAfter, 2);
  assert.equal((await store.getUpdate('a.2')).testStopAfter, 0);
  assert.equal((await store.getUpdate('a.2')).batchOf, 'a');
  await assert.rejects(splitUpdate(store, 'a', 2), /a\.2 already exists/);
  await store.setUpdateStatus('a.3', 'running');
  await assert.rejects(splitUpdate(store, 'a.3', 2), (e: unknown) => e instanceof TransitionError && /it is running, and only a pending or paused update can be split/.test(e.message));
});

test('the lease: a live holder refuses a second executor; a dead or stale one is taken over', async (t) => {
  const store = tmpStore(t);
  await store.createUpdate(newUpdate('a', 1));
  const held = await acquireLease(store, 'a', () => {}, systemLiveness, () => new Date());
  t.after(async () => await held.release());
  await assert.rejects(acquireLease(store, 'a', () => {}, systemLiveness, () => new Date()), (e: unknown) => e instanceof BusyError && new RegExp(`pid ${process.pid}`).test(e.message));
  await held.release();
  const again = await acquireLease(store, 'a', () => {}, systemLiveness, () => new Date());
  await again.release();

  const now = new Date();
  const here = liveness({ host: 'here' });
  const live = { token: 't', pid: process.pid, host: 'here', pidStart: processStartTime(process.pid), since: now.toISOString(), heartbeat: now.toISOString() };
  assert.equal(holderIsDead(live, now, here), false);
  assert.equal(holderIsDead({ ...live, pid: 2 ** 22 + 12345 }, now, here), true, 'pid gone');
  assert.equal(holderIsDead({ ...live, pidStart: '1' }, now, here), true, 'pid reused by another process');
  assert.equal(holderIsDead({ ...live, host: 'elsewhere' }, now, here), false, 'another host: only the heartbeat tells');
  const old = new Date(now.getTime() - 60_000).toISOString();
  assert.equal(holderIsDead({ ...live, host: 'elsewhere', heartbeat: old }, now, here), true, 'stale heartbeat');
});

test('a database written by another process is read consistently (WAL, two connections)', async (t) => {
  const store = tmpStore(t);
  await store.createUpdate(newUpdate('a', 1));
  const other = new Database(store.location, { readonly: true });
  t.after(() => other.close());
  assert.equal((other.prepare('SELECT status FROM updates').get() as { status: string }).status, 'planning');
});

test('a --db that is not a plan database is refused, and left exactly as it was', async (t) => {
  const dir = makeTempDir('agent-update-store-');
  t.after(() => rmSync(dir, { recursive: true, force: true }));

  const missingDir = join(dir, 'no-such-folder', 'p.db');
  assert.throws(() => openStore(missingDir), (e: unknown) => e instanceof UsageError && /cannot open the plan database .*no-such-folder/.test(e.message));
  assert.equal(existsSync(join(dir, 'no-such-folder')), false);

  const text = join(dir, 'README.md');
  writeFileSync(text, '# not a database\n'.repeat(100));
  const textBefore = readFileSync(text);
  assert.throws(() => openStore(text), (e: unknown) => e instanceof UsageError && /is not a SQLite database/.test(e.message));
  assert.deepEqual(readFileSync(text), textBefore);

  const foreign = join(dir, 'other-app.sqlite');
  const other = new Database(foreign);
  other.exec("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL); INSERT INTO invoices (total) VALUES (12.5);");
  other.close();
  const foreignBefore = readFileSync(foreign);
  assert.throws(() => openStore(foreign), (e: unknown) => e instanceof UsageError && /SQLite database of something else \(tables: invoices\)/.test(e.message));
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

test('processes opening a new database at once all migrate it: the version is read inside the migration', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-race-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const storeModule = new URL('../../src/store/sqlite/store.js', import.meta.url).href;
  // Each child waits on the gate file, then opens the same new database as fast as it can.
  const child = `
    import { existsSync } from 'node:fs';
    const { SqliteStore } = await import(${JSON.stringify(storeModule)});
    const gate = process.argv[1], db = process.argv[2];
    console.log('ready');
    while (!existsSync(gate)) await new Promise((r) => setImmediate(r));
    try { await new SqliteStore(db, { clock: { now: () => new Date() } }).close(); console.log('ok'); } catch (e) { console.log('failed: ' + e.message); process.exitCode = 1; }
  `;
  const { spawn } = await import('node:child_process');
  for (let round = 0; round < 5; round++) {
    const gate = join(dir, `gate-${round}`);
    const db = join(dir, `new-${round}.db`);
    const kids = Array.from({ length: 6 }, () => spawn(process.execPath, ['--input-type=module', '-e', child, gate, db], { stdio: ['ignore', 'pipe', 'inherit'] }));
    const ready: Promise<void>[] = [];
    const outputs = kids.map(
      (k) =>
        new Promise<string>((resolve) => {
          let out = '';
          let signalReady: () => void = () => {};
          ready.push(new Promise<void>((r) => (signalReady = r)));
          k.stdout.on('data', (d: Buffer) => {
            out += d.toString();
            if (out.startsWith('ready\n')) signalReady();
          });
          k.on('close', (code) => {
            signalReady();
            resolve(`${code}: ${out.replace(/^ready\n/, '').trim()}`);
          });
        }),
    );
    // every child is at the gate: open it for all at once
    await Promise.all(ready);
    writeFileSync(gate, '');
    const results = await Promise.all(outputs);
    assert.deepEqual(results, Array(6).fill('0: ok'), `round ${round}`);
    assert.equal(pragma(db, 'user_version'), MIGRATIONS.length);
  }
});

test('split moves each server with its journal and its events', async (t) => {
  const store = tmpStore(t);
  await store.createUpdate(newUpdate('u', 4));
  await store.setUpdateStatus('u', 'pending');
  const [, , s3] = await store.getServers('u');
  await store.addEvent('u', 's3', 'note', 'something about s3');
  await store.beginCommand(s3!, 'probe', 'version');
  await splitUpdate(store, 'u', 2);
  assert.deepEqual((await store.getServers('u.2')).map((s) => s.name), ['s3', 's4']);
  assert.deepEqual((await store.getEvents('u.2')).filter((e) => e.serverName === 's3').map((e) => e.message), ['something about s3']);
  assert.deepEqual((await store.getEvents('u')).filter((e) => e.serverName === 's3'), [], 'no event of s3 is left behind');
  assert.deepEqual((await store.getJournal('u.2', 's3')).map((s) => s.command), ['version']);
});

test('a server keeps every type (migration 3); rows from before it read as [type]', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-store-'));
  const path = join(dir, 'plan.db');
  // a database at schema 2 with one server, as the version before types wrote it
  const old = new Database(path);
  old.transaction(() => {
    for (const m of MIGRATIONS.slice(0, 2)) old.exec(m);
    old.pragma('user_version = 2');
    old.prepare(
      `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, settings_json) VALUES ('old', 'pending', '2026-01-01T00:00:00.000Z', '/r', 'master', ?, '{}')`,
    ).run('c'.repeat(40));
    old.prepare(`INSERT INTO servers (update_name, position, name, host, port, user, type, status) VALUES ('old', 0, 's1', 'h', 22, 'u', 'app', 'pending')`).run();
  })();
  old.close();
  const store = openStore(path);
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  assert.equal(pragma(path, 'user_version'), MIGRATIONS.length);
  assert.deepEqual((await store.getServers('old')).map((s) => [s.type, s.types]), [['app', ['app']]]);
  await store.createUpdate({
    ...newUpdate('new', 2),
    servers: [
      { name: 'a', host: 'ha', port: 22, user: 'u', type: 'web', types: ['web', 'db', 'prod'] },
      { name: 'b', host: 'hb', port: 22, user: 'u', type: 'db' },
    ],
  });
  assert.deepEqual((await store.getServers('new')).map((s) => [s.name, s.type, s.types]), [
    ['a', 'web', ['web', 'db', 'prod']],
    ['b', 'db', ['db']],
  ]);
});

test('how a server is reached (its own identity files, known_hosts, jump hosts) is stored with it, moves with a split, and is absent for the others', async (t) => {
  const store = tmpStore(t);
  const u = newUpdate('reach', 3);
  const jump = [{ host: 'bastion', port: 2222, user: 'ops', identityFiles: ['/keys/bastion'] }, { host: 'inner', port: 22, user: 'ops' }];
  u.servers[1] = { ...u.servers[1]!, identityFiles: ['/keys/s2'], knownHosts: '/kh/s2', jump };
  u.servers[2] = { ...u.servers[2]!, jump: [] };
  await store.createUpdate(u);
  const [s1, s2, s3] = await store.getServers('reach');
  assert.deepEqual([s1!.identityFiles, s1!.knownHosts, s1!.jump], [undefined, undefined, undefined]);
  assert.deepEqual([s2!.identityFiles, s2!.knownHosts, s2!.jump], [['/keys/s2'], '/kh/s2', jump]);
  assert.equal(s3!.jump, undefined, 'no jump hosts stores nothing');
  // what the file holds: no ssh_json at all for a server with nothing of its own
  const raw = withSqliteFile(store.location, (d) => d.prepare('SELECT name, ssh_json FROM servers ORDER BY position').all() as { name: string; ssh_json: string | null }[]);
  assert.deepEqual(raw.map((r) => r.ssh_json === null), [true, false, true]);
  await store.setUpdateStatus('reach', 'pending');
  await splitUpdate(store, 'reach', 2);
  assert.deepEqual((await store.getServers('reach.2')).find((s) => s.name === 's2')?.jump ?? (await store.getServers('reach')).find((s) => s.name === 's2')?.jump, jump);
});

test('migrations 3 and 4 on a schema-2 database: its servers are reached as their update says (no ssh_json)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-store-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'old.db');
  const db = new Database(file);
  for (const m of MIGRATIONS.slice(0, 2)) db.exec(m);
  db.pragma('user_version = 2');
  db.prepare(
    `INSERT INTO updates (name, status, created_at, repo, branch, commit_sha, settings_json) VALUES ('old', 'pending', '2026-01-01T00:00:00Z', '/r', 'master', ?, '{}')`,
  ).run('c'.repeat(40));
  db.prepare(`INSERT INTO servers (update_name, position, name, host, port, user, type, status) VALUES ('old', 0, 's1', 'h1', 22, 'u', 'app', 'pending')`).run();
  db.close();
  const store = openStore(file);
  t.after(() => store.close());
  assert.equal(pragma(file, 'user_version'), MIGRATIONS.length);
  const [s1] = await store.getServers('old');
  assert.deepEqual([s1!.host, s1!.identityFiles, s1!.jump], ['h1', undefined, undefined]);
});
