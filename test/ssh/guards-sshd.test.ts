/**
 * What the command loop (src/ssh/channel.ts) and the per-exec supervisor (remote-run.ts) check
 * around a command, on the real sshd test fleet: a server that cannot list its processes is
 * refused before anything runs; a command that leaves a process holding its output fails; beat
 * lines (the dead-man timer's) that arrive between commands do not disturb the loop.
 *
 * A server's `~/.fleet-bin` comes first on its PATH (test/fleet/fleet.ts): a `ps` there stands
 * for a server without procps; an `sh` there that refuses the loop's command line gives the
 * session one exec per command under the supervisor.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';
import { CommandChannel, LOOP_COMMAND, type LoopFailure, type LoopResult } from '../../src/ssh/channel.js';
import { NOPROCS_ERROR } from '../../src/ssh/remote-run.js';
import { sshdAvailable } from '../fleet/fleet.js';
import { oneServer } from './one-server.js';

const skip = !sshdAvailable() && process.env.REQUIRE_SSHD !== '1' ? 'sshd not installed' : false;

describe('real sshd: what is checked around a command', { skip }, () => {
  const { fleet: fleetOf, home, open, fleetBin, refuseLoop } = oneServer();
  const busyboxPs = () => fleetBin('ps', 'echo "ps: unrecognized option: o" >&2\nexit 1');
  const noPs = () => fleetBin('ps', 'echo "sh: ps: not found" >&2\nexit 127');

  /** the holder named in a held-output error, killed (the fleet is on this machine) */
  const killHolder = (error: string | null) => {
    const m = /\(pid (\d+): /.exec(error ?? '');
    if (m) {
      try {
        process.kill(Number(m[1]), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
  };

  for (const [what, fake] of [
    ['a busybox ps without -o', busyboxPs],
    ['no ps at all', noPs],
  ] as const) {
    test(`${what}: the loop refuses at its handshake and nothing of any command runs`, async () => {
      fake();
      const s = await open();
      for (let i = 0; i < 2; i++) {
        const r = await s.exec('touch ~/ran; echo ran');
        assert.deepEqual([r.code, r.error, r.stdout], [null, NOPROCS_ERROR, '']);
      }
      assert.equal(existsSync(join(home(), 'ran')), false, 'the command never ran');
      assert.equal(s.channelsOpened, 1, 'the loop once, then refused at once');
      assert.equal(s.fallback, null, 'not a fallback: a refusal');
      s.close();
    });

    test(`${what}: one exec per command, the supervisor refuses before running it`, async () => {
      fake();
      refuseLoop();
      const s = await open();
      const r = await s.exec('touch ~/ran; echo ran');
      assert.deepEqual([r.code, r.error, r.stdout, r.stderr], [null, NOPROCS_ERROR, '', '']);
      assert.match(s.fallback ?? '', /closed before the handshake/);
      assert.equal(existsSync(join(home(), 'ran')), false, 'the command never ran');
      const again = await s.exec('touch ~/ran');
      assert.equal(again.error, NOPROCS_ERROR);
      assert.equal(s.channelsOpened, 2, 'the refused loop, the refused command; then refused at once');
      s.close();
    });
  }

  for (const path of ['the loop', 'one exec per command'] as const) {
    test(`${path}: a command that leaves a process holding its output fails; one with its output redirected does not`, async () => {
      if (path === 'one exec per command') refuseLoop();
      const s = await open();
      const held = await s.exec('echo started; sleep 30 &');
      killHolder(held.error);
      assert.equal(held.code, null);
      assert.match(held.error ?? '', /^the command ended but left a process holding its output \(pid \d+: sleep\); it would die of SIGPIPE when this session closes: redirect its output \(e\.g\. `nohup agent >agent\.log 2>&1 &`\)/);
      assert.equal(held.stdout, 'started\n', 'what it wrote before is kept');
      const nohup = await s.exec("nohup sh -c 'sleep 30' &");
      killHolder(nohup.error);
      assert.equal(nohup.code, null);
      assert.match(nohup.error ?? '', /left a process holding its output \(pid \d+: (sh|sleep)\)/);
      const stderrOnly = await s.exec('sleep 30 >/dev/null &');
      killHolder(stderrOnly.error);
      assert.match(stderrOnly.error ?? '', /left a process holding its output/, 'its stderr is held too');
      const fine = await s.exec('sleep 30 >/dev/null 2>&1 & echo $! >~/bg.pid; echo ok');
      assert.deepEqual([fine.code, fine.error, fine.stdout], [0, null, 'ok\n']);
      process.kill(Number(readFileSync(join(home(), 'bg.pid'), 'utf8')), 'SIGKILL');
      // after a held one, the next command's output is its own and whole
      const next = await s.exec(`printf '\\000\\001\\303\\251\\377x'; printf 'no-newline' >&2; exit 3`);
      assert.deepEqual([next.code, next.error, next.stderr], [3, null, 'no-newline']);
      assert.equal(next.stdout, Buffer.from([0, 1, 0xc3, 0xa9, 0xff, 0x78]).toString('utf8'));
      if (path === 'the loop') assert.equal(s.channelsOpened, 1, 'the loop goes on');
      s.close();
    });
  }

  test('one exec per command: output stays exact through the supervisor (binary, no final newline, large, stderr)', async () => {
    refuseLoop();
    const s = await open({ outputLimitBytes: 1000 });
    const bin = await s.exec(`printf '\\000\\001\\303\\251\\377x'; printf 'no-newline' >&2`);
    assert.deepEqual([bin.code, bin.stderr], [0, 'no-newline']);
    assert.equal(bin.stdout, Buffer.from([0, 1, 0xc3, 0xa9, 0xff, 0x78]).toString('utf8'));
    const big = await s.exec('seq 1 300000; seq 1 100000 >&2');
    assert.equal(big.code, 0);
    assert.ok(big.stdout.endsWith('299999\n300000\n') && Buffer.byteLength(big.stdout) <= 1000);
    assert.ok(big.stderr.endsWith('99999\n100000\n') && Buffer.byteLength(big.stderr) <= 1000);
    s.close();
  });

  test('beat lines between commands, and beats crossing each command’s end, do not disturb the loop', async () => {
    const f = fleetOf().server('s1');
    const client = new ssh2.Client();
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve()).once('error', reject);
      client.connect({ host: f.host, port: f.port, username: f.user, privateKey: readFileSync(fleetOf().identityFile) });
    });
    try {
      const ch = await new Promise<ClientChannel>((resolve, reject) => client.exec(LOOP_COMMAND, (err, c) => (err ? reject(err) : resolve(c))));
      const loop = await CommandChannel.start(ch, 5000);
      assert.ok(loop instanceof CommandChannel);
      for (let i = 0; i < 40; i++) {
        let out = '';
        // a beat every millisecond: some arrive after the command's end, where the loop reads them
        const r: LoopResult | LoopFailure = await loop.run(`sleep 0.0${i % 3}; echo ${i}`, 10, { stdout: (b: Buffer) => void (out += b.toString()), stderr: () => {} }, { seconds: 10, everyMs: 1 });
        assert.deepEqual([r, out], [{ status: 0, how: 'exit', timedOut: false, signal: null, holder: null }, `${i}\n`]);
        // and beats (and an empty line: what a beat cut by the stdin watchdog's end leaves) between commands
        if (i % 4 === 0) ch.write('.\n.\n\n');
      }
      loop.close();
    } finally {
      client.end();
    }
  });
});
