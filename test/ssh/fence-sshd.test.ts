/**
 * The fence (src/ssh/fence.ts) as the real transport sends it, on the real sshd test fleet, in
 * both places a command runs: the command loop (a field of its frame) and the per-exec supervisor
 * (an argument). A command runs only while the server's lock holds its token, leaves its record
 * while it runs (emptied by the loop, removed by the supervisor), and nothing starts beside a
 * command in flight, the same token's included.
 */
import { strict as assert } from 'node:assert';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { acquireScript, notRunOf, type LockOwner } from '../../src/rollout/remote-lock.js';
import { sshdAvailable } from '../fleet/fleet.js';
import { oneServer } from './one-server.js';
import { until } from '../helpers/db.js';

const skip = !sshdAvailable() && process.env.REQUIRE_SSHD !== '1' ? 'sshd not installed' : false;

const owner = (token: string): LockOwner => ({ update: 'u', db: 'd'.repeat(32), token, host: 'h', pid: 1, pidStart: null, since: '2026-12-06T00:00:00.000Z' });

describe('real sshd: the fence around every command of a claim', { skip }, () => {
  const { home, open: openWith, refuseLoop } = oneServer();
  const records = () => readdirSync(home()).filter((f) => f.startsWith('.agent-update.run.'));
  const open = () => openWith({ keepaliveIntervalMs: 0 });

  for (const path of ['the command loop', 'the per-exec supervisor'] as const) {
    test(`${path}: runs only while the lock holds the token; its output and status its own`, async () => {
      if (path === 'the per-exec supervisor') refuseLoop();
      const s = await open();
      try {
        const none = await s.exec('touch ~/ran', { fence: 'tok-a' });
        assert.equal(none.code, 76);
        assert.equal(notRunOf(none.stdout, none.code, 'tok-a')?.kind, 'fenced');
        assert.equal(existsSync(join(home(), 'ran')), false, 'nothing of the command ran');
        assert.equal((await s.exec(acquireScript(owner('tok-a')))).code, 0);
        const ok = await s.exec("printf 'out'; printf 'err' >&2; exit 3", { fence: 'tok-a' });
        assert.deepEqual([ok.code, ok.stdout, ok.stderr], [3, 'out', 'err']);
        assert.equal(notRunOf(ok.stdout, ok.code, 'tok-a'), null);
        const other = await s.exec('touch ~/ran', { fence: 'tok-b' });
        assert.equal(notRunOf(other.stdout, other.code, 'tok-b')?.kind, 'fenced');
        assert.equal(existsSync(join(home(), 'ran')), false);
        // a command without a token is not fenced (the lock scripts themselves)
        assert.equal((await s.exec('true')).code, 0);
        if (path === 'the per-exec supervisor') assert.deepEqual(records(), [], 'the supervisor removes its record');
        else for (const r of records()) assert.equal(readFileSync(join(home(), r), 'utf8'), '', 'the loop empties its record between commands');
        assert.equal(s.fallback !== null, path === 'the per-exec supervisor');
      } finally {
        s.close();
      }
    });

    test(`${path}: nothing starts beside a command in flight, not even the same token's (a re-run on a new connection)`, async () => {
      if (path === 'the per-exec supervisor') refuseLoop();
      const first = await open();
      const second = await open();
      try {
        assert.equal((await first.exec(acquireScript(owner('tok-a')))).code, 0);
        const gate = join(home(), 'gate');
        const running = first.exec(`echo begin >> ~/log; until [ -e ${gate} ]; do sleep 0.05; done; echo end >> ~/log`, { fence: 'tok-a', timeoutMs: 60_000 });
        await until('the first command to begin', () => existsSync(join(home(), 'log')));
        const again = await second.exec('echo again >> ~/log', { fence: 'tok-a' });
        assert.equal(again.code, 77);
        const why = notRunOf(again.stdout, again.code, 'tok-a');
        assert.equal(why?.kind, 'inflight');
        assert.equal(why?.kind === 'inflight' ? why.inflight[0]!.token : '', 'tok-a');
        writeFileSync(gate, '');
        assert.equal((await running).code, 0);
        const after = await second.exec('echo again >> ~/log', { fence: 'tok-a' });
        assert.equal(after.code, 0, 'once the first has ended');
        assert.equal(readFileSync(join(home(), 'log'), 'utf8'), 'begin\nend\nagain\n');
      } finally {
        first.close();
        second.close();
      }
    });
  }
});
