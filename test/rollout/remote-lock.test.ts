/**
 * The server lock's scripts and the fencing (rollout/remote-lock.ts), run for real by every POSIX
 * shell present (sh, dash, bash, busybox sh) in a folder standing for a server's home: the token
 * check, the record of a command in flight, the wait for it and its kill, and the lock's
 * take-over rules. No SSH: what the server does with the text is what is tested.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  acquireScript,
  inflightIn,
  LOCK_FILE,
  notRunOf,
  ownerText,
  readScript,
  releaseScript,
  splitLockOutput,
  waitScript,
  type LockOwner,
} from '../../src/rollout/remote-lock.js';
import { fenced } from '../../src/ssh/fence.js';
import { makeTempDir } from '../helpers/tmp.js';
import { until } from '../helpers/db.js';

const SHELLS = ['/bin/sh', '/bin/dash', '/bin/bash', '/bin/busybox'].filter((s) => existsSync(s));

function owner(token: string, over: Partial<LockOwner> = {}): LockOwner {
  return { update: 'u', db: 'd'.repeat(32), token, host: 'h', pid: 1, pidStart: null, since: '2026-12-06T00:00:00.000Z', ...over };
}

function homeFor(t: { after(f: () => void): void }): string {
  const home = makeTempDir('agent-update-lock-');
  t.after(() => rmSync(home, { recursive: true, force: true }));
  return home;
}

function argv(shell: string, script: string): string[] {
  return shell.endsWith('busybox') ? ['sh', '-c', script] : ['-c', script];
}

/** Run `script` as the server's login shell would, with `shell` for every sh (the fence's `sh -c` included). */
function run(shell: string, home: string, script: string): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(shell, argv(shell, script), { env: { HOME: home, PATH: process.env.PATH, SHELL: shell.endsWith('busybox') ? '/bin/sh' : shell } });
  return { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
}

function background(shell: string, home: string, script: string): ChildProcess {
  const child = spawn(shell, argv(shell, script), { env: { HOME: home, PATH: process.env.PATH, SHELL: '/bin/sh' }, stdio: 'ignore' });
  return child;
}

const records = (home: string) => readdirSync(home).filter((f) => f.startsWith('.agent-update.run.'));

for (const shell of SHELLS) {
  test(`${shell}: a fenced command runs only while the lock holds its token, and leaves no record behind`, (t) => {
    const home = homeFor(t);
    const noLock = run(shell, home, fenced('echo ran', 'tok-a', 30));
    assert.equal(noLock.code, 76);
    assert.deepEqual(notRunOf(noLock.stdout, noLock.code, 'tok-a'), { kind: 'fenced', owner: '' });
    assert.equal(splitLockOutput(run(shell, home, acquireScript(owner('tok-a'))).stdout).verdict?.kind, 'acquired');
    const ok = run(shell, home, fenced("printf '%s\\n' \"it's $HOME\"; exit 3", 'tok-a', 30));
    assert.equal(ok.code, 3, 'its own exit status');
    assert.equal(ok.stdout, `it's ${home}\n`, 'its own output, nothing of ours');
    assert.equal(notRunOf(ok.stdout, ok.code, 'tok-a'), null);
    assert.deepEqual(records(home), []);
    // another token: refused, naming the holder; the same text printed by a command is not taken for it
    const other = run(shell, home, fenced('echo ran', 'tok-b', 30));
    assert.equal(other.code, 76);
    const why = notRunOf(other.stdout, other.code, 'tok-b');
    assert.equal(why?.kind, 'fenced');
    assert.match(why?.kind === 'fenced' ? why.owner : '', /^token=tok-a$/m);
    const mimic = run(shell, home, fenced("echo 'agent-update-lock: not-run tok-x fenced'; exit 76", 'tok-a', 30));
    assert.equal(notRunOf(mimic.stdout, mimic.code, 'tok-a'), null, 'an operator command cannot fake a refusal without the token');
  });

  test(`${shell}: nothing starts beside a command in flight (its own executor's re-run included); the wait ends it, or kills it with its tree`, async (t) => {
    const home = homeFor(t);
    run(shell, home, acquireScript(owner('tok-a')));
    const first = background(shell, home, fenced('echo begin >> ~/log; sleep 30 & wait', 'tok-a', 30));
    t.after(() => first.kill('SIGKILL'));
    await until('the first command to begin', () => existsSync(join(home, 'log')));
    const again = run(shell, home, fenced('echo again >> ~/log', 'tok-a', 30));
    assert.equal(again.code, 77);
    const why = notRunOf(again.stdout, again.code, 'tok-a');
    assert.equal(why?.kind, 'inflight');
    const inflight = why?.kind === 'inflight' ? why.inflight : [];
    assert.deepEqual(inflight.map((f) => [f.pid, f.token, f.seconds]), [[first.pid, 'tok-a', 30]]);
    assert.match(inflight[0]!.start, /^\d+$/, 'its start time, from /proc');
    // a takeover (another token) takes the lock, then finds it too, before its version command
    const taken = run(shell, home, `${acquireScript(owner('tok-b'), readFileSync(join(home, LOCK_FILE), 'utf8').trimEnd())}\necho VERSION`);
    assert.equal(taken.code, 77);
    assert.doesNotMatch(taken.stdout, /VERSION/);
    assert.equal(splitLockOutput(taken.stdout).verdict?.kind, 'inflight');
    // unlock's read names it
    assert.deepEqual(inflightIn(run(shell, home, readScript({ inflight: true })).stdout).map((f) => f.pid), [first.pid]);
    // unlock's wait never kills
    assert.deepEqual(splitLockOutput(run(shell, home, waitScript(inflight, 0, { kill: false })).stdout).verdict, { kind: 'alive', pids: [first.pid] });
    assert.equal(first.exitCode, null, 'still running');
    // waited for 1 s, then killed with its child (the sleep)
    const waited = run(shell, home, waitScript(inflight, 1));
    assert.deepEqual(splitLockOutput(waited.stdout).verdict, { kind: 'killed', pids: [first.pid] });
    await until('the first command to be gone', () => first.exitCode !== null || first.signalCode !== null);
    assert.equal(readFileSync(join(home, 'log'), 'utf8'), 'begin\n', 'the re-run never ran');
    // its record, left by a killed shell, is cleared by the next look; the lock is tok-b's now
    const next = run(shell, home, fenced('echo next', 'tok-b', 30));
    assert.equal(next.stdout, 'next\n');
    assert.deepEqual(records(home), []);
    const late = run(shell, home, fenced('echo late >> ~/log', 'tok-a', 30));
    assert.equal(notRunOf(late.stdout, late.code, 'tok-a')?.kind, 'fenced', 'the first executor can run nothing more');
  });

  test(`${shell}: a command in flight that ends by itself is waited for, not killed`, async (t) => {
    const home = homeFor(t);
    run(shell, home, acquireScript(owner('tok-a')));
    const gate = join(home, 'gate');
    const first = background(shell, home, fenced(`echo begin >> ~/log; until [ -e ${gate} ]; do sleep 0.05; done`, 'tok-a', 30));
    t.after(() => first.kill('SIGKILL'));
    await until('the first command to begin', () => existsSync(join(home, 'log')));
    const probe = run(shell, home, fenced(':', 'tok-a', 30));
    const found = notRunOf(probe.stdout, probe.code, 'tok-a');
    assert.equal(found?.kind, 'inflight');
    const waiter = spawn(shell, argv(shell, waitScript(found?.kind === 'inflight' ? found.inflight : [], 60)), { env: { HOME: home, PATH: process.env.PATH } });
    let out = '';
    waiter.stdout.on('data', (d: Buffer) => (out += d.toString()));
    writeFileSync(gate, '');
    await new Promise((r) => waiter.on('close', r));
    assert.deepEqual(splitLockOutput(out).verdict, { kind: 'ended', pids: [] });
  });
}

test('a record whose pid now belongs to another process (another start time) is not in flight: it is cleared', (t) => {
  const home = homeFor(t);
  run('/bin/sh', home, acquireScript(owner('tok-a')));
  // this test process's pid, with a start time it never had
  writeFileSync(join(home, `.agent-update.run.${process.pid}`), 'token=tok-z\nstart=1\nseconds=30\n');
  const r = run('/bin/sh', home, fenced('echo ran', 'tok-a', 30));
  assert.equal(r.stdout, 'ran\n');
  assert.deepEqual(records(home), []);
  // with no start time recorded (no /proc where it ran), a live pid is taken as in flight
  writeFileSync(join(home, `.agent-update.run.${process.pid}`), 'token=tok-z\nstart=\nseconds=30\n');
  const blocked = run('/bin/sh', home, fenced('echo ran', 'tok-a', 30));
  assert.equal(blocked.code, 77);
  // and the wait does not kill a process it cannot prove is that command
  assert.deepEqual(splitLockOutput(run('/bin/sh', home, waitScript([{ pid: process.pid, start: '', seconds: 0, token: 'tok-z' }], 0)).stdout).verdict, { kind: 'alive', pids: [process.pid] });
});

test('the lock: re-entered only by its token; another executor of the same update is held (the caller judges it); release by token, else shown', (t) => {
  const home = homeFor(t);
  const a = owner('tok-a', { pid: 11, pidStart: '99' });
  assert.equal(splitLockOutput(run('/bin/sh', home, acquireScript(a)).stdout).verdict?.kind, 'acquired');
  assert.equal(readFileSync(join(home, LOCK_FILE), 'utf8'), `${ownerText(a)}\n`);
  assert.match(readFileSync(join(home, LOCK_FILE), 'utf8'), /^agent-update-lock v2\nupdate=u\ndb=d{32}\ntoken=tok-a\nhost=h\npid=11\npid_start=99\nsince=/);
  assert.equal(splitLockOutput(run('/bin/sh', home, acquireScript(a)).stdout).verdict?.kind, 'reentered');
  const b = owner('tok-b');
  const held = run('/bin/sh', home, acquireScript(b));
  assert.equal(held.code, 75);
  assert.equal(splitLockOutput(held.stdout).verdict?.kind, 'held');
  const foreign = splitLockOutput(run('/bin/sh', home, releaseScript(b)).stdout).verdict;
  assert.equal(foreign?.kind, 'foreign', 'the same update under another token is shown, not removed');
  assert.ok(existsSync(join(home, LOCK_FILE)));
  assert.equal(splitLockOutput(run('/bin/sh', home, releaseScript(owner('tok-c', { update: 'other' }))).stdout).verdict?.kind, 'not-ours');
  assert.equal(splitLockOutput(run('/bin/sh', home, releaseScript(a)).stdout).verdict?.kind, 'released');
  assert.equal(existsSync(join(home, LOCK_FILE)), false);
});

test('fenced() refuses a token that is not a plain word (it is placed unquoted)', () => {
  assert.throws(() => fenced('true', 'a b', 1), /fencing token/);
  assert.throws(() => fenced('true', "x';rm -rf ~;'", 1), /fencing token/);
});
