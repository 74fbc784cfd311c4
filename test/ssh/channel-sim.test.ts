/**
 * The command loop (src/ssh/channel.ts) with the in-process ssh2 server for the faults: a server
 * whose exec handler ignores stdin (the fallback), a loop that dies under a command, a server
 * that stops answering, a connection cut mid-command; and the marker scanner on its own.
 */
import { strict as assert } from 'node:assert';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import { LOOP_COMMAND, MarkerScanner } from '../../src/ssh/channel.js';
import { startSimServer } from '../../src/sim/ssh-server.js';
import type { SimServer, SimServerOptions } from '../../src/sim/ssh-server.js';
import type { Ssh2Session } from '../../src/ssh/session.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { makeUserKey, server, sshConfig, tempDir, writeKnownHosts } from './helpers.js';
import type { KeyPair } from './helpers.js';

const tmp = tempDir('au-chan-sim-');
let key: KeyPair;
let home: string;
const servers: SimServer[] = [];
const transport = new Ssh2Transport();

before(async () => {
  key = await makeUserKey(tmp.dir);
  home = join(tmp.dir, 'home');
  mkdirSync(home, { recursive: true });
});

after(async () => {
  transport.close();
  await Promise.all(servers.map((s) => s.close()));
  tmp.remove();
});

async function sim(opts: Partial<SimServerOptions> = {}): Promise<SimServer> {
  const s = await startSimServer({ authorizedKey: key.publicLine, home, ...opts });
  servers.push(s);
  return s;
}

async function connectTo(s: SimServer, overrides: Partial<SshConfig> = {}): Promise<Ssh2Session> {
  const cfg = sshConfig({ knownHosts: writeKnownHosts(tmp.dir, s.hostKeyLine), identityFile: key.privateFile, ...overrides });
  return (await transport.connect(server(s.host, s.port), cfg)) as Ssh2Session;
}

describe('the command loop on the simulated server', () => {
  test('every command through one exec request', async () => {
    const s = await sim();
    const session = await connectTo(s);
    for (let i = 0; i < 10; i++) assert.equal((await session.exec(`echo ${i}`)).stdout, `${i}\n`);
    assert.deepEqual(s.commands, [LOOP_COMMAND]);
    assert.equal(session.channelsOpened, 1);
    session.close();
  });

  test('an exec handler that ignores stdin: no handshake, then one exec per command for good', async () => {
    const s = await sim({ behaviour: { ignoreStdin: true } });
    const session = await connectTo(s, { connectTimeoutMs: 800 });
    const r = await session.exec('echo first; exit 2');
    assert.deepEqual([r.code, r.stdout, r.error], [2, 'first\n', null]);
    assert.match(session.fallback ?? '', /no handshake within 800 ms/);
    const r2 = await session.exec('sleep 30', { timeoutMs: 1000 });
    assert.equal(r2.error, 'timed out after 1s; killed on the server, with everything it started');
    assert.equal((await session.exec('echo again')).stdout, 'again\n');
    assert.equal(s.commands[0], LOOP_COMMAND);
    assert.equal(s.commands.length, 4, 'the loop once, then each command on its own exec');
    assert.ok(s.commands.slice(1).every((c) => c.includes('agent-update-run')), 'each under the supervisor');
    session.close();
  });

  test('the loop killed under a command: a lost connection for the caller, and the next command starts a new loop', async () => {
    const s = await sim();
    const session = await connectTo(s);
    assert.equal((await session.exec('echo up')).code, 0);
    const r = await session.exec('kill -KILL $PPID', { timeoutMs: 20_000 });
    assert.equal(r.code, null);
    assert.match(r.error ?? '', /^connection lost: the command channel closed while the command ran/);
    const again = await session.exec('echo again');
    assert.deepEqual([again.code, again.stdout], [0, 'again\n']);
    assert.equal(session.channelsOpened, 2);
    session.close();
  });

  test('a server that stops answering under a command: our timeout closes the loop, the next command gets a new one', async () => {
    const s = await sim({ behaviour: { hangCommands: /hang-here/ } });
    const session = await connectTo(s);
    const r = await session.exec('hang-here', { timeoutMs: 200 });
    assert.equal(r.timedOut, true);
    assert.match(r.error ?? '', /^timed out after 200ms with no answer from the server; the channel was closed/);
    assert.equal((await session.exec('echo after')).stdout, 'after\n');
    assert.equal(session.channelsOpened, 2);
    session.close();
  });

  test('a server that never answers the request for a session, keepalives off: the command still ends, with an error', { timeout: 60_000 }, async () => {
    const s = await sim({ behaviour: { neverOpenSessions: true } });
    const session = await connectTo(s, { keepaliveIntervalMs: 0, connectTimeoutMs: 1000 });
    const r = await session.exec('echo never', { timeoutMs: 1000 });
    assert.equal(r.code, null);
    assert.match(r.error ?? '', /^timed out after 1s with no answer from the server/);
    assert.equal(session.fallback, null, 'no verdict on the loop from a server that did not answer');
    // without a timeout of its own, the request for its session is what is bounded
    const r2 = await session.exec('echo never', { timeoutMs: 0 });
    assert.equal(r2.code, null);
    assert.equal(r2.error, 'could not start the command: the server did not answer the request for a session within 1s');
    assert.equal(s.commands.length, 0, 'nothing ran');
    session.close();
  });

  test('two commands at once on one session: the second gets its own exec', async () => {
    const s = await sim();
    const session = await connectTo(s);
    const [a, b] = await Promise.all([session.exec('sleep 0.3; echo a'), session.exec('echo b')]);
    assert.deepEqual([a.stdout, b.stdout], ['a\n', 'b\n']);
    assert.equal(s.commands.length, 2);
    assert.equal((await session.exec('echo c')).stdout, 'c\n', 'the loop is free again');
    assert.equal(s.commands.length, 2);
    session.close();
  });

  test('warm() starts the loop without running a command', async () => {
    const s = await sim();
    const session = await connectTo(s);
    await session.warm();
    assert.deepEqual(s.commands, [LOOP_COMMAND]);
    assert.equal((await session.exec('echo warm')).stdout, 'warm\n');
    assert.equal(session.channelsOpened, 1);
    session.close();
  });
});

describe('MarkerScanner', () => {
  test('finds the marker cut at any place across chunks, passing on exactly what came before', () => {
    const marker = Buffer.from('0123456789abcdef');
    const before = Buffer.from('out\x00put 0123456789abcde without a newline');
    const after = Buffer.from(' 0 exit -\n');
    const whole = Buffer.concat([before, marker, after]);
    for (let cut1 = 0; cut1 <= whole.length; cut1++) {
      for (const cut2 of [cut1, Math.min(whole.length, cut1 + 3), whole.length]) {
        const got: Buffer[] = [];
        const sc = new MarkerScanner(marker, (b) => got.push(Buffer.from(b)));
        const rest: Buffer[] = [];
        for (const chunk of [whole.subarray(0, cut1), whole.subarray(cut1, cut2), whole.subarray(cut2)]) {
          const r = sc.push(chunk);
          if (r) rest.push(Buffer.from(r));
        }
        assert.ok(sc.found, `cut at ${cut1}/${cut2}`);
        assert.deepEqual(Buffer.concat(got), before, `before, cut at ${cut1}/${cut2}`);
        assert.deepEqual(Buffer.concat(rest), after, `after, cut at ${cut1}/${cut2}`);
      }
    }
  });
});
