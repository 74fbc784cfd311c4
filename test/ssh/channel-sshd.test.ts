/**
 * The command loop (src/ssh/channel.ts) against a real OpenSSH sshd: every command of a session
 * through one SSH session (channel), its output intact, timeouts and a dead executor still
 * killing the command's tree, and the fallback to one exec per command where the loop is refused.
 */
import { strict as assert } from 'node:assert';
import { execFileSync, spawn } from 'node:child_process';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import type { Ssh2Session } from '../../src/ssh/session.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { makeUserKey, server, sshConfig, sshdUnavailable, startSshd, tempDir, writeKnownHosts } from './helpers.js';
import type { KeyPair, Sshd } from './helpers.js';

const tmp = tempDir('au-chan-');
let sshd: Sshd | null = null;
/** an sshd whose ForceCommand refuses the command loop and runs every other command */
let refusing: Sshd | null = null;
let skipReason: string | null = null;
let key: KeyPair;
const transport = new Ssh2Transport();

before(async () => {
  skipReason = sshdUnavailable();
  if (skipReason) return;
  key = await makeUserKey(tmp.dir, 'id_chan');
  const force = join(tmp.dir, 'force-command');
  writeFileSync(
    force,
    [
      '#!/bin/sh',
      'case "$SSH_ORIGINAL_COMMAND" in *agent-update-loop*) echo "refused: no command loops here" >&2; exit 1;; esac',
      'exec /bin/sh -c "$SSH_ORIGINAL_COMMAND"',
      '',
    ].join('\n'),
  );
  chmodSync(force, 0o755);
  try {
    const a = tempDir('au-chan-a-');
    const b = tempDir('au-chan-b-');
    sshd = await startSshd(a.dir, [key.publicLine], ['LogLevel DEBUG1']);
    refusing = await startSshd(b.dir, [key.publicLine], [`ForceCommand ${force}`]);
  } catch (err) {
    skipReason = `could not start sshd: ${String(err)}`;
  }
});

after(async () => {
  transport.close();
  await sshd?.stop();
  await refusing?.stop();
  tmp.remove();
});

function need(t: TestContext): { sshd: Sshd; refusing: Sshd } | null {
  if (sshd && refusing) return { sshd, refusing };
  const why = skipReason ?? 'sshd not started';
  if (process.env.REQUIRE_SSHD === '1') assert.fail(`REQUIRE_SSHD=1 but ${why}`);
  t.skip(why);
  return null;
}

function cfg(d: Sshd, overrides: Partial<SshConfig> = {}): SshConfig {
  return sshConfig({ knownHosts: writeKnownHosts(tmp.dir, d.hostKeyLine), identityFile: key.privateFile, ...overrides });
}

async function open(d: Sshd, overrides: Partial<SshConfig> = {}): Promise<Ssh2Session> {
  return (await transport.connect(server(d.host, d.port), cfg(d, overrides))) as Ssh2Session;
}

/** SSH sessions (channels) the sshd was asked to open so far (LogLevel DEBUG1 logs each) */
const sessionsOpened = (d: Sshd) => (d.log().match(/server_input_channel_open: ctype session/g) ?? []).length;

/** this machine's processes whose command line contains `tag` (the sshd is on loopback: the server is here) */
const leftovers = (tag: string) =>
  execFileSync('ps', ['-A', '-o', 'pid=,args='], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(tag) && !l.includes('ps -A'));

async function waitFor(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (ok()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`never: ${what}`);
}

describe('real sshd: one session per server', () => {
  test('many commands, one SSH session: counted by us and by sshd', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const s = await open(d);
    const before = sessionsOpened(d);
    for (let i = 0; i < 25; i++) {
      const r = await s.exec(`echo step-${i}; echo err-${i} >&2; exit ${i % 3}`);
      assert.deepEqual([r.code, r.stdout, r.stderr, r.error], [i % 3, `step-${i}\n`, `err-${i}\n`, null]);
    }
    assert.equal(s.channelsOpened, 1, 'one channel for 25 commands');
    assert.equal(s.fallback, null);
    await waitFor('sshd logged the session', () => sessionsOpened(d) - before >= 1);
    assert.equal(sessionsOpened(d) - before, 1, 'sshd opened one session for 25 commands');
    s.close();
  });

  test('output edge cases: binary, no final newline, a line that looks like a frame, a command looking for the token', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const s = await open(d);
    const bin = await s.exec(`printf '\\000\\001\\303\\251\\377x'; printf 'no-newline' >&2`);
    assert.equal(bin.code, 0);
    assert.equal(bin.stdout, Buffer.from([0, 1, 0xc3, 0xa9, 0xff, 0x78]).toString('utf8'));
    assert.equal(bin.stderr, 'no-newline');
    // What the loop's own frames look like, with made-up tokens, and everything the command can
    // see of its parent (its argv and environment): none of it is taken for the end.
    const fake = await s.exec(
      `printf '%s ready\\n%s 0 exit -\\n' 0123456789abcdef0123456789abcdef 0123456789abcdef0123456789abcdef; ` +
        `printf '%s 0 exit -\\n' 0123456789abcdef0123456789abcdef >&2; ` +
        `cat /proc/$PPID/cmdline /proc/$PPID/environ 2>/dev/null | tr '\\000' ' '; env; exit 4`,
    );
    assert.equal(fake.code, 4);
    assert.match(fake.stdout, /^0123456789abcdef0123456789abcdef ready\n0123456789abcdef0123456789abcdef 0 exit -\n/);
    assert.match(fake.stdout, /agent-update-loop/, 'the parent it could see is the loop');
    assert.equal(fake.stderr, '0123456789abcdef0123456789abcdef 0 exit -\n');
    const multi = await s.exec("printf '%s|' \"a\nb\" 'c\\\\d' '  lead'\nprintf 'second line\\n'\n");
    assert.equal(multi.stdout, 'a\nb|c\\\\d|  lead|second line\n', 'a command with newlines, backslashes, leading blanks, a final newline');
    assert.equal(s.channelsOpened, 1);
    s.close();
  });

  test('huge output is capped to its tail, and the next command is not disturbed', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const s = await open(d, { outputLimitBytes: 1000 });
    const r = await s.exec('seq 1 300000; seq 1 100000 >&2');
    assert.equal(r.code, 0);
    assert.ok(Buffer.byteLength(r.stdout) <= 1000, `stdout is ${Buffer.byteLength(r.stdout)} bytes`);
    assert.ok(r.stdout.endsWith('299999\n300000\n'));
    assert.ok(Buffer.byteLength(r.stderr) <= 1000);
    assert.ok(r.stderr.endsWith('99999\n100000\n'));
    const next = await s.exec('echo next');
    assert.deepEqual([next.code, next.stdout, next.stderr], [0, 'next\n', '']);
    assert.equal(s.channelsOpened, 1);
    s.close();
  });

  test('a timeout kills the tree and the loop goes on in the same session', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const s = await open(d);
    const tag = `au-chan-timeout-${process.pid}-${Date.now()}`;
    const r = await s.exec(`sh -c 'trap "" TERM; sleep 311; : ${tag}' & sleep 312; : ${tag}`, { timeoutMs: 1000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.error, 'timed out after 1s; killed on the server, with everything it started');
    await waitFor('the tree is gone', () => leftovers(tag).length === 0);
    const after = await s.exec('kill -TERM $$');
    assert.equal(after.error, 'killed by signal TERM');
    assert.equal((await s.exec('echo alive')).stdout, 'alive\n');
    assert.equal(s.channelsOpened, 1, 'still the one channel');
    s.close();
  });

  test('quick commands leave no timer behind, however soon they end (sessions at once, for load)', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    // a timeout no other run uses: its timer shows in ps as `agent-update-timer SECONDS`
    const seconds = 100_000 + Math.floor(Math.random() * 800_000);
    const sessions = await Promise.all([1, 2, 3].map(() => open(d)));
    await Promise.all(
      sessions.map(async (s) => {
        for (let i = 0; i < 100; i++) assert.equal((await s.exec('true', { timeoutMs: seconds * 1000 })).code, 0);
      }),
    );
    const left = () => leftovers(`agent-update-timer ${seconds}`).filter((l) => !l.includes('<defunct>'));
    await waitFor('no timer is left', () => left().length === 0);
    for (const s of sessions) {
      assert.equal(s.channelsOpened, 1);
      s.close();
    }
  });

  test('closing the session ends the loop on the server; nothing of it is left', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const s = await open(d);
    const tag = `au-chan-idle-${process.pid}-${Date.now()}`;
    // the loop's own command line does not carry the tag: find it through the command's parent
    const r = await s.exec(`echo $PPID; : ${tag}`);
    const loopPid = Number(r.stdout.trim());
    assert.match(execFileSync('ps', ['-o', 'args=', '-p', String(loopPid)], { encoding: 'utf8' }), /agent-update-loop/);
    s.close();
    await waitFor('the loop has ended', () => {
      try {
        process.kill(loopPid, 0);
        return false;
      } catch {
        return true;
      }
    });
  });

  test('the executor killed with -9 mid-command: the command and its tree die on the server', async (t) => {
    const d = need(t)?.sshd;
    if (!d) return;
    const tag = `au-chan-kill9-${process.pid}-${Date.now()}`;
    const script = join(tmp.dir, 'executor.mjs');
    const mod = new URL('../../src/ssh/ssh2-transport.js', import.meta.url).href;
    writeFileSync(
      script,
      `const { Ssh2Transport } = await import(${JSON.stringify(mod)});\n` +
        `const [spec, ssh, command] = JSON.parse(process.argv[2]);\n` +
        `const s = await new Ssh2Transport().connect(spec, ssh);\n` +
        `process.stdout.write('connected\\n');\n` +
        `await s.exec(command, { timeoutMs: 600000 });\n`,
    );
    const args = JSON.stringify([server(d.host, d.port), cfg(d), `sh -c 'sleep 321; : ${tag}-a' & sleep 322; : ${tag}-b`]);
    const child = spawn(process.execPath, [script, args], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      await waitFor('the command runs', () => leftovers(tag).length >= 2);
      child.kill('SIGKILL');
      await waitFor('nothing of the command is left', () => leftovers(tag).length === 0);
    } finally {
      child.kill('SIGKILL');
    }
  });
});

describe('real sshd: where the loop is refused, one exec per command', () => {
  test('a ForceCommand that refuses it: the commands still run, each on its own exec, with the supervisor', async (t) => {
    const d = need(t)?.refusing;
    if (!d) return;
    const s = await open(d);
    const r = await s.exec('echo one; exit 3');
    assert.deepEqual([r.code, r.stdout, r.stderr], [3, 'one\n', '']);
    assert.match(s.fallback ?? '', /closed before the handshake/);
    for (let i = 0; i < 3; i++) assert.equal((await s.exec(`echo ${i}`)).stdout, `${i}\n`);
    assert.equal(s.channelsOpened, 1 + 4, 'the refused loop once, then one channel per command');
    const tag = `au-chan-fallback-${process.pid}-${Date.now()}`;
    const slow = await s.exec(`sleep 331; : ${tag}`, { timeoutMs: 1000 });
    assert.equal(slow.error, 'timed out after 1s; killed on the server, with everything it started');
    await waitFor('killed on the server', () => leftovers(tag).length === 0);
    s.close();
  });
});
