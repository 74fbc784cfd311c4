/**
 * ssh/command-end.ts: how each way a command can end becomes its result (the code, the error a
 * person reads, `ended`, `timedOut`), and what the per-exec supervisor's report changes. The
 * engine decides on `ended` alone (rollout/server-run.ts reconnects on connectionGone, diagnose.ts stops
 * on it), so the table pins which end means which.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import { describeEnd, supervisedEnd, type CommandEnd } from '../../src/ssh/command-end.js';
import { NOPROCS_ERROR, NOPROCS_STATUS, splitRunOutput } from '../../src/ssh/remote-run.js';
import { connectionGone, type CommandEnded } from '../../src/ssh/transport.js';
import { fakeSettings } from '../support/fake-settings.js';

const ssh: SshConfig = { ...fakeSettings.ssh, deadManTimeoutMs: 30_000 };

const TABLE: Array<[CommandEnd, CommandEnded, number | null, RegExp | null, boolean]> = [
  [{ how: 'exit', code: 0 }, 'exit', 0, null, false],
  [{ how: 'exit', code: 3 }, 'exit', 3, null, false],
  [{ how: 'timeout' }, 'timeout', null, /^timed out after 10s; killed on the server, with everything it started$/, true],
  [{ how: 'no-answer' }, 'lost', null, /^timed out after 10s with no answer from the server; the channel was closed/, true],
  [{ how: 'lost', reason: 'read ECONNRESET' }, 'lost', null, /^connection lost: read ECONNRESET$/, false],
  [{ how: 'deadman' }, 'signal', null, /^killed on the server, with everything it started: no word from this executor for 30s \(ssh\.dead_man_timeout;/, false],
  [{ how: 'held', holder: '42 agent' }, 'signal', null, /^the command ended but left a process holding its output \(pid 42: agent\)/, false],
  [{ how: 'signal', signal: 'TERM' }, 'signal', null, /^killed by signal TERM$/, false],
  [{ how: 'no-status' }, 'signal', null, /^the channel closed without an exit status$/, false],
  [{ how: 'closed' }, 'aborted', null, /^session closed$/, false],
  [{ how: 'aborted' }, 'aborted', null, /^aborted$/, false],
  [{ how: 'not-connected', why: 'connection lost: read ECONNRESET' }, 'not-sent', null, /^not connected: connection lost: read ECONNRESET$/, false],
  [{ how: 'not-started', why: '(SSH) Channel open failure: open failed' }, 'refused', null, /^could not start the command: \(SSH\) Channel open failure/, false],
  [{ how: 'noprocs' }, 'refused', null, /^refused: this server cannot list its processes/, false],
];

for (const [end, ended, code, error, timedOut] of TABLE) {
  test(`a command that ended ${JSON.stringify(end)}: ended ${ended}`, () => {
    const r = describeEnd(end, 10_000, ssh);
    assert.equal(r.ended, ended);
    assert.equal(r.code, code);
    assert.equal(r.timedOut, timedOut);
    if (error === null) assert.equal(r.error, null);
    else assert.match(r.error ?? '', error);
  });
}

test('the connection is gone (the engine reconnects) for lost and not-sent only', () => {
  const gone = TABLE.filter(([end]) => connectionGone(describeEnd(end, 10_000, ssh))).map(([end]) => end.how);
  assert.deepEqual(gone, ['no-answer', 'lost', 'not-connected']);
  assert.equal(connectionGone({ ended: 'not-sent' }), true, 'could not connect (rollout/server-run.ts makes that one)');
  assert.equal(connectionGone({ ended: 'refused' }), false, 'not run: the placeholders, the fence');
});

test('the supervisor\'s report: it killed the command at its timeout or for the dead man, refused it, or found its output held', () => {
  const said = (lines: string[]) => splitRunOutput(['the command\'s own stderr', ...lines].join('\n'));
  const exit1: CommandEnd = { how: 'exit', code: 1 };
  assert.deepEqual(supervisedEnd(exit1, said([])), exit1);
  assert.deepEqual(supervisedEnd({ how: 'signal', signal: 'KILL' }, said(['agent-update-run: timeout'])), { how: 'timeout' });
  assert.deepEqual(supervisedEnd({ how: 'no-answer' }, said(['agent-update-run: timeout'])), { how: 'no-answer' }, 'our own timer already said so');
  assert.deepEqual(supervisedEnd(exit1, said(['agent-update-run: deadman'])), { how: 'deadman' });
  assert.deepEqual(supervisedEnd({ how: 'exit', code: NOPROCS_STATUS }, said(['agent-update-run: noprocs'])), { how: 'noprocs' });
  assert.deepEqual(supervisedEnd(exit1, said(['agent-update-run: noprocs'])), exit1, 'only with its own status');
  assert.deepEqual(supervisedEnd(exit1, said(['agent-update-run: held 42 agent'])), { how: 'held', holder: '42 agent' });
  // only an exit is turned into what the supervisor said (but a timeout always counts)
  const lost: CommandEnd = { how: 'lost', reason: 'read ECONNRESET' };
  assert.deepEqual(supervisedEnd(lost, said(['agent-update-run: deadman', 'agent-update-run: held 42 agent'])), lost);
  assert.equal(describeEnd({ how: 'noprocs' }, 0, ssh).error, NOPROCS_ERROR);
});
