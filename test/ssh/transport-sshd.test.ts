/**
 * Ssh2Transport against a real OpenSSH sshd started by this test (skipped when sshd is not
 * installed, unless REQUIRE_SSHD=1).
 */
import { strict as assert } from 'node:assert';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import { fingerprintSha256 } from '../../src/ssh/known-hosts.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import type { Session } from '../../src/ssh/transport.js';
import { execFileP, hashKnownHosts, makeUserKey, server, sshConfig, sshdUnavailable, startAgent, startSshd, tempDir, rejection, writeKnownHosts } from './helpers.js';
import type { KeyPair, Sshd } from './helpers.js';

const ENV = 'AGENT_UPDATE_TEST_PASSPHRASE';
const PASSPHRASE = "pa ss'phrase-7";
const tmp = tempDir('au-sshd-');
let sshd: Sshd | null = null;
let skipReason: string | null = null;
let key: KeyPair;
let enc: KeyPair;
let agentKey: KeyPair;
const transport = new Ssh2Transport();

before(async () => {
  skipReason = sshdUnavailable();
  if (skipReason) return;
  key = await makeUserKey(tmp.dir, 'id_plain');
  enc = await makeUserKey(tmp.dir, 'id_enc', PASSPHRASE);
  agentKey = await makeUserKey(tmp.dir, 'id_agent');
  try {
    sshd = await startSshd(tmp.dir, [key.publicLine, enc.publicLine, agentKey.publicLine]);
  } catch (err) {
    skipReason = `could not start sshd: ${String(err)}`;
  }
});

after(async () => {
  transport.close();
  await sshd?.stop();
  delete process.env[ENV];
  tmp.remove();
});

/** Skip (or fail with REQUIRE_SSHD=1) when there is no sshd; returns the sshd otherwise. */
function need(t: TestContext): Sshd | null {
  if (sshd) return sshd;
  const why = skipReason ?? 'sshd not started';
  if (process.env.REQUIRE_SSHD === '1') assert.fail(`REQUIRE_SSHD=1 but ${why}`);
  t.skip(why);
  return null;
}

const knownHosts = (...lines: string[]): string => writeKnownHosts(tmp.dir, ...lines);

function cfg(d: Sshd, overrides: Partial<SshConfig> = {}): SshConfig {
  return sshConfig({ knownHosts: knownHosts(d.hostKeyLine), identityFile: key.privateFile, ...overrides });
}

function hostKeyBlob(d: Sshd): Buffer {
  return Buffer.from(d.hostKeyLine.split(' ')[2] ?? '', 'base64');
}

describe('real sshd: exec', () => {
  let session: Session | null = null;
  const open = async (d: Sshd) => (session ??= await transport.connect(server(d.host, d.port), cfg(d)));

  test('exit codes and output', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await open(d);
    const r = await s.exec('echo out; echo err >&2; exit 7');
    assert.deepEqual([r.code, r.stdout, r.stderr, r.timedOut, r.error], [7, 'out\n', 'err\n', false, null]);
    assert.equal((await s.exec('true')).code, 0);
    assert.equal((await s.exec('false')).code, 1);
  });

  test('several commands reuse one connection', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await open(d);
    const accepted = () => (d.log().match(/Accepted publickey/g) ?? []).length;
    const before = accepted();
    for (let i = 0; i < 6; i++) assert.equal((await s.exec(`echo ${i}`)).stdout, `${i}\n`);
    assert.equal(accepted(), before);
  });

  test('output cap keeps the tail', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await transport.connect(server(d.host, d.port), cfg(d, { outputLimitBytes: 500 }));
    const r = await s.exec('seq 1 100000');
    assert.equal(r.code, 0);
    assert.ok(Buffer.byteLength(r.stdout) <= 500);
    assert.ok(r.stdout.endsWith('99999\n100000\n'));
    s.close();
  });

  test('a quoted value survives', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await open(d);
    const r = await s.exec(`printf '%s\\n' 'O'\\''Brien said "hi" $USER; rm -rf /nope'`);
    assert.equal(r.stdout, 'O\'Brien said "hi" $USER; rm -rf /nope\n');
  });

  test('command timeout resolves and the session is still usable', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await open(d);
    const tag = `au-timeout-${process.pid}-${Date.now()}`;
    const started = Date.now();
    const r = await s.exec(`sleep 5; echo ${tag}`, { timeoutMs: 500 });
    assert.equal(r.code, null);
    assert.equal(r.timedOut, true);
    assert.equal(r.error, 'timed out after 500ms; killed on the server, with everything it started');
    assert.ok(Date.now() - started < 4500, 'back before the 5 s command could have ended');
    const again = await s.exec('echo alive');
    assert.equal(again.code, 0);
    assert.equal(again.stdout, 'alive\n');
  });

  test('connection dying mid-command → connection lost, then fail fast', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await transport.connect(server(d.host, d.port), cfg(d, { keepaliveIntervalMs: 60_000 }));
    // kill the sshd process serving this session (the nearest sshd above the command): the TCP
    // connection goes with it
    const r = await s.exec(
      'p=$$; while [ "$(ps -o comm= -p "$p")" != sshd ] && [ "$p" -gt 1 ]; do p=$(ps -o ppid= -p "$p" | tr -d " "); done; kill -9 "$p"; sleep 5',
      { timeoutMs: 10_000 },
    );
    assert.equal(r.code, null);
    assert.equal(r.timedOut, false);
    assert.match(r.error ?? '', /^connection lost/);
    const later = await s.exec('echo x');
    assert.match(later.error ?? '', /^not connected/);
  });
});

describe('real sshd: host keys', () => {
  test('unknown host key → host-key-unknown, nothing ran', async (t) => {
    const d = need(t);
    if (!d) return;
    const marker = join(tmp.dir, 'ran-unknown');
    // a plain `127.0.0.1` entry is for port 22 only: this server is unknown
    const kh = knownHosts(d.hostKeyLine.replace(/^\[127\.0\.0\.1\]:\d+/, '127.0.0.1'));
    const err = await rejection(
      transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })).then((s) => s.exec(`touch ${marker}`)),
    );
    assert.equal(err.kind, 'host-key-unknown');
    assert.ok(err.message.includes(fingerprintSha256(hostKeyBlob(d))), err.message);
    assert.ok(err.message.includes(kh));
    assert.equal(existsSync(marker), false);
  });

  test('mismatched host key → host-key-mismatch, nothing ran', async (t) => {
    const d = need(t);
    if (!d) return;
    const other = await makeUserKey(tmp.dir, 'fake_host_key');
    const [type, b64] = other.publicLine.split(' ');
    const kh = knownHosts(`[${d.host}]:${d.port} ${type} ${b64}`);
    const marker = join(tmp.dir, 'ran-mismatch');
    const err = await rejection(
      transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })).then((s) => s.exec(`touch ${marker}`)),
    );
    assert.equal(err.kind, 'host-key-mismatch');
    assert.ok(err.message.includes(`ssh-keygen -R '[${d.host}]:${d.port}'`), err.message);
    assert.equal(existsSync(marker), false);
  });

  test('a known_hosts file changed between connections is read again: the key trusted, then a changed key refused', async (t) => {
    const d = need(t);
    if (!d) return;
    const other = await makeUserKey(tmp.dir, 'fake_host_key_2');
    const [type, b64] = other.publicLine.split(' ');
    const kh = knownHosts(d.hostKeyLine.replace(/^\[127\.0\.0\.1\]:\d+/, '127.0.0.1'));
    assert.equal((await rejection(transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })))).kind, 'host-key-unknown');
    // the operator adds the key (after checking it): the next connection trusts it
    writeFileSync(kh, d.hostKeyLine + '\n');
    const s = await transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh }));
    assert.equal((await s.exec('echo ok')).stdout, 'ok\n');
    s.close();
    // then the entry is replaced by another key of the same length: refused, whatever was read before
    writeFileSync(kh, `[${d.host}]:${d.port} ${type} ${b64}\n`);
    assert.equal((await rejection(transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })))).kind, 'host-key-mismatch');
  });

  test('host known only with another key type → mismatch naming the type', async (t) => {
    const d = need(t);
    if (!d) return;
    const other = await makeUserKey(tmp.dir, 'fake_ecdsa_host_key', '', 'ecdsa');
    const [type, b64] = other.publicLine.split(' ');
    const kh = knownHosts(`[${d.host}]:${d.port} ${type} ${b64}`);
    const err = await rejection(transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })));
    assert.equal(err.kind, 'host-key-mismatch');
    assert.ok(err.message.includes(`only has ${type}`), err.message);
  });

  test('revoked key refused', async (t) => {
    const d = need(t);
    if (!d) return;
    const [, type, b64] = d.hostKeyLine.split(' ');
    const kh = knownHosts(d.hostKeyLine, `@revoked * ${type} ${b64}`);
    const err = await rejection(transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh })));
    assert.equal(err.kind, 'host-key-mismatch');
    assert.match(err.message, /REVOKED/);
  });

  test('hashed [host]:port entry (ssh-keygen -H) accepted', async (t) => {
    const d = need(t);
    if (!d) return;
    const kh = knownHosts('# fleet', d.hostKeyLine);
    await hashKnownHosts(kh);
    assert.match(readFileSync(kh, 'utf8'), /^\|1\|/m);
    const s = await transport.connect(server(d.host, d.port), cfg(d, { knownHosts: kh }));
    assert.equal((await s.exec('echo ok')).stdout, 'ok\n');
    s.close();
  });

  test('our known_hosts handling agrees with OpenSSH ssh', async (t) => {
    const d = need(t);
    if (!d) return;
    const kh = knownHosts(d.hostKeyLine);
    await hashKnownHosts(kh);
    // OpenSSH itself accepts the same hashed file (BatchMode: no prompt, StrictHostKeyChecking=yes)
    const { stdout } = await execFileP('ssh', [
      '-o', 'BatchMode=yes', '-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${kh}`,
      '-o', 'GlobalKnownHostsFile=/dev/null', '-i', key.privateFile, '-p', String(d.port), d.host, 'echo openssh',
    ]);
    assert.equal(stdout, 'openssh\n');
  });
});

describe('real sshd: authentication', () => {
  test('encrypted identity file, passphrase from the env var', async (t) => {
    const d = need(t);
    if (!d) return;
    process.env[ENV] = PASSPHRASE;
    try {
      const s = await transport.connect(server(d.host, d.port), cfg(d, { identityFile: enc.privateFile }));
      assert.equal((await s.exec('echo enc')).stdout, 'enc\n');
      s.close();
    } finally {
      delete process.env[ENV];
    }
  });

  test('missing passphrase → auth naming the env var', async (t) => {
    const d = need(t);
    if (!d) return;
    delete process.env[ENV];
    const err = await rejection(transport.connect(server(d.host, d.port), cfg(d, { identityFile: enc.privateFile })));
    assert.equal(err.kind, 'auth');
    assert.ok(err.message.includes(ENV), err.message);
  });

  test('wrong passphrase → auth without the passphrase in the message', async (t) => {
    const d = need(t);
    if (!d) return;
    const wrong = 'Wr0ng-Passphrase!';
    process.env[ENV] = wrong;
    try {
      const err = await rejection(transport.connect(server(d.host, d.port), cfg(d, { identityFile: enc.privateFile })));
      assert.equal(err.kind, 'auth');
      assert.ok(!err.message.includes(wrong));
      assert.ok(!err.message.includes(PASSPHRASE));
    } finally {
      delete process.env[ENV];
    }
  });

  test('key not authorized → auth', async (t) => {
    const d = need(t);
    if (!d) return;
    const stranger = await makeUserKey(tmp.dir, 'id_stranger');
    const err = await rejection(transport.connect(server(d.host, d.port), cfg(d, { identityFile: stranger.privateFile })));
    assert.equal(err.kind, 'auth');
    assert.match(err.message, /authentication .* failed/);
  });

  test('ssh-agent', async (t) => {
    const d = need(t);
    if (!d) return;
    const agent = await startAgent(tmp.dir, agentKey.privateFile);
    if (!agent) {
      t.skip('ssh-agent is not installed');
      return;
    }
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = agent.sock;
    try {
      const s = await transport.connect(server(d.host, d.port), cfg(d, { identityFile: null, agent: true }));
      assert.equal((await s.exec('echo via-agent')).stdout, 'via-agent\n');
      s.close();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      await agent.stop();
    }
  });
});

describe('real sshd: a command that times out or is abandoned dies on the server, with what it started', () => {
  /** this machine's processes whose command line contains `tag` (the fleet is on loopback: the server is here) */
  const leftovers = (tag: string) =>
    execFileSync('ps', ['-A', '-o', 'pid=,args='], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes(tag) && !l.includes('ps -A'));
  /** the supervisor's kill takes a second (TERM, then KILL): look until it is done, bounded */
  async function noneLeft(tag: string): Promise<string[]> {
    for (let i = 0; i < 100; i++) {
      const left = leftovers(tag);
      if (left.length === 0) return [];
      await new Promise((r) => setTimeout(r, 50));
    }
    return leftovers(tag);
  }

  test('past its timeout: killed (as root, where sshd refuses signals), children and a TERM-ignoring grandchild too', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await transport.connect(server(d.host, d.port), cfg(d));
    const tag = `au-left-${process.pid}-${Date.now()}`;
    const r = await s.exec(`sh -c 'trap "" TERM; sleep 301; : ${tag}-a' & sleep 302 && echo ${tag}-b; : ${tag}-c`, { timeoutMs: 1000 });
    assert.equal(r.timedOut, true);
    assert.equal(r.code, null);
    assert.match(r.error ?? '', /killed on the server, with everything it started/);
    assert.doesNotMatch(r.stderr, /agent-update-run/, 'the supervisor\'s own lines are not in the output');
    assert.deepEqual(await noneLeft(tag), [], 'no process of the command is left on the server');
    assert.equal((await s.exec('echo alive')).stdout, 'alive\n', 'the connection is still good');
    s.close();
  });

  test('abandoned by the executor (an interrupt): the closed channel kills it', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await transport.connect(server(d.host, d.port), cfg(d));
    const tag = `au-abandoned-${process.pid}-${Date.now()}`;
    const ac = new AbortController();
    const running = s.exec(`sleep 303; : ${tag}`, { timeoutMs: 600_000, signal: ac.signal });
    for (let i = 0; i < 200 && leftovers(tag).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    assert.ok(leftovers(tag).length > 0, 'the command is running');
    ac.abort();
    assert.equal((await running).error, 'aborted');
    assert.deepEqual(await noneLeft(tag), [], 'killed on the server once the channel closed');
    s.close();
  });

  test('a command that ends by itself leaves nothing behind either (the watchdogs go with it)', async (t) => {
    const d = need(t);
    if (!d) return;
    const s = await transport.connect(server(d.host, d.port), cfg(d));
    // A timeout no other run of this suite uses at the same time (test runs may go side by side
    // on one machine, and this looks at every process): the watchdog sleeps exactly that long.
    const seconds = 100_000 + Math.floor(Math.random() * 800_000);
    const r = await s.exec('echo done', { timeoutMs: seconds * 1000 });
    assert.equal(r.stdout, 'done\n');
    assert.deepEqual(await noneLeft(`sleep ${seconds}`), [], 'the timeout watchdog\'s sleep is gone');
    s.close();
  });
});
