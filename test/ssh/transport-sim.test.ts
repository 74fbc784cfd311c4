/**
 * Ssh2Transport against the in-process simulated server (src/sim/ssh-server.ts), including the
 * faults a real sshd cannot easily produce: hangs, dying connections, silent servers.
 */
import { strict as assert } from 'node:assert';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { generateKeyPair } from '../../src/sim/keys.js';
import type { SshConfig } from '../../src/config/types.js';
import { startSimServer } from '../../src/sim/ssh-server.js';
import type { SimServer, SimServerOptions } from '../../src/sim/ssh-server.js';
import { fingerprintSha256 } from '../../src/ssh/known-hosts.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { freePort, hashKnownHosts, makeUserKey, server, sshConfig, startAgent, tempDir, rejection, writeKnownHosts } from './helpers.js';
import type { KeyPair } from './helpers.js';

const tmp = tempDir('au-sim-');
let key: KeyPair;
let home: string;
const servers: SimServer[] = [];
const transports: Ssh2Transport[] = [];

before(async () => {
  key = await makeUserKey(tmp.dir);
  home = join(tmp.dir, 'home');
  mkdirSync(home, { recursive: true });
});

after(async () => {
  for (const t of transports) t.close();
  await Promise.all(servers.map((s) => s.close()));
  tmp.remove();
});

async function sim(opts: Partial<SimServerOptions> = {}): Promise<SimServer> {
  const s = await startSimServer({ authorizedKey: key.publicLine, home, ...opts });
  servers.push(s);
  return s;
}

const knownHosts = (...lines: string[]): string => writeKnownHosts(tmp.dir, ...lines);

function transport(): Ssh2Transport {
  const t = new Ssh2Transport();
  transports.push(t);
  return t;
}

function cfgFor(s: SimServer, overrides: Partial<SshConfig> = {}): SshConfig {
  return sshConfig({ knownHosts: knownHosts(s.hostKeyLine), identityFile: key.privateFile, ...overrides });
}

async function connectTo(s: SimServer, overrides: Partial<SshConfig> = {}) {
  return transport().connect(server(s.host, s.port), cfgFor(s, overrides));
}

describe('exec on the simulated server', () => {
  let s: SimServer;
  before(async () => {
    s = await sim({ behaviour: { hangCommands: /hang-forever/ } });
  });

  test('exit codes, stdout and stderr, cwd and HOME', async () => {
    const session = await connectTo(s);
    const r = await session.exec('echo out; echo err >&2; exit 3');
    assert.equal(r.code, 3);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(r.timedOut, false);
    assert.equal(r.error, null);
    assert.ok(r.durationMs >= 0);
    const pwd = await session.exec('pwd; echo "$HOME"');
    assert.equal(pwd.stdout, `${home}\n${home}\n`);
    assert.equal((await session.exec('true')).code, 0);
    session.close();
  });

  test('several commands over one connection', async () => {
    const before = s.connections();
    const session = await connectTo(s);
    for (let i = 0; i < 8; i++) {
      const r = await session.exec(`echo step-${i}`);
      assert.equal(r.code, 0);
      assert.equal(r.stdout, `step-${i}\n`);
    }
    assert.equal(s.connections() - before, 1);
    session.close();
  });

  test('output cap keeps the tail of each stream', async () => {
    const session = await connectTo(s, { outputLimitBytes: 1000 });
    const r = await session.exec('seq 1 20000; seq 1 5000 >&2');
    assert.equal(r.code, 0);
    assert.ok(Buffer.byteLength(r.stdout) <= 1000, `stdout is ${Buffer.byteLength(r.stdout)} bytes`);
    assert.ok(r.stdout.endsWith('19999\n20000\n'));
    assert.ok(Buffer.byteLength(r.stderr) <= 1000);
    assert.ok(r.stderr.endsWith('4999\n5000\n'));
    // a tail cut inside a multi-byte character does not start with a replacement character
    const u = await session.exec(`i=0; while [ $i -lt 400 ]; do printf 'é€'; i=$((i+1)); done`);
    assert.ok(Buffer.byteLength(u.stdout) <= 1000);
    assert.ok(!u.stdout.includes('\uFFFD'), 'no broken character');
    assert.ok(u.stdout.endsWith('é€'));
    session.close();
  });

  test('stdin is at end-of-file: a command reading it does not hang', async () => {
    const session = await connectTo(s);
    const r = await session.exec('cat; echo done', { timeoutMs: 5000 });
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'done\n');
    session.close();
  });

  test('a single-quoted value survives the trip', async () => {
    const session = await connectTo(s);
    const r = await session.exec(`printf '%s\\n' 'it'\\''s "quoted" $HOME \`x\` ; | & *'`);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, 'it\'s "quoted" $HOME `x` ; | & *\n');
    session.close();
  });

  test('a command timeout resolves, and the session still works afterwards', async () => {
    const session = await connectTo(s);
    const started = Date.now();
    const r = await session.exec('hang-forever', { timeoutMs: 300 });
    assert.equal(r.code, null);
    assert.equal(r.timedOut, true);
    assert.match(r.error ?? '', /^timed out after 300ms with no answer from the server; the channel was closed/);
    assert.ok(Date.now() - started < 10_000, 'a command that never ends came back within its timeout (generous for a loaded machine)');
    const r2 = await session.exec('sleep 30', { timeoutMs: 1000 });
    assert.equal(r2.timedOut, true);
    assert.equal(r2.error, 'timed out after 1s; killed on the server, with everything it started');
    const again = await session.exec('echo still-here');
    assert.equal(again.code, 0);
    assert.equal(again.stdout, 'still-here\n');
    session.close();
  });

  test('a timed-out command is killed on the server', async () => {
    const session = await connectTo(s);
    const marker = join(tmp.dir, 'timed-out-command-finished');
    const pidFile = join(tmp.dir, 'timed-out-command-pid');
    // the server's watchdog counts whole seconds: a 200 ms timeout fires after one
    const r = await session.exec(`echo $$ > ${pidFile}; sleep 3; touch ${marker}`, { timeoutMs: 200 });
    assert.equal(r.timedOut, true);
    // Wait for the command's shell to be gone (killed, or at its end had it not been), then look.
    const pid = Number(readFileSync(pidFile, 'utf8'));
    assert.ok(pid > 0, 'the command ran');
    const alive = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    for (const end = Date.now() + 10_000; alive(); ) {
      assert.ok(Date.now() < end, 'the timed-out command is still running after 10 s');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.equal(existsSync(marker), false, 'the command ran to its end');
    session.close();
  });

  test('the default command timeout comes from the config', async () => {
    const session = await connectTo(s, { commandTimeoutMs: 400 });
    const r = await session.exec('hang-forever');
    assert.equal(r.timedOut, true);
    assert.match(r.error ?? '', /^timed out after 400ms/);
    session.close();
  });

  test('abort via signal resolves with "aborted"', async () => {
    const session = await connectTo(s);
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 200);
    const r = await session.exec('sleep 30', { signal: ac.signal });
    assert.equal(r.code, null);
    assert.equal(r.error, 'aborted');
    const pre = await session.exec('echo x', { signal: AbortSignal.abort() });
    assert.equal(pre.error, 'aborted');
    assert.equal((await session.exec('echo ok')).stdout, 'ok\n');
    session.close();
  });

  test('killed by a signal: no exit code, the signal named', async () => {
    const session = await connectTo(s);
    const r = await session.exec('kill -TERM $$');
    assert.equal(r.code, null);
    assert.equal(r.error, 'killed by signal TERM');
    session.close();
  });

  test('after close(), exec fails fast with a result', async () => {
    const t = transport();
    const session = await t.connect(server(s.host, s.port), cfgFor(s));
    t.close();
    const r = await session.exec('echo never');
    assert.equal(r.code, null);
    assert.match(r.error ?? '', /^not connected/);
  });
});

describe('faults', () => {
  test('connection dying mid-command gives a result, later execs fail fast', async () => {
    const s = await sim({ behaviour: { dieAfterMs: 300 } });
    const session = await connectTo(s, { keepaliveIntervalMs: 60_000 });
    const started = Date.now();
    const r = await session.exec('sleep 30');
    assert.equal(r.code, null);
    assert.equal(r.timedOut, false);
    assert.match(r.error ?? '', /^connection lost: /);
    assert.ok(Date.now() - started < 15_000, 'long before the 30 s command could have ended');
    const later = await session.exec('echo x');
    assert.equal(later.code, null);
    assert.match(later.error ?? '', /^not connected/);
  });

  test('a server that never answers: connect rejects with timeout in time', async () => {
    const s = await sim({ behaviour: { neverAnswer: true } });
    const started = Date.now();
    const err = await rejection(connectTo(s, { connectTimeoutMs: 600 }));
    const took = Date.now() - started;
    assert.equal(err.kind, 'timeout');
    assert.match(err.message, /timed out after 600ms/);
    assert.ok(took >= 550 && took < 8000, `took ${took}ms`);
  });

  test('connect is bounded by the abort signal', async () => {
    const s = await sim({ behaviour: { neverAnswer: true } });
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 150);
    const started = Date.now();
    const err = await rejection(transport().connect(server(s.host, s.port), cfgFor(s, { connectTimeoutMs: 10_000 }), ac.signal));
    assert.match(err.message, /aborted/);
    assert.ok(Date.now() - started < 8000, 'the abort, not the 10 s connect timeout, ended it');
  });

  test('connection refused → network', async () => {
    const port = await freePort();
    const err = await rejection(
      transport().connect(server('127.0.0.1', port), sshConfig({ knownHosts: knownHosts(), identityFile: key.privateFile })),
    );
    assert.equal(err.kind, 'network');
    assert.match(err.message, /refused/);
  });

  test('wrong user key → auth', async () => {
    const other = await makeUserKey(tmp.dir, 'id_other');
    const s = await sim();
    const err = await rejection(connectTo(s, { identityFile: other.privateFile }));
    assert.equal(err.kind, 'auth');
    assert.match(err.message, /authentication/);
    assert.equal(s.commands.length, 0);
  });
});

describe('host keys', () => {
  test('unknown host key → host-key-unknown and nothing ran', async () => {
    const s = await sim();
    const marker = join(tmp.dir, 'ran-unknown');
    const kh = knownHosts(`[127.0.0.1]:1 ${s.hostKeyLine.split(' ').slice(1).join(' ')}`);
    const t = transport();
    const err = await rejection(
      t.connect(server(s.host, s.port), cfgFor(s, { knownHosts: kh })).then((sess) => sess.exec(`touch ${marker}`)),
    );
    assert.equal(err.kind, 'host-key-unknown');
    assert.ok(err.message.includes(`[127.0.0.1]:${s.port}`), err.message);
    assert.ok(err.message.includes(kh), err.message);
    assert.ok(err.message.includes(fingerprintSha256(s.hostKeyBlob)), err.message);
    assert.ok(err.message.includes('ssh-keyscan'), err.message);
    assert.equal(existsSync(marker), false);
    assert.deepEqual(s.commands, []);
  });

  test('missing known_hosts file → host-key-unknown, saying the file does not exist', async () => {
    const s = await sim();
    const err = await rejection(connectTo(s, { knownHosts: join(tmp.dir, 'no-such-known-hosts') }));
    assert.equal(err.kind, 'host-key-unknown');
    assert.match(err.message, /does not exist/);
  });

  test('changed host key → host-key-mismatch and nothing ran', async () => {
    const s = await sim();
    const other = generateKeyPair('ed25519').public.split(' ');
    const kh = knownHosts(`[127.0.0.1]:${s.port} ${other[0]} ${other[1]}`);
    const marker = join(tmp.dir, 'ran-mismatch');
    const err = await rejection(
      transport()
        .connect(server(s.host, s.port), cfgFor(s, { knownHosts: kh }))
        .then((sess) => sess.exec(`touch ${marker}`)),
    );
    assert.equal(err.kind, 'host-key-mismatch');
    assert.ok(err.message.includes(`ssh-keygen -R '[127.0.0.1]:${s.port}' -f ${kh}`), err.message);
    assert.ok(err.message.includes(fingerprintSha256(s.hostKeyBlob)), err.message);
    assert.equal(existsSync(marker), false);
    assert.deepEqual(s.commands, []);
  });

  test('revoked host key is refused', async () => {
    const s = await sim();
    const [, type, b64] = s.hostKeyLine.split(' ');
    const kh = knownHosts(s.hostKeyLine, `@revoked * ${type} ${b64}`);
    const err = await rejection(connectTo(s, { knownHosts: kh }));
    assert.equal(err.kind, 'host-key-mismatch');
    assert.match(err.message, /REVOKED/);
    assert.deepEqual(s.commands, []);
  });

  test('hashed known_hosts entry is accepted', async () => {
    const s = await sim();
    const kh = knownHosts(s.hostKeyLine);
    await hashKnownHosts(kh);
    assert.doesNotMatch(readFileSync(kh, 'utf8'), /127\.0\.0\.1/);
    const session = await connectTo(s, { knownHosts: kh });
    assert.equal((await session.exec('echo hashed')).stdout, 'hashed\n');
    session.close();
  });

  test('the host key type we know is the one negotiated (no false mismatch)', async () => {
    // The server offers ed25519 (ssh2's first choice) and ecdsa; only ecdsa is known.
    const ecdsa = generateKeyPair('ecdsa');
    const s = await sim({ extraHostKeys: [ecdsa.private] });
    const [type, b64] = ecdsa.public.split(' ');
    const kh = knownHosts(`[127.0.0.1]:${s.port} ${type} ${b64}`);
    const session = await connectTo(s, { knownHosts: kh });
    assert.equal((await session.exec('echo ecdsa')).code, 0);
    session.close();
    // and with only the ed25519 key known, ed25519 is used
    const session2 = await connectTo(s);
    assert.equal((await session2.exec('echo ed')).code, 0);
    session2.close();
  });
});

describe('identity files and agent', () => {
  const ENV = 'AGENT_UPDATE_TEST_PASSPHRASE';
  const passphrase = 'sesame-Op3n-"quoted"';
  let enc: KeyPair;
  let s: SimServer;
  before(async () => {
    enc = await makeUserKey(tmp.dir, 'id_enc', passphrase);
  });
  after(() => {
    delete process.env[ENV];
  });

  test('encrypted key with the passphrase in the env var', async () => {
    s = await sim({ authorizedKey: enc.publicLine });
    process.env[ENV] = passphrase;
    const session = await connectTo(s, { identityFile: enc.privateFile });
    assert.equal((await session.exec('echo enc')).stdout, 'enc\n');
    session.close();
  });

  test('encrypted key without a passphrase → auth, naming the env var', async () => {
    delete process.env[ENV];
    const err = await rejection(connectTo(s, { identityFile: enc.privateFile }));
    assert.equal(err.kind, 'auth');
    assert.ok(err.message.includes(ENV), err.message);
    assert.ok(err.message.includes(enc.privateFile), err.message);
  });

  test('wrong passphrase → auth, and the passphrase is not in the message', async () => {
    const wrong = 'not-the-Right-one-42';
    process.env[ENV] = wrong;
    const err = await rejection(connectTo(s, { identityFile: enc.privateFile }));
    assert.equal(err.kind, 'auth');
    assert.ok(!err.message.includes(wrong), err.message);
    assert.ok(!err.message.includes(passphrase), err.message);
    assert.match(err.message, /passphrase/);
    delete process.env[ENV];
  });

  test('an identity that parsed is not parsed again, but a changed passphrase or file is', async (t) => {
    const copy = join(tmp.dir, 'id_enc_copy');
    copyFileSync(enc.privateFile, copy);
    const cfg = sshConfig({ knownHosts: knownHosts(), identityFile: copy });
    process.env[ENV] = passphrase;
    try {
      const times: number[] = [];
      for (let i = 0; i < 2; i++) {
        const began = performance.now();
        await transport().preflight(cfg);
        times.push(performance.now() - began);
      }
      t.diagnostic(`encrypted key: first check ${times[0]!.toFixed(0)} ms, second ${times[1]!.toFixed(1)} ms`);
      process.env[ENV] = 'not-the-Right-one-42';
      assert.equal((await rejection(transport().preflight(cfg))).kind, 'auth', 'another passphrase is checked again');
      process.env[ENV] = passphrase;
      writeFileSync(copy, enc.publicLine + '\n');
      assert.match((await rejection(transport().preflight(cfg))).message, /does not contain a private key/, 'other bytes are checked again');
    } finally {
      delete process.env[ENV];
    }
  });

  test('missing identity file → config', async () => {
    const err = await rejection(connectTo(s, { identityFile: join(tmp.dir, 'nope') }));
    assert.equal(err.kind, 'config');
    assert.match(err.message, /does not exist/);
  });

  test('ssh-agent', async (t) => {
    const agent = await startAgent(tmp.dir, key.privateFile);
    if (!agent) {
      t.skip('ssh-agent is not installed');
      return;
    }
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = agent.sock;
    try {
      const s2 = await sim();
      const session = await connectTo(s2, { identityFile: null, agent: true });
      assert.equal((await session.exec('echo agent')).stdout, 'agent\n');
      session.close();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      await agent.stop();
    }
  });

  test('a dead agent socket: the identity file still works; agent alone → auth saying why', async () => {
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = join(tmp.dir, 'no-agent.sock');
    try {
      const s2 = await sim();
      const session = await connectTo(s2, { agent: true });
      assert.equal((await session.exec('echo key')).stdout, 'key\n');
      session.close();
      const err = await rejection(connectTo(s2, { agent: true, identityFile: null }));
      assert.equal(err.kind, 'auth');
      assert.match(err.message, /ssh-agent/);
      assert.match(err.message, /no key was accepted/);
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  });

  test('no identity file and no agent → config', async () => {
    const saved = process.env.SSH_AUTH_SOCK;
    delete process.env.SSH_AUTH_SOCK;
    try {
      const s2 = await sim();
      const err = await rejection(connectTo(s2, { agent: true, identityFile: null }));
      assert.equal(err.kind, 'config');
      assert.match(err.message, /SSH_AUTH_SOCK is not set/);
    } finally {
      if (saved !== undefined) process.env.SSH_AUTH_SOCK = saved;
    }
  });
});
