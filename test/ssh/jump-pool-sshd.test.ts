/**
 * The jump-host pool against real OpenSSH sshds: many servers behind one bastion share its
 * connections (its own log counts the logins), a chain of two hops pools each hop, a pooled
 * connection that dies is seen by the servers behind it as a lost connection and the reconnect
 * goes through a new one, and a bastion whose host key does not match is refused even while a
 * good connection to it is pooled. Skipped when sshd is not installed, unless REQUIRE_SSHD=1.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { TestContext } from 'node:test';
import type { JumpHost, ServerSpec, SshConfig } from '../../src/config/types.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { connectionGone, type Session } from '../../src/ssh/transport.js';
import { startProxy, type Proxy } from '../helpers/proxy.js';
import { makeUserKey, rejection, server, sshConfig, sshdUnavailable, startSshd, tempDir, writeKnownHosts } from './helpers.js';
import type { KeyPair, Sshd } from './helpers.js';

const me = userInfo().username;
const tmp = tempDir('au-jump-pool-');
let skipReason: string | null = null;
let serverKey: KeyPair;
let bastionKey: KeyPair;
let target: Sshd | null = null;
let bastion: Sshd | null = null;
let bastion2: Sshd | null = null;
/** in front of the bastion: its connections can be closed under the pool */
let proxy: Proxy | null = null;

function sub(name: string): string {
  const dir = join(tmp.dir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

before(async () => {
  skipReason = sshdUnavailable();
  if (skipReason) return;
  [serverKey, bastionKey] = await Promise.all([makeUserKey(tmp.dir, 'id_server'), makeUserKey(tmp.dir, 'id_bastion')]);
  try {
    [target, bastion, bastion2] = await Promise.all([
      startSshd(sub('target'), [serverKey.publicLine]),
      startSshd(sub('bastion'), [bastionKey.publicLine]),
      startSshd(sub('bastion2'), [bastionKey.publicLine]),
    ]);
    proxy = await startProxy(bastion);
  } catch (err) {
    skipReason = `could not start sshd: ${String(err)}`;
  }
});

after(async () => {
  await proxy?.close();
  await Promise.all([target, bastion, bastion2].map((d) => d?.stop() ?? Promise.resolve()));
  tmp.remove();
});

interface Rig {
  target: Sshd;
  bastion: Sshd;
  bastion2: Sshd;
  proxy: Proxy;
}

function need(t: TestContext): Rig | null {
  if (target && bastion && bastion2 && proxy) return { target, bastion, bastion2, proxy };
  const why = skipReason ?? 'sshd not started';
  if (process.env.REQUIRE_SSHD === '1') assert.fail(`REQUIRE_SSHD=1 but ${why}`);
  t.skip(why);
  return null;
}

const hop = (d: { host: string; port: number }): JumpHost => ({ host: d.host, port: d.port, user: me, identityFiles: [bastionKey.privateFile] });
const behind = (d: Sshd, jump: JumpHost[], name: string): ServerSpec => ({ ...server(d.host, d.port), name, jump });
/** every sshd's key known (the bastion's under the proxy's port too) */
function cfg(r: Rig, overrides: Partial<SshConfig> = {}): SshConfig {
  const bastionKeyOnProxy = r.bastion.hostKeyLine.replace(/^\[[^\]]+\]:\d+/, `[127.0.0.1]:${r.proxy.port}`);
  const kh = writeKnownHosts(tmp.dir, r.target.hostKeyLine, r.bastion.hostKeyLine, r.bastion2.hostKeyLine, bastionKeyOnProxy);
  return sshConfig({ knownHosts: kh, identityFile: serverKey.privateFile, agent: false, ...overrides });
}
/** the logins the sshd accepted, from its log (LogLevel VERBOSE) */
function logins(d: Sshd): number {
  return (d.log().match(/Accepted publickey for /g) ?? []).length;
}
async function eventually(what: string, ok: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !ok(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(ok(), what);
}
async function connectAll(transport: Ssh2Transport, specs: ServerSpec[], ssh: SshConfig): Promise<Session[]> {
  const results = await Promise.allSettled(specs.map((s) => transport.connect(s, ssh)));
  const failed = results.filter((x) => x.status === 'rejected').map((x) => String((x as PromiseRejectedResult).reason));
  const sessions = results.filter((x) => x.status === 'fulfilled').map((x) => (x as PromiseFulfilledResult<Session>).value);
  if (failed.length) for (const s of sessions) s.close();
  assert.deepEqual(failed, []);
  return sessions;
}

describe('the jump-host pool', () => {
  test('20 servers behind one bastion, 4 channels a connection: at most 5 bastion logins (one per server before), every server answers', async (t) => {
    const r = need(t);
    if (!r) return;
    const transport = new Ssh2Transport({ jumpChannels: 4, jumpIdleMs: 100 });
    try {
      const before = logins(r.bastion);
      const targetBefore = logins(r.target);
      const specs = Array.from({ length: 20 }, (_, i) => behind(r.target, [hop(r.bastion)], `s${i}`));
      const sessions = await connectAll(transport, specs, cfg(r));
      const outs = await Promise.all(sessions.map((s, i) => s.exec(`echo server-${i}`)));
      assert.deepEqual(
        outs.map((o) => o.stdout),
        sessions.map((_, i) => `server-${i}\n`),
      );
      const bastionLogins = logins(r.bastion) - before;
      t.diagnostic(`bastion logins for 20 servers: ${bastionLogins}`);
      assert.ok(bastionLogins <= Math.ceil(20 / 4), `${bastionLogins} bastion logins`);
      assert.equal(logins(r.target) - targetBefore, 20, 'each server is still its own login');
      assert.equal(transport.jumps.opened, bastionLogins);
      // the last server gone, the idle connections close
      const gone = () => (r.bastion.log().match(/Disconnected from user /g) ?? []).length;
      const disconnectedBefore = gone();
      for (const s of sessions) s.close();
      await eventually('the idle bastion connections were closed', () => gone() - disconnectedBefore === bastionLogins);
    } finally {
      transport.close();
    }
  });

  test('servers one after another (a rollout) reuse the one bastion connection', async (t) => {
    const r = need(t);
    if (!r) return;
    const transport = new Ssh2Transport();
    try {
      const before = logins(r.bastion);
      const ssh = cfg(r);
      for (let i = 0; i < 6; i++) {
        const [s] = await connectAll(transport, [behind(r.target, [hop(r.bastion)], `seq${i}`)], ssh);
        assert.equal((await s!.exec('echo ok')).stdout, 'ok\n');
        s!.close();
      }
      assert.equal(logins(r.bastion) - before, 1);
    } finally {
      transport.close();
    }
  });

  test('two hops: one connection to each, the second over a channel of the first, shared by the servers behind', async (t) => {
    const r = need(t);
    if (!r) return;
    const transport = new Ssh2Transport();
    try {
      const b1 = logins(r.bastion);
      const b2 = logins(r.bastion2);
      const specs = Array.from({ length: 6 }, (_, i) => behind(r.target, [hop(r.bastion), hop(r.bastion2)], `two${i}`));
      const sessions = await connectAll(transport, specs, cfg(r));
      for (const s of sessions) assert.equal((await s.exec('echo two-hops')).stdout, 'two-hops\n');
      assert.equal(logins(r.bastion) - b1, 1, 'one login on the first hop');
      assert.equal(logins(r.bastion2) - b2, 1, 'one login on the second hop');
      for (const s of sessions) s.close();
    } finally {
      transport.close();
    }
  });

  test('the pooled bastion connection dies: the servers behind it see a lost connection, and reconnecting goes through a new one', async (t) => {
    const r = need(t);
    if (!r) return;
    const transport = new Ssh2Transport();
    const ssh = cfg(r);
    try {
      const specs = Array.from({ length: 3 }, (_, i) => behind(r.target, [hop({ host: '127.0.0.1', port: r.proxy.port })], `cut${i}`));
      const before = r.proxy.connections();
      const sessions = await connectAll(transport, specs, ssh);
      for (const s of sessions) assert.equal((await s.exec('echo up')).code, 0);
      assert.equal(r.proxy.connections() - before, 1, 'one connection to the bastion for the three');
      r.proxy.reset();
      for (const s of sessions) {
        const res = await s.exec('echo after');
        assert.ok(connectionGone(res), `ended ${res.ended}: ${res.error ?? ''}`);
        s.close();
      }
      // the engine's reconnect: a new session, through a new bastion connection
      const again = await connectAll(transport, specs, ssh);
      for (const s of again) assert.equal((await s.exec('echo again')).stdout, 'again\n');
      assert.equal(r.proxy.connections() - before, 2, 'one new connection to the bastion');
      for (const s of again) s.close();
    } finally {
      transport.close();
    }
  });

  test('a bastion whose key does not match is refused, though a good connection to it is pooled', async (t) => {
    const r = need(t);
    if (!r) return;
    const transport = new Ssh2Transport();
    try {
      const [good] = await connectAll(transport, [behind(r.target, [hop(r.bastion)], 'good')], cfg(r));
      assert.equal((await good!.exec('echo good')).code, 0);
      const fake = await makeUserKey(tmp.dir, `fake_bastion_${Date.now()}`);
      const [type, b64] = fake.publicLine.split(' ');
      const kh = writeKnownHosts(sub(`kh-${Date.now()}`), r.target.hostKeyLine, `[${r.bastion.host}]:${r.bastion.port} ${type} ${b64}`);
      const err = await rejection(transport.connect(behind(r.target, [hop(r.bastion)], 'spoofed'), cfg(r, { knownHosts: kh })));
      assert.equal(err.kind, 'host-key-mismatch');
      assert.match(err.message, /^jump host /);
      good!.close();
    } finally {
      transport.close();
    }
  });
});
