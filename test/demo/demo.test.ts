/**
 * `agent-update demo` end to end, as a newcomer runs it: the real CLI in its own process, with
 * no OpenSSH anywhere on its PATH (the simulated servers are in-process ssh2 servers).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { byName, cli, printed, spawnCli, statusJson, type StatusDoc } from '../helpers/cli.js';
import { tempDirFor } from '../helpers/tmp.js';

const SSH_BINARIES = /^(ssh|sshd|ssh-.*|scp|sftp|sftp-server)$/;

function tempDir(t: TestContext): string {
  return tempDirFor(t, 'au-demo-test-');
}

/**
 * A PATH holding links to every program of ours except the OpenSSH ones (ssh, sshd, scp, …),
 * so the demo provably runs without them; git, sh tools and node stay reachable.
 */
function pathWithoutSsh(root: string): string {
  const bin = join(root, 'bin-no-ssh');
  mkdirSync(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  for (const dir of (process.env.PATH ?? '/usr/bin:/bin').split(delimiter)) {
    if (dir === '' || dir.endsWith('sbin')) continue;
    let names: string[];
    try {
      names = readdirSync(dir);
    } catch {
      continue;
    }
    for (const name of names) {
      if (SSH_BINARIES.test(name) || existsSync(join(bin, name))) continue;
      symlinkSync(join(dir, name), join(bin, name));
    }
  }
  return bin;
}

/** The demo's "folder" line: where it built the fleet. */
function demoFolder(stdout: string): string {
  const m = /^ {2}folder {4}(\S+)/m.exec(stdout);
  assert.ok(m?.[1], `no folder line in:\n${stdout}`);
  return m[1];
}

test('demo: master to every server, then broken rolled back on the first; no sshd or ssh on PATH, temp folder removed', async (t) => {
  const root = tempDir(t);
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  const db = join(root, 'd.db');
  const PATH = pathWithoutSsh(root);
  assert.ok(!existsSync(join(PATH, 'ssh')) && !existsSync(join(PATH, 'sshd')));

  const r = await cli(['demo'], { db, env: { PATH, TMPDIR: tmp }, timeoutMs: 120_000 });
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.equal(r.stderr, '');

  // What a newcomer reads: both plans and rollouts, the outcome of each server, the way on.
  assert.match(r.stdout, /probe demo-3: skipped/);
  assert.match(r.stdout, /✓ demo-1 success/);
  assert.match(r.stdout, /demo-master success: all 5 servers at the target/);
  assert.match(r.stdout, /✗ demo-1 rolled-back/);
  assert.match(r.stdout, /demo-broken failure: stopped: server demo-1 was rolled back/);
  assert.match(r.stdout, /What just happened/);
  // the hints start the way this binary was run (util/invocation.ts): on the PATH, or its path
  const self = `(?:agent-update|\\S*bin/agent-update\\.js)`;
  const quoted = db.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  assert.match(r.stdout, new RegExp(`^ +${self} --db ${quoted} status demo-broken`, 'm'));
  assert.match(r.stdout, new RegExp(`^ +${self} --db ${quoted} logs demo-broken --server demo-1`, 'm'));
  assert.doesNotMatch(r.stdout, /PRIVATE KEY/);

  // The fleet lived in a temp folder, gone now; the database given with --db stays.
  const folder = demoFolder(r.stdout);
  assert.ok(folder.startsWith(tmp), folder);
  assert.equal(existsSync(folder), false, `${folder} is still there`);
  assert.deepEqual(readdirSync(tmp), []);

  const master = await statusJson(db, 'demo-master');
  assert.equal(master.status, 'success');
  assert.deepEqual(master.counts, { total: 5, success: 4, skipped: 1 });
  assert.equal(byName(master)['demo-3']?.status, 'skipped');
  const good = master.source.commit;

  const broken = await statusJson(db, 'demo-broken');
  assert.equal(broken.status, 'failure');
  assert.equal(broken.source.branch, 'broken');
  assert.deepEqual(broken.counts, { total: 5, 'rolled-back': 1, pending: 4 });
  const first = byName(broken)['demo-1'];
  assert.equal(first?.status, 'rolled-back');
  assert.equal(first?.fromCommit, good);
  assert.match(first?.error ?? '', /not online/);

  const logs = await cli(['logs', 'demo-broken', '--server', 'demo-1'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /\[rollback\]/);
});

test('demo --json --dir: JSON only on stdout, the folder is kept with a config plan can load, and can be reused', async (t) => {
  const root = tempDir(t);
  const dir = join(root, 'demo');
  const r = await cli(['--json', 'demo', '--servers', '2', '--dir', dir, '--no-rollback-demo'], { timeoutMs: 60_000 });
  assert.equal(r.code, 0, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  const doc = JSON.parse(r.stdout) as { updates: StatusDoc[] };
  assert.deepEqual(
    doc.updates.map((u) => [u.name, u.status, u.counts]),
    [['demo-master', 'success', { total: 2, skipped: 1, success: 1 }]],
  );
  assert.match(r.stderr, /demo-master success/); // progress went to stderr

  // The kept folder: a config an operator can load as is, and the database next to it.
  const config = loadConfig(join(dir, 'rollout.yaml'));
  assert.deepEqual(config.servers.map((s) => s.name), ['demo-1', 'demo-2']);
  assert.equal(config.ssh.identityFile, join(dir, 'ssh', 'id_ed25519'));
  assert.equal(loadConfig(join(dir, 'rollout-broken.yaml')).agent.health.timeoutMs, 3000);
  assert.equal((await statusJson(join(dir, 'agent-update.db'), 'demo-master')).status, 'success');

  // A second run on the same folder starts afresh.
  const again = await cli(['demo', '--servers', '1', '--dir', dir, '--no-rollback-demo'], { timeoutMs: 60_000 });
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /demo-master success: its one server at the target/);
});

test('demo: Ctrl-C stops it at once and removes the temp folder (exit 130)', async (t) => {
  const root = tempDir(t);
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  const db = join(root, 'd.db');
  const child = spawnCli(['demo'], { db, env: { TMPDIR: tmp }, timeoutMs: 60_000 });
  const out = await printed(child, 'stdout', /\[1\/\d+\] demo-1/);
  const folder = demoFolder(out);
  assert.ok(existsSync(folder));
  child.kill('SIGINT');
  const r = await child;
  assert.equal(r.exitCode, 130, `${String(r.stdout)}\n${String(r.stderr)}`);
  assert.match(String(r.stderr), /interrupted/);
  assert.equal(existsSync(folder), false, `${folder} is still there`);
  assert.deepEqual(readdirSync(tmp), []);
  // It stopped where it was, in the first rollout: left running for a takeover, the second never planned.
  const list = await cli(['status', '--json'], { db });
  assert.equal(list.code, 0, list.stderr);
  const updates = (JSON.parse(list.stdout) as { updates: Array<{ name: string; status: string }> }).updates;
  assert.deepEqual(updates.map((u) => [u.name, u.status]), [['demo-master', 'running']]);
});

test('demo: bad --servers or a foreign --dir is a usage error (exit 2) and leaves nothing behind', async (t) => {
  const root = tempDir(t);
  const tmp = join(root, 'tmp');
  mkdirSync(tmp);
  for (const n of ['0', '21', 'five']) {
    const r = await cli(['demo', '--servers', n], { env: { TMPDIR: tmp } });
    assert.equal(r.code, 2, `--servers ${n}: ${r.stderr}`);
    assert.match(r.stderr, /--servers/);
  }
  const foreign = join(root, 'mine');
  mkdirSync(foreign);
  writeFileSync(join(foreign, 'notes.txt'), 'keep me\n');
  const r = await cli(['demo', '--dir', foreign], { env: { TMPDIR: tmp } });
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /not empty/);
  assert.deepEqual(readdirSync(foreign), ['notes.txt']);
  assert.deepEqual(readdirSync(tmp), []);
});

test('demo refuses, before making anything, a folder its upstream path could not be source.repo in (a space, a quote)', async (t) => {
  const root = tempDir(t);
  for (const [args, env, where] of [
    [['--dir', join(root, 'my demo')], {}, '--dir'],
    [['--dir', join(root, "it's")], {}, '--dir'],
    [[], { TMPDIR: join(root, 'tmp dir') }, 'the temp folder'],
  ] as const) {
    if ('TMPDIR' in env) mkdirSync(env.TMPDIR);
    const r = await cli(['demo', ...args], { db: join(root, 'd.db'), env: { ...env }, timeoutMs: 30_000 });
    assert.equal(r.code, 2, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`^agent-update: ${where}.* cannot hold the demo: its upstream repository there would be refused as source\\.repo \\(must not contain`));
    if (args.length) assert.ok(!existsSync(args[1]!), 'no folder was made');
  }
  assert.deepEqual(readdirSync(root).sort(), ['tmp dir'], 'nothing else was made');
});
