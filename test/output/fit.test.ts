/**
 * output/fit.ts and the views that use it (issue 25 §3): in a terminal, `plan`, `status` and the
 * live view fit its width (the DETAIL column cut with `…`, the header never broken, the names
 * and statuses whole, a multi-line detail on one line); `--wide`, a pipe, `--json` (width null)
 * show everything whole. Pure functions, widths 40, 80 and 120.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import chalk from 'chalk';
import { displayWidth, fitParts, fitTable, oneLine, stripAnsi } from '../../src/output/fit.js';
import { planText, table, updatesListText, updateText } from '../../src/output/text.js';
import { Reporter } from '../../src/output/reporter.js';
import type { PlanChanges } from '../../src/plan/changes.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import type { ServerRecord } from '../../src/model/records.js';
import { serverRecord, updateRecord } from '../support/records.js';
import { FakeTty } from '../support/fake-tty.js';

const WIDTHS = [40, 80, 120];
const HEAD = ['SERVER', 'HOST', 'TYPE', 'STATUS', 'FROM', 'TO', 'DETAIL'];

/** What `ssh` says of a server it cannot reach: long, and on two lines. */
const UNREACHABLE =
  'cannot connect to web-03.eu-west.example.internal:22: connection refused (ECONNREFUSED)\n' +
  '  is sshd running there? check the port and the firewall, then: agent-update plan --refresh agent-2026-12';

function fleet(): ServerRecord[] {
  const at = (i: number, over: Partial<ServerRecord>) =>
    serverRecord(i, { name: `web-${i + 1}`, host: `10.0.0.${i + 1}`, type: 'app', types: ['app'], fromCommit: 'b'.repeat(40), ...over });
  return [
    at(0, { status: 'success', toCommit: 'a'.repeat(40) }),
    at(1, { status: 'running', step: 'verify' }),
    at(2, { status: 'unreachable', fromCommit: null, error: UNREACHABLE }),
    at(3, { status: 'rolled-back', toCommit: 'a'.repeat(40), error: 'health check failed: 日本語のエラー '.repeat(4) }),
  ];
}

const u = updateRecord({ name: 'agent-2026-12', createdAt: '2026-12-01T10:00:00.000Z' });

/** The table of a view: from its header line to the end. */
function tableOf(text: string): string[] {
  const lines = stripAnsi(text).split('\n');
  return lines.slice(lines.findIndex((l) => l.startsWith('SERVER ')));
}

test('fitTable: every line within the width, the header whole, the names and statuses whole, a cut cell ends with …', () => {
  const rows = [HEAD, ...fleet().map((s) => [s.name, s.host, s.type, s.step ? `${s.status} (${s.step})` : s.status, 'b'.repeat(12), 'a'.repeat(12), oneLine(s.error ?? '')])];
  const columns = [undefined, { cut: 2, min: 12, drop: 1 }, { drop: 0 }, undefined, { cut: 3, min: 8, drop: 4 }, { cut: 4, min: 8, drop: 5 }, { cut: 0, min: 30 }];
  for (const width of WIDTHS) {
    const lines = fitTable(rows, { width, columns }).split('\n');
    assert.equal(lines.length, rows.length, `${width}: one line a row`);
    for (const l of lines) assert.ok(displayWidth(l) <= width, `${width}: ${JSON.stringify(l)} is ${displayWidth(l)} wide`);
    const head = lines[0]!.split(/ {2,}/);
    for (const h of head) assert.ok(HEAD.includes(h), `${width}: the header ${JSON.stringify(h)} is whole (never DE / TAIL): ${lines[0]}`);
    assert.ok(head.includes('SERVER') && head.includes('STATUS') && head.includes('DETAIL'), `${width}: ${lines[0]}`);
    for (const s of ['web-1', 'web-2', 'web-3', 'web-4']) assert.ok(lines.some((l) => l.startsWith(`${s} `)), `${width}: ${s} whole`);
    assert.ok(lines.some((l) => l.includes('running (verify)')), `${width}: a status whole`);
    assert.ok(lines.some((l) => l.endsWith('…')), `${width}: the detail is cut with …`);
  }
  // at 120 only the detail gives way; at 40 the least needed columns are left out instead of breaking the header
  assert.deepEqual(fitTable(rows, { width: 120, columns }).split('\n')[0]!.split(/ +/), HEAD);
  assert.deepEqual(fitTable(rows, { width: 40, columns }).split('\n')[0]!.split(/ +/), ['SERVER', 'STATUS', 'DETAIL']);
  // statuses too wide to leave DETAIL room for its header: it is left out, never broken
  const wideStatus = rows.map((r, i) => (i === 2 ? [r[0]!, r[1]!, r[2]!, 'rolled-back (verify-rollback, hop 2/3 → 1.4.0)', ...r.slice(4)] : r));
  const narrow = fitTable(wideStatus, { width: 40, columns }).split('\n');
  assert.deepEqual(narrow[0]!.split(/ +/), ['SERVER', 'STATUS']);
  assert.match(narrow[2]!, /^web-2 +rolled-back \(verify-rollback, hop 2\/3 → 1\.4\.0\)$/, 'kept whole, wider than the terminal');
});

test('fitTable: width null (--wide, a pipe) is the table whole, as table() draws it', () => {
  const rows = [HEAD, ...fleet().map((s) => [s.name, s.host, s.type, s.status, 'b', 'a', s.error ?? ''])];
  const whole = fitTable(rows, { width: null });
  assert.equal(whole, table(rows));
  assert.ok(whole.includes(UNREACHABLE.split('\n')[1]!), 'nothing cut');
  assert.ok(!whole.includes('…'));
});

test('fitTable measures what shows: colours take no column, wide characters two; a cut coloured cell is reset', () => {
  const red = (s: string) => `\x1b[31m${s}\x1b[39m`;
  const rows = [
    [`\x1b[1mNAME\x1b[22m`, `\x1b[1mSTATUS\x1b[22m`, `\x1b[1mDETAIL\x1b[22m`],
    ['日本', red('failed'), red('x'.repeat(60))],
    ['ab', 'success', '日本語'.repeat(20)],
  ];
  for (const width of [30, 40]) {
    const lines = fitTable(rows, { width }).split('\n');
    for (const l of lines) assert.ok(displayWidth(l) <= width, `${width}: ${JSON.stringify(l)}`);
    // the columns line up by what shows: STATUS starts at the same column on every line
    const at = lines.map((l) => displayWidth(stripAnsi(l).slice(0, stripAnsi(l).search(/STATUS|failed|success/))));
    assert.deepEqual(at, [6, 6, 6], `${width}: ${lines.join('\n')}`);
    assert.ok(lines[1]!.endsWith('…\x1b[0m'), `${width}: a cut colour is reset: ${JSON.stringify(lines[1])}`);
    assert.match(stripAnsi(lines[2]!), /日…$|日 ?…$|語…$|本…$/, `${width}: a wide character is never split: ${lines[2]}`);
  }
});

test('status at 40, 80 and 120 columns: one line a server, the header whole, the unreachable error on one line and cut; --wide shows it whole', () => {
  for (const width of WIDTHS) {
    const lines = tableOf(updateText(u, fleet(), undefined, { width }));
    assert.equal(lines.length, 5, `${width}: the header and one line a server:\n${lines.join('\n')}`);
    for (const l of lines) assert.ok(displayWidth(l) <= width, `${width}: ${JSON.stringify(l)}`);
    for (const h of lines[0]!.split(/ {2,}/)) assert.ok(['SERVER', 'HOST', 'TYPE', 'STATUS', 'FROM', 'TO', 'DETAIL'].includes(h), `${width}: ${lines[0]}`);
    assert.match(lines[3]!, /^web-3 .*unreachable .*cannot conn.*…$/, `${width}: ${lines[3]}`);
    assert.ok(!lines[3]!.includes('\\n'), `${width}: the two lines joined, not an escaped newline: ${lines[3]}`);
    assert.match(lines[2]!, /running \(verify\)/);
  }
  // wide enough for the two lines of the error joined: its second line shows, after ` · `
  assert.match(tableOf(updateText(u, fleet(), undefined, { width: 400 }))[3]!, /\(ECONNREFUSED\) · is sshd running there\?/);
  for (const whole of [updateText(u, fleet()), updateText(u, fleet(), undefined, { width: null })]) {
    const lines = tableOf(whole);
    assert.ok(lines[3]!.endsWith('plan --refresh agent-2026-12'), 'whole');
    assert.ok(lines[3]!.includes('(ECONNREFUSED)\\n  is sshd'), 'as before: the newline shown as \\n');
    assert.ok(!whole.includes('…'));
  }
});

test('status in colour: fitted by what shows, the header bold and whole', () => {
  const level = chalk.level;
  chalk.level = 1;
  try {
    const text = updateText(u, fleet(), undefined, { width: 80 });
    assert.ok(text.includes('\x1b['), 'coloured');
    for (const l of tableOf(text)) assert.ok(displayWidth(l) <= 80, JSON.stringify(l));
    assert.ok(text.includes(chalk.bold('DETAIL')));
  } finally {
    chalk.level = level;
  }
});

test('plan at 40, 80 and 120 columns: FROM → TO and DETAIL give way, the header stays whole', () => {
  const servers: ServerRecord[] = fleet().map((s) => ({ ...s, status: s.status === 'unreachable' ? s.status : 'pending', step: null, toCommit: null, error: s.status === 'unreachable' ? s.error : null }));
  const changes: PlanChanges = { to: 'a'.repeat(40), from: 'b'.repeat(40), commits: 3, more: 0, log: [], running: [{ commit: 'b'.repeat(40), servers: ['web-1'], relation: 'behind', behind: 3, ahead: 0 }], error: null };
  for (const width of WIDTHS) {
    const lines = tableOf(planText(updateRecord({ ...u, status: 'pending' }), servers, changes, undefined, width));
    assert.equal(lines.length, 5, lines.join('\n'));
    for (const l of lines) assert.ok(displayWidth(l) <= width, `${width}: ${JSON.stringify(l)}`);
    for (const h of lines[0]!.split(/ {2,}/)) assert.ok(['SERVER', 'HOST', 'TYPE', 'STATUS', 'FROM → TO', 'DETAIL'].includes(h), `${width}: ${lines[0]}`);
    assert.match(lines[3]!, /^web-3 +(\S+ +)*unreachable +- +canno/);
  }
  const whole = tableOf(planText(updateRecord({ ...u, status: 'pending' }), servers, changes));
  assert.match(whole[1]!, /bbbbbbbbbbbb → aaaaaaaaaaaa +3 commits$/);
});

test('the list of updates at 40 columns: NAME, STATUS and the counts; the rest left out', () => {
  const all = [{ u, servers: fleet() }, { u: updateRecord({ name: 'agent-2026-12.2', batchOf: 'agent-2026-12', status: 'paused' }), servers: fleet() }];
  const lines = stripAnsi(updatesListText(all, 40)).split('\n');
  for (const l of lines) assert.ok(displayWidth(l) <= 40, JSON.stringify(l));
  assert.deepEqual(lines[0]!.split(/ +/), ['NAME', 'STATUS', 'SERVERS']);
  assert.match(lines[2]!, /^agent-2026-12\.2 +paused +4 servers: /);
  assert.deepEqual(stripAnsi(updatesListText(all, null)).split('\n')[0]!.split(/ {2,}/), ['NAME', 'STATUS', 'TARGET', 'BATCH OF', 'CREATED', 'SERVERS']);
});

test('fitParts: the parts give way in rank order, cut down to their min, left out unless kept; null width: whole', () => {
  const parts = [
    { text: 'web-frontend-01' , rank: 3, min: 8, keep: true },
    { text: '10.0.0.1:2222', sep: ' ', rank: 1 },
    { text: 'verify', sep: ' ' },
    { text: '12s', sep: ' ', rank: 2 },
    { text: 'waiting for health (try 4)', sep: ' · ', rank: 4, min: 24, keep: true },
  ];
  const whole = 'web-frontend-01 10.0.0.1:2222 verify 12s · waiting for health (try 4)';
  assert.equal(fitParts(parts, null), whole);
  assert.equal(fitParts(parts, 200), whole);
  assert.equal(fitParts(parts, 60), 'web-frontend-01 verify 12s · waiting for health (try 4)');
  assert.equal(fitParts(parts, 53), 'web-frontend-01 verify · waiting for health (try 4)');
  assert.equal(fitParts(parts, 47), 'web-fronte… verify · waiting for health (try 4)', 'cut no more than needed');
  assert.equal(fitParts(parts, 40), 'web-fro… verify · waiting for health (try…', 'kept parts are cut down to their min, never left out');
});


const events = (update: string, server: string): RolloutEvent[] => [
  { type: 'update-started', update, takeover: false, resumed: false, pending: 2, total: 2, counts: { total: 2, pending: 2 } },
  { type: 'server-started', update, server, index: 1, total: 2, host: 'host-1.a-rather-long-domain-name.example.internal', port: 2222 },
  { type: 'server-step', update, server, step: 'verify' },
  { type: 'health-waiting', update, server, attempt: 12, elapsedMs: 30_000, output: 'starting' },
] as RolloutEvent[];

test('live view: a batch line at 80 columns keeps the step and what its server waits for; --wide draws it whole', () => {
  for (const wide of [false, true]) {
    const tty = new FakeTty(80);
    const r = new Reporter({ stream: tty as unknown as NodeJS.WriteStream, quiet: false, live: true, prefix: true, verbose: false, wide, now: () => 0, tickMs: 0 });
    for (const b of ['agent-2026-12', 'agent-2026-12.2']) for (const e of events(b, `${b === 'agent-2026-12' ? 'web' : 'db'}-server-number-01`)) r.onEvent(e);
    const lines = r.frameLines().map(stripAnsi);
    r.stop();
    if (!wide) {
      for (const l of lines) assert.ok(displayWidth(l) <= 79, `${JSON.stringify(l)} is ${displayWidth(l)} wide`);
      // the host:port and the time in flight give way, then the names' padding, `0 failed`, and the server's name is cut
      assert.match(lines[0]!, /^⠋ agent-2026-12 +0\/2 done · web-serv\S*… verify · waiting for health \(try 12\)$/, lines.join('\n'));
      assert.ok(!lines[0]!.includes('host-1'), 'the host:port gave way first');
    } else {
      assert.match(lines[0]!, /^⠋ agent-2026-12 +0\/2 done · 0 failed · web-server-number-01 host-1\.a-rather-long-domain-name\.example\.internal:2222 verify 0s · waiting for health \(try 12\)$/);
      assert.ok(tty.out.includes('host-1.a-rather-long-domain-name.example.internal:2222 verify 0s · waiting for health (try 12)'), 'drawn whole, not cut at the edge');
    }
  }
});
