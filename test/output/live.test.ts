/**
 * The live view's pieces with a fake clock and a fake terminal: the progress and ETA maths,
 * widths and truncation, the frames the Reporter draws (one line per batch, never wider than the
 * terminal, redrawn at a new width on resize), plain timestamped lines with rate-limited health
 * waits, and -q's one line per update.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reporter, PLAIN_REPEAT_MS } from '../../src/output/reporter.js';
import { UpdateProgress, formatEta } from '../../src/output/live.js';
import { displayWidth, stripAnsi, truncate } from '../../src/output/fit.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import type { ServerStatus } from '../../src/model/lifecycle.js';
import { Screen } from './screen.js';
import { FakePipe, FakeTty } from '../support/fake-tty.js';


const C = 'c'.repeat(40);
const started = (update: string, total: number, pending = total, counts: Record<string, number> = { total, pending }): RolloutEvent => ({
  type: 'update-started', update, takeover: false, resumed: false, pending, total, counts,
});
const serverStarted = (update: string, server: string, index: number, total: number, host = '10.0.0.1', port = 22): RolloutEvent => ({
  type: 'server-started', update, server, index, total, host, port, user: 'op', fromCommit: 'a'.repeat(40), toCommit: C,
});
const step = (update: string, server: string, s: 'update' | 'restart' | 'verify' | 'rollback' | 'verify-rollback'): RolloutEvent => ({
  type: 'server-step', update, server, step: s,
});
const finished = (update: string, server: string, status: ServerStatus, durationMs: number, error: string | null = null): RolloutEvent => ({
  type: 'server-finished', update, server, status, error, durationMs, fromCommit: 'a'.repeat(40), toCommit: C, atCommit: status === 'success' ? C : null,
});
const health = (update: string, server: string, attempt: number, elapsedMs: number): RolloutEvent => ({
  type: 'health-waiting', update, server, attempt, elapsedMs, output: 'exited 7: starting',
});
const ended = (update: string, status: 'success' | 'paused' | 'failure', reason: string): RolloutEvent => ({
  type: 'update-finished', update, status, reason, counts: { total: 2, success: 2 },
});

test('progress: k/N counts only the servers the update works on; no ETA before one finishes, then the mean × the servers left', () => {
  const p = new UpdateProgress('u');
  // 5 servers: one skipped and one unreachable at plan time are not worked on
  p.apply(started('u', 5, 3, { total: 5, pending: 3, skipped: 1, unreachable: 1 }), 0);
  assert.equal(p.summary(0), '0/3 done · 0 failed');
  p.apply(serverStarted('u', 's1', 1, 3), 0);
  assert.equal(p.serverText(4_000), 's1 10.0.0.1:22 connecting 4s');
  p.apply(step('u', 's1', 'verify'), 5_000);
  assert.equal(p.serverText(6_500), 's1 10.0.0.1:22 verify 6s', 'elapsed since the server started, in whole seconds');
  assert.equal(p.summary(9_000), '0/3 done · 0 failed', 'no ETA before the first server finishes');
  p.apply(finished('u', 's1', 'success', 10_000), 10_000);
  assert.equal(p.serverText(10_000), null);
  assert.equal(p.summary(10_000), '1/3 done · 0 failed · ETA 20s', '10 s each × 2 left');
  p.apply(serverStarted('u', 's2', 2, 3, 'fe80::1', 2222), 10_000);
  assert.equal(p.serverText(10_000), 's2 [fe80::1]:2222 connecting 0s');
  assert.equal(p.summary(14_000), '1/3 done · 0 failed · ETA 16s', 'the one in flight has spent 4 of its 10 s');
  assert.equal(p.summary(25_000), '1/3 done · 0 failed · ETA 10s', 'longer than the mean: counted as about to finish');
  p.apply(finished('u', 's2', 'rolled-back', 20_000), 30_000);
  assert.equal(p.summary(30_000), '2/3 done · 1 failed · ETA 15s', 'mean of 10 s and 20 s');
  // s3 is found at the target when re-checked: the update does not work on it after all
  p.apply(serverStarted('u', 's3', 3, 3), 30_000);
  p.apply(finished('u', 's3', 'skipped', 100), 30_100);
  assert.equal(p.summary(30_100), '2/2 done · 1 failed', 'no ETA once all are done');
});

test('progress: with test mode, the ETA is to its pause, and there is none once the pause is reached (a canary does not promise the rest)', () => {
  const p = new UpdateProgress('u');
  p.apply({ ...started('u', 10), pausesAt: 2 } as RolloutEvent, 0);
  p.apply(serverStarted('u', 's1', 1, 10), 0);
  p.apply(finished('u', 's1', 'success', 10_000), 10_000);
  assert.equal(p.summary(10_000), '1/10 done · 0 failed · ETA 10s', 'one more before the pause, not nine');
  p.apply(serverStarted('u', 's2', 2, 10), 10_000);
  p.apply(finished('u', 's2', 'success', 10_000), 20_000);
  assert.equal(p.summary(20_000), '2/10 done · 0 failed', 'it pauses next: no ETA');
  const canary = new UpdateProgress('c');
  canary.apply({ ...started('c', 5), pausesAt: 1 } as RolloutEvent, 0);
  canary.apply(finished('c', 's1', 'success', 3_000), 3_000);
  assert.equal(canary.summary(3_000), '1/5 done · 0 failed', '--stop-after 1: the last line before the pause shows no ETA');
});

test('progress: a resumed update starts from what is done; the index of server-started never jumps', () => {
  const p = new UpdateProgress('u');
  p.apply(started('u', 6, 3, { total: 6, success: 2, 'rolled-back': 1, pending: 3 }), 0);
  assert.equal(p.summary(0), '3/6 done · 1 failed');
  p.apply(serverStarted('u', 's4', 4, 6), 0);
  assert.equal(p.summary(0), '3/6 done · 1 failed');
  p.apply(finished('u', 's4', 'success', 95_000), 95_000);
  assert.equal(p.summary(95_000), '4/6 done · 1 failed · ETA 3m10s');
  assert.equal(formatEta(0), '0s');
  assert.equal(formatEta(1), '1s', 'rounded up');
});

test('widths and truncation: wide characters take two columns, combining marks none, colours none; a cut line ends with …', () => {
  assert.equal(displayWidth('日本語'), 6);
  assert.equal(displayWidth('\x1b[31mab\x1b[0m'), 2);
  assert.equal(displayWidth('e\u0301'), 1);
  assert.equal(displayWidth('🚀 ✓ ✗ ⠋ ·'), 10);
  assert.equal(truncate('abcdef', 4), 'abc…');
  assert.equal(truncate('abcd', 4), 'abcd');
  assert.equal(truncate('日本語abc', 5), '日本…');
  assert.equal(truncate('日本語', 4), '日…', 'a wide character that would straddle the edge is left out');
  assert.equal(truncate('\x1b[31mabcdef\x1b[0m', 4), '\x1b[31mabc…\x1b[0m', 'colours kept, reset after the cut');
  for (const w of [1, 5, 17, 40]) {
    for (const s of ['x'.repeat(50), '日本語'.repeat(10), `\x1b[1m${'ab日'.repeat(12)}\x1b[0m`]) assert.ok(displayWidth(truncate(s, w)) <= w, `${w}: ${s}`);
  }
});

test('live view at 80 columns, three batches: one line per batch and an overall line, none wider than the terminal; resize redraws at the new width', () => {
  let now = 1_000_000;
  const tty = new FakeTty(80);
  const r = new Reporter({ stream: tty as unknown as NodeJS.WriteStream, quiet: false, live: true, prefix: true, verbose: false, now: () => now, tickMs: 0 });
  const batches = ['web', 'web.2', 'web.3'];
  batches.forEach((b, i) => {
    r.onEvent(started(b, 2));
    r.onEvent(serverStarted(b, `server-number-${i + 1}`, 1, 2, `host-${i + 1}.a-rather-long-domain-name.datacentre.example.internal`, 2222));
    r.onEvent(step(b, `server-number-${i + 1}`, 'verify'));
  });
  now += 3_000;
  r.onEvent(health('web', 'server-number-1', 30, 3_000));
  let screen = new Screen(80).write(tty.out);
  assert.equal(screen.wraps, 0, `nothing wrapped: ${screen.wrapped.join('\n')}`);
  let lines = screen.lines();
  assert.ok(lines.every((l) => displayWidth(l) < 80), lines.join('\n'));
  assert.deepEqual(lines.slice(0, 3), batches.map((b) => `[${b}] starting ${b}: 2 of 2 servers to go`));
  let area = lines.slice(3);
  assert.equal(area.length, 4, `three batch lines and the overall one:\n${lines.join('\n')}`);
  batches.forEach((b, i) => assert.match(area[i]!, new RegExp(`^⠋ ${b.replace('.', '\\.')} +0/2 done( · 0 failed)? · server-number-${i + 1} verify`)));
  // too long for 80 columns: the host:port and the time in flight give way, then the padding of
  // the names and `0 failed`; the step and what the server waits for stay whole (issue 25)
  assert.match(area[0]!, /^⠋ web +0\/2 done · server-number-1 verify · waiting for health \(try 30\)$/);
  assert.match(area[1]!, /^⠋ web\.2 +0\/2 done · 0 failed · server-number-2 verify 3s$/);
  assert.ok(!area.some((l) => l.includes('host-')), area.join('\n'));
  assert.match(area[3]!, /^ {2}3 updates +0\/6 done · 0 failed$/);

  // a server finishes: its line scrolls up above the area, the progress moves
  r.onEvent(finished('web.2', 'server-number-2', 'success', 4_000));
  screen = new Screen(80).write(tty.out);
  lines = screen.lines();
  assert.equal(screen.wraps, 0);
  assert.equal(lines.length, 8, lines.join('\n'));
  assert.match(lines[3]!, /^\[web\.2\] {3}✓ server-number-2 success in 4s \(1\/2 done · 0 failed · ETA 4s\)$/);
  area = lines.slice(4);
  assert.match(area[1]!, /^⠋ web\.2 +1\/2 done · 0 failed · ETA 4s$/);
  assert.match(area[3]!, /^ {2}3 updates +1\/6 done · 0 failed · ETA 4s$/);

  // the terminal gets narrower: the next frame is cut to the new width
  const before = tty.out.length;
  tty.columns = 40;
  tty.emit('resize');
  const frame = tty.out.slice(before);
  assert.ok(frame.length > 0, 'redrawn on resize');
  const drawn = stripAnsi(frame).split('\n').filter((l) => l !== '');
  assert.equal(drawn.length, 4, frame);
  for (const l of drawn) assert.ok(displayWidth(l) < 40, `fits 40 columns: ${JSON.stringify(l)}`);

  // every batch ends: the area is gone, the outcome lines stay
  tty.columns = 80;
  tty.emit('resize');
  for (const b of batches) r.onEvent(ended(b, 'success', 'all 2 servers at the target'));
  r.stop();
  const last = new Screen(80).write(tty.out).lines();
  assert.deepEqual(last.slice(-3), batches.map((b) => `${b} success: all 2 servers at the target`));
  assert.ok(!last.some((l) => l.startsWith('⠋') || /3 updates/.test(l)), `no live line left:\n${last.join('\n')}`);
  assert.ok(tty.out.endsWith('\x1b[?25h'), 'the cursor is shown again');
});

test('live view, one update: the server in flight with host:port, step and elapsed time, and the progress line under it', () => {
  let now = 0;
  const tty = new FakeTty(80);
  const r = new Reporter({ stream: tty as unknown as NodeJS.WriteStream, quiet: false, live: true, prefix: false, verbose: false, now: () => now, tickMs: 0 });
  r.onEvent(started('u', 3));
  r.onEvent(serverStarted('u', 's1', 1, 3, '192.0.2.10', 2201));
  now = 12_000;
  r.onEvent(step('u', 's1', 'restart'));
  assert.deepEqual(new Screen(80).write(tty.out).lines().slice(-2), ['⠋ s1 192.0.2.10:2201 restart 12s', '  0/3 done · 0 failed']);
  r.onEvent(finished('u', 's1', 'success', 12_000));
  r.onEvent(serverStarted('u', 's2', 2, 3, '192.0.2.11', 22));
  now = 15_000;
  r.redraw();
  assert.deepEqual(new Screen(80).write(tty.out).lines().slice(-3), [
    '  ✓ s1 success in 12s (1/3 done · 0 failed · ETA 24s)',
    '⠋ s2 192.0.2.11:22 connecting 3s',
    '  1/3 done · 0 failed · ETA 21s',
  ]);
  r.stop();
});

test('without a terminal: plain lines, each with a UTC timestamp; health waits at most every PLAIN_REPEAT_MS per server', () => {
  let now = Date.UTC(2026, 11, 1, 21, 40, 36, 250);
  const pipe = new FakePipe(0);
  const r = new Reporter({ stream: pipe as unknown as NodeJS.WriteStream, quiet: false, live: false, prefix: false, verbose: false, now: () => now, tickMs: 0 });
  r.onEvent(started('u', 2));
  r.onEvent(serverStarted('u', 's1', 1, 2, '10.0.0.1', 2222));
  r.onEvent(step('u', 's1', 'verify'));
  for (let i = 1; i <= 100; i++) {
    r.onEvent(health('u', 's1', i, i * 50)); // 5 s of polls every 50 ms
    now += 50;
  }
  now += PLAIN_REPEAT_MS;
  r.onEvent(health('u', 's1', 101, 15_000));
  r.onEvent(health('u', 's1', 102, 15_050));
  r.onEvent(finished('u', 's1', 'success', 15_100));
  r.onEvent(serverStarted('u', 's2', 2, 2));
  r.onEvent(step('u', 's2', 'verify'));
  r.onEvent(health('u', 's2', 1, 50));
  r.onEvent(finished('u', 's2', 'success', 100));
  r.onEvent(ended('u', 'success', 'all 2 servers at the target'));
  r.stop();
  const lines = pipe.out.trimEnd().split('\n');
  for (const l of lines) assert.match(l, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +\S/, l);
  assert.doesNotMatch(pipe.out, /\x1b/, 'no redraws, no cursor moves'); // eslint-disable-line no-control-regex
  const text = lines.map((l) => l.slice(21));
  assert.deepEqual(text, [
    'starting u: 2 of 2 servers to go',
    '[1/2] s1 (10.0.0.1:2222)',
    '  s1: verify',
    '  s1: waiting for health (0s, try 1): exited 7: starting',
    '  s1: waiting for health (15s, try 101): exited 7: starting',
    '  ✓ s1 success in 15.1s (1/2 done · 0 failed · ETA 16s)',
    '[2/2] s2 (10.0.0.1:22)',
    '  s2: verify',
    '  s2: waiting for health (0s, try 1): exited 7: starting',
    '  ✓ s2 success in 100ms (2/2 done · 0 failed)',
    'u success: all 2 servers at the target',
  ]);
  assert.equal(lines[0]!.slice(0, 21), '2026-12-01T21:40:36Z ');
});

test('-q: only the outcome line of each update, without a timestamp; a paused one says once how to continue', () => {
  for (const live of [false, true]) {
    const tty = live ? new FakeTty(80) : new FakePipe(0);
    const r = new Reporter({ stream: tty as unknown as NodeJS.WriteStream, quiet: true, live, prefix: false, verbose: true, tickMs: 0 });
    r.onEvent(started('u', 2));
    r.onEvent(serverStarted('u', 's1', 1, 2));
    r.onEvent(step('u', 's1', 'verify'));
    r.onEvent(health('u', 's1', 1, 50));
    r.onEvent(finished('u', 's1', 'success', 100));
    r.onEvent(ended('u', 'paused', 'test mode: 1 server finished'));
    r.onEvent(started('v', 2));
    r.onEvent(ended('v', 'success', 'all 2 servers at the target'));
    r.stop();
    assert.equal(tty.out, 'u paused (test mode: 1 server finished); continue with: agent-update resume u\nv success: all 2 servers at the target\n');
  }
});
