/**
 * How servers are reached, against real OpenSSH sshds started by this test: jump hosts (one and
 * two hops, each host key verified), per-server and per-hop identities, the order of the
 * identity and the agent's keys, the handshake cap, an ssh config file with aliases. Skipped
 * when sshd is not installed, unless REQUIRE_SSHD=1.
 */
import { strict as assert } from 'node:assert';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import { loadConfigText } from '../../src/config/load.js';
import type { JumpHost, ServerSpec, SshConfig } from '../../src/config/types.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { checkLocalSsh } from '../../src/ssh/transport.js';
import { UsageError } from '../../src/errors.js';
import { freePort, makeUserKey, rejection, server, sshConfig, sshdUnavailable, startAgent, startSshd, tempDir, writeKnownHosts } from './helpers.js';
import type { KeyPair, Sshd } from './helpers.js';

const me = userInfo().username;
const tmp = tempDir('au-jump-');
let skipReason: string | null = null;
/** accepted by the target and the second bastion only */
let serverKey: KeyPair;
/** accepted by the bastions only */
let bastionKey: KeyPair;
/** accepted by nobody */
let stranger: KeyPair;
let target: Sshd | null = null;
let bastion: Sshd | null = null;
let bastion2: Sshd | null = null;
let strict: Sshd | null = null;
let startups: Sshd | null = null;
// jump connections closed soon after their last server: the tests see the bastion let go
const transport = new Ssh2Transport({ jumpIdleMs: 200 });

function sub(name: string): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

before(async () => {
  skipReason = sshdUnavailable();
  if (skipReason) return;
  [serverKey, bastionKey, stranger] = await Promise.all([
    makeUserKey(tmp.dir, 'id_server'),
    makeUserKey(tmp.dir, 'id_bastion'),
    makeUserKey(tmp.dir, 'id_stranger'),
  ]);
  try {
    [target, bastion, bastion2, strict, startups] = await Promise.all([
      startSshd(sub('target'), [serverKey.publicLine]),
      // DEBUG1 logs every forward (server_request_direct_tcpip … target HOST port N)
      startSshd(sub('bastion'), [bastionKey.publicLine], ['LogLevel DEBUG1']),
      startSshd(sub('bastion2'), [bastionKey.publicLine, serverKey.publicLine], ['LogLevel DEBUG1']),
      // one authentication attempt: the first key offered must be the right one
      startSshd(sub('strict'), [serverKey.publicLine], ['MaxAuthTries 1']),
      // at most 3 connections not yet authenticated: the 4th is dropped
      startSshd(sub('startups'), [serverKey.publicLine], ['MaxStartups 3']),
    ]);
  } catch (err) {
    skipReason = `could not start sshd: ${String(err)}`;
  }
});

after(async () => {
  transport.close();
  await Promise.all([target, bastion, bastion2, strict, startups].map((d) => d?.stop() ?? Promise.resolve()));
  tmp.remove();
});

interface Rig {
  target: Sshd;
  bastion: Sshd;
  bastion2: Sshd;
  strict: Sshd;
  startups: Sshd;
}

function need(t: TestContext): Rig | null {
  if (target && bastion && bastion2 && strict && startups) return { target, bastion, bastion2, strict, startups };
  const why = skipReason ?? 'sshd not started';
  if (process.env.REQUIRE_SSHD === '1') assert.fail(`REQUIRE_SSHD=1 but ${why}`);
  t.skip(why);
  return null;
}

const hop = (d: Sshd, extra: Partial<JumpHost> = {}): JumpHost => ({ host: d.host, port: d.port, user: me, identityFiles: [bastionKey.privateFile], ...extra });
const behind = (d: Sshd, jump: JumpHost[], extra: Partial<ServerSpec> = {}): ServerSpec => ({ ...server(d.host, d.port), jump, ...extra });
/** every sshd's key known; the servers' own key is serverKey */
function cfg(r: Rig, overrides: Partial<SshConfig> = {}): SshConfig {
  const kh = writeKnownHosts(tmp.dir, ...[r.target, r.bastion, r.bastion2, r.strict, r.startups].map((d) => d.hostKeyLine));
  return sshConfig({ knownHosts: kh, identityFile: serverKey.privateFile, ...overrides });
}
/** the ports a bastion forwarded connections to, from its DEBUG1 log */
function forwardsOf(d: Sshd): string[] {
  return [...d.log().matchAll(/server_request_direct_tcpip: originator \S+ port \d+, target (\S+) port (\d+)/g)].map((m) => `${m[1]}:${m[2]}`);
}
/** the logins the sshd accepted */
function acceptedOn(d: Sshd): number {
  return (d.log().match(/Accepted publickey for /g) ?? []).length;
}
/** connections the sshd accepted a TCP connection for */
function connectionsTo(d: Sshd): number {
  return (d.log().match(/Connection from /g) ?? []).length;
}
async function eventually(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), what);
}

describe('jump hosts', () => {
  test('through one jump host: its own key and user, the server behind it reached by the forward', async (t) => {
    const r = need(t);
    if (!r) return;
    const before = forwardsOf(r.bastion).length;
    const disconnects = () => (r.bastion.log().match(/Disconnected from user /g) ?? []).length;
    const gone = disconnects();
    const s = await transport.connect(behind(r.target, [hop(r.bastion)]), cfg(r));
    const res = await s.exec('echo "$SSH_CONNECTION"');
    assert.equal(res.code, 0);
    // the server saw the connection arrive on its own port, from the bastion's forward
    assert.match(res.stdout, new RegExp(` ${r.target.port}\\n$`));
    assert.deepEqual(forwardsOf(r.bastion).slice(before), [`${r.target.host}:${r.target.port}`]);
    s.close();
    // closing the session closes the bastion's connection too
    await eventually('the bastion connection was closed with the session', () => disconnects() === gone + 1);
  });

  test('two hops, in order: bastion → bastion2 → server', async (t) => {
    const r = need(t);
    if (!r) return;
    const b1 = forwardsOf(r.bastion).length;
    const b2 = forwardsOf(r.bastion2).length;
    const s = await transport.connect(behind(r.target, [hop(r.bastion), hop(r.bastion2)]), cfg(r));
    assert.equal((await s.exec('echo two-hops')).stdout, 'two-hops\n');
    s.close();
    assert.deepEqual(forwardsOf(r.bastion).slice(b1), [`${r.bastion2.host}:${r.bastion2.port}`], 'the first hop forwards to the second');
    assert.deepEqual(forwardsOf(r.bastion2).slice(b2), [`${r.target.host}:${r.target.port}`], 'the second hop forwards to the server');
  });

  test('a spoofed jump host key (known_hosts lists the bastion with another key): refused, nothing reaches the server behind it', async (t) => {
    const r = need(t);
    if (!r) return;
    const fake = await makeUserKey(tmp.dir, `fake_bastion_${Date.now()}`);
    const [type, b64] = fake.publicLine.split(' ');
    const kh = writeKnownHosts(tmp.dir, r.target.hostKeyLine, `[${r.bastion.host}]:${r.bastion.port} ${type} ${b64}`);
    const marker = join(tmp.dir, 'ran-behind-spoofed-bastion');
    const targetConnections = connectionsTo(r.target);
    const forwards = forwardsOf(r.bastion).length;
    const auths = (r.bastion.log().match(/userauth-request/g) ?? []).length;
    const err = await rejection(
      transport.connect(behind(r.target, [hop(r.bastion)]), cfg(r, { knownHosts: kh })).then((s) => s.exec(`touch ${marker}`)),
    );
    assert.equal(err.kind, 'host-key-mismatch');
    assert.match(err.message, new RegExp(`^jump host ${me}@127\\.0\\.0\\.1:${r.bastion.port}: HOST KEY MISMATCH for \\[127\\.0\\.0\\.1\\]:${r.bastion.port}`));
    assert.equal(existsSync(marker), false);
    // nothing past the bastion: no forward asked of it, no connection at the server
    assert.equal(forwardsOf(r.bastion).length, forwards);
    assert.equal(connectionsTo(r.target), targetConnections);
    assert.equal((r.bastion.log().match(/userauth-request/g) ?? []).length, auths, 'no key was even offered to the spoofed bastion');
  });

  test('a jump host missing from known_hosts: host-key-unknown, like a server', async (t) => {
    const r = need(t);
    if (!r) return;
    const kh = writeKnownHosts(tmp.dir, r.target.hostKeyLine);
    const targetConnections = connectionsTo(r.target);
    const err = await rejection(transport.connect(behind(r.target, [hop(r.bastion)]), cfg(r, { knownHosts: kh })));
    assert.equal(err.kind, 'host-key-unknown');
    assert.match(err.message, /^jump host /);
    assert.equal(connectionsTo(r.target), targetConnections);
  });

  test('the server behind a good jump host is verified too: its own mismatch is refused', async (t) => {
    const r = need(t);
    if (!r) return;
    const fake = await makeUserKey(tmp.dir, `fake_target_${Date.now()}`);
    const [type, b64] = fake.publicLine.split(' ');
    const kh = writeKnownHosts(tmp.dir, r.bastion.hostKeyLine, `[${r.target.host}]:${r.target.port} ${type} ${b64}`);
    const err = await rejection(transport.connect(behind(r.target, [hop(r.bastion)]), cfg(r, { knownHosts: kh })));
    assert.equal(err.kind, 'host-key-mismatch');
    assert.match(err.message, new RegExp(`^HOST KEY MISMATCH for \\[127\\.0\\.0\\.1\\]:${r.target.port}`));
  });

  test('a jump host that cannot reach the server: a network error naming both, not a hang', async (t) => {
    const r = need(t);
    if (!r) return;
    const nobody = await freePort();
    const err = await rejection(transport.connect({ ...server(r.target.host, nobody), jump: [hop(r.bastion)] }, cfg(r)));
    assert.equal(err.kind, 'network');
    assert.match(err.message, new RegExp(`jump host ${me}@127\\.0\\.0\\.1:${r.bastion.port} could not open a connection to 127\\.0\\.0\\.1:${nobody}: .*refused`, 'i'));
  });

  test('the connect timeout applies to each hop: a server behind the bastion that never answers times out', async (t) => {
    const r = need(t);
    if (!r) return;
    const sockets = new Set<Socket>();
    const silent: Server = createServer((sock) => {
      sockets.add(sock);
      sock.on('error', () => undefined);
    });
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    try {
      const started = Date.now();
      const err = await rejection(transport.connect({ ...server('127.0.0.1', port), jump: [hop(r.bastion)] }, cfg(r, { connectTimeoutMs: 1500 })));
      const took = Date.now() - started;
      assert.equal(err.kind, 'timeout');
      assert.match(err.message, new RegExp(`connecting to ${me}@127\\.0\\.0\\.1:${port} \\(via ${me}@127\\.0\\.0\\.1:${r.bastion.port}\\) timed out after 1\\.5s`));
      assert.ok(took >= 1400 && took < 10_000, `timed out after ${took} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });
});

describe('identities', () => {
  test('each hop and the server with their own identity file; no ssh block identity, no agent', async (t) => {
    const r = need(t);
    if (!r) return;
    // the bastion accepts only bastionKey, the server only serverKey
    const spec = behind(r.target, [hop(r.bastion)], { identityFiles: [serverKey.privateFile] });
    const s = await transport.connect(spec, cfg(r, { identityFile: null, agent: false }));
    assert.equal((await s.exec('echo own-keys')).stdout, 'own-keys\n');
    s.close();
    // and the server's key is refused by the bastion: with it there, the hop fails
    const err = await rejection(transport.connect(behind(r.target, [hop(r.bastion, { identityFiles: [serverKey.privateFile] })], { identityFiles: [serverKey.privateFile] }), cfg(r, { agent: false })));
    assert.equal(err.kind, 'auth');
    assert.match(err.message, /^authentication to jump host /);
  });

  test('a per-server identity file overrides the ssh block', async (t) => {
    const r = need(t);
    if (!r) return;
    const ssh = cfg(r, { identityFile: stranger.privateFile, agent: false });
    const refused = await rejection(transport.connect(server(r.target.host, r.target.port), ssh));
    assert.equal(refused.kind, 'auth', 'the ssh block identity alone is refused');
    const s = await transport.connect({ ...server(r.target.host, r.target.port), identityFiles: [serverKey.privateFile] }, ssh);
    assert.equal((await s.exec('echo override')).stdout, 'override\n');
    s.close();
  });

  test('the configured identity is offered before the agent\'s keys (sshd allows one attempt)', async (t) => {
    const r = need(t);
    if (!r) return;
    // the agent holds only a key the server refuses
    const agent = await startAgent(sub(`agent-${Date.now()}`), stranger.privateFile);
    if (!agent) {
      t.skip('ssh-agent is not installed');
      return;
    }
    const saved = process.env.SSH_AUTH_SOCK;
    process.env.SSH_AUTH_SOCK = agent.sock;
    try {
      // MaxAuthTries 1 bites: a refused key first ends the authentication (the agent's key is
      // right here and is never reached after the wrong identity)
      const agentGood = await startAgent(sub(`agent-good-${Date.now()}`), serverKey.privateFile);
      assert.ok(agentGood);
      process.env.SSH_AUTH_SOCK = agentGood.sock;
      const control = await rejection(transport.connect(server(r.strict.host, r.strict.port), cfg(r, { identityFile: stranger.privateFile, agent: true })));
      assert.equal(control.kind, 'auth');
      await agentGood.stop();
      // so with the agent's wrong key and the right identity, success means the identity went first
      process.env.SSH_AUTH_SOCK = agent.sock;
      const s = await transport.connect(server(r.strict.host, r.strict.port), cfg(r, { identityFile: serverKey.privateFile, agent: true }));
      assert.equal((await s.exec('echo identity-first')).stdout, 'identity-first\n');
      s.close();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
      await agent.stop();
    }
  });

  test('preflight checks each distinct identity of the servers and their hops, before any server', async (t) => {
    const r = need(t);
    if (!r) return;
    const gone = join(tmp.dir, 'id_gone');
    const ssh = cfg(r, { identityFile: null, agent: false });
    const servers = [
      { ...server(r.target.host, r.target.port), identityFiles: [serverKey.privateFile] },
      behind(r.target, [hop(r.bastion, { identityFiles: [gone] })], { name: 'behind', identityFiles: [serverKey.privateFile] }),
    ];
    const connections = connectionsTo(r.target) + connectionsTo(r.bastion);
    await assert.rejects(checkLocalSsh(transport, ssh, 'cannot plan x', servers), (e: unknown) => {
      assert.ok(e instanceof UsageError);
      assert.match(e.message, new RegExp(`^cannot plan x: cannot read identity file ${gone}: it does not exist; nothing was run on any server`));
      return true;
    });
    assert.equal(connectionsTo(r.target) + connectionsTo(r.bastion), connections, 'no server or hop was connected to');
    // with every file there, it passes, though the ssh block alone has no way to log in
    await checkLocalSsh(transport, ssh, 'cannot plan x', [servers[0]!, behind(r.target, [hop(r.bastion)], { identityFiles: [serverKey.privateFile] })]);
    await assert.rejects(checkLocalSsh(transport, ssh, 'cannot plan x'), /no way to authenticate/);
  });
});

describe('the handshake cap', () => {
  const parallel = async (n: number, spec: (i: number) => ServerSpec, ssh: SshConfig) =>
    Promise.allSettled(Array.from({ length: n }, (_, i) => transport.connect(spec(i), ssh)));

  test('16 connects at once to an sshd with MaxStartups 3: all succeed with max_handshakes 3, at most 3 at once', async (t) => {
    const r = need(t);
    if (!r) return;
    const key = `127.0.0.1:${r.startups.port}`;
    transport.handshakes.peak.delete(key);
    const results = await parallel(16, () => server(r.startups.host, r.startups.port), cfg(r, { maxHandshakes: 3 }));
    const failed = results.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason));
    assert.deepEqual(failed, []);
    for (const x of results) if (x.status === 'fulfilled') x.value.close();
    assert.equal(transport.handshakes.peak.get(key), 3, 'three at once, never more');
  });

  test('without the cap (max_handshakes 16) the same sshd drops some: the cap is what saved them', async (t) => {
    const r = need(t);
    if (!r) return;
    let dropped = 0;
    // a few rounds, bounded: a round where the handshakes happen not to overlap proves nothing
    for (let round = 0; round < 5 && dropped === 0; round++) {
      const results = await parallel(16, () => server(r.startups.host, r.startups.port), cfg(r, { maxHandshakes: 16 }));
      dropped = results.filter((x) => x.status === 'rejected').length;
      for (const x of results) if (x.status === 'fulfilled') x.value.close();
    }
    assert.ok(dropped > 0, 'MaxStartups 3 dropped connections beyond the third');
  });

  test('through a jump host: the servers behind it share the default cap of 8, and the bastion sees one handshake per pooled connection', async (t) => {
    const r = need(t);
    if (!r) return;
    const key = `127.0.0.1:${r.bastion.port}`;
    const chain = `${key} > 127.0.0.1:${r.target.port}`;
    transport.handshakes.peak.delete(key);
    transport.handshakes.peak.delete(chain);
    const ssh = cfg(r);
    delete ssh.maxHandshakes;
    const logins = acceptedOn(r.bastion);
    const results = await parallel(20, () => behind(r.target, [hop(r.bastion)]), ssh);
    assert.deepEqual(results.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason)), []);
    for (const x of results) if (x.status === 'fulfilled') x.value.close();
    assert.equal(transport.handshakes.peak.get(chain), 8, 'the servers behind the bastion: 8 handshakes at once');
    // 20 servers, 10 channels a connection: 2 bastion logins (there were 20)
    assert.ok((transport.handshakes.peak.get(key) ?? 0) <= 2);
    assert.ok(acceptedOn(r.bastion) - logins <= 2, `${acceptedOn(r.bastion) - logins} bastion logins for 20 servers`);
  });
});

describe('ssh config file', () => {
  test('aliases with HostName, Port, User, IdentityFile, ProxyJump and UserKnownHostsFile, through loadConfig', async (t) => {
    const r = need(t);
    if (!r) return;
    const dir = sub(`sshcfg-${Date.now()}`);
    const kh = writeKnownHosts(dir, r.target.hostKeyLine, r.bastion.hostKeyLine);
    writeFileSync(
      join(dir, 'ssh_config'),
      [
        'Host jumpbox',
        `  HostName ${r.bastion.host}`,
        `  Port ${r.bastion.port}`,
        `  User ${me}`,
        `  IdentityFile ${bastionKey.privateFile}`,
        `  UserKnownHostsFile ${kh}`,
        'Host app-*',
        `  HostName ${r.target.host}`,
        `  Port ${r.target.port}`,
        '  ProxyJump jumpbox',
        `  IdentityFile ${join(tmp.dir, '%r-nonexistent-%h')}`,
        `  IdentityFile ${serverKey.privateFile}`,
        `  UserKnownHostsFile ${kh}`,
        'Host *',
        '  User nobody-should-use-this',
        '  Port 1',
        '',
      ].join('\n'),
    );
    // ssh.known_hosts points at a file that knows none of them: the ssh config's is used
    const empty = writeKnownHosts(dir, '# nothing');
    const yaml = [
      'source: { repo: /nowhere, branch: master }',
      'ssh:',
      '  config: ssh_config',
      `  known_hosts: ${empty}`,
      '  agent: false',
      `  identity_file: ${stranger.privateFile}`,
      `  user: ${me}`,
      'servers:',
      '  - { name: app-1 }',
      `  - { name: app-2, user: ${me} }`,
      'agent: { version_command: "true", update: ["true"], health: { command: "true" } }',
      '',
    ].join('\n');
    const config = loadConfigText(yaml, join(dir, 'fleet.yaml'), { defaults: null });
    const spec = config.servers[0]!;
    assert.deepEqual(
      { host: spec.host, port: spec.port, user: spec.user, identityFiles: spec.identityFiles, knownHosts: spec.knownHosts },
      { host: r.target.host, port: r.target.port, user: 'nobody-should-use-this', identityFiles: [serverKey.privateFile], knownHosts: kh },
    );
    assert.deepEqual(spec.jump, [{ host: r.bastion.host, port: r.bastion.port, user: me, identityFiles: [bastionKey.privateFile], knownHosts: kh }]);
    // `Host *` set User for app-1 (the ssh config beats ssh.user); app-2's own user beats it
    const app2 = config.servers[1]!;
    assert.equal(app2.user, me);
    const before = forwardsOf(r.bastion).length;
    const s = await transport.connect(app2, config.ssh);
    assert.equal((await s.exec('echo via-alias')).stdout, 'via-alias\n');
    s.close();
    assert.deepEqual(forwardsOf(r.bastion).slice(before), [`${r.target.host}:${r.target.port}`]);
  });
});
