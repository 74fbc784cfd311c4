/**
 * Remote output never reaches the operator's terminal as control sequences (issue 10, 2.3):
 * `logs`, `status` and the progress lines show escape sequences, other controls, bidi overrides
 * and undecodable bytes as visible escapes; the journal keeps the text; `logs --raw` and
 * `--json` give it back as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { logsText, updateText } from '../../src/output/text.js';
import { Reporter } from '../../src/output/reporter.js';
import { terminalSafeJson, visibleLine, visibleText } from '../../src/output/visible.js';
import type { EventRecord, ServerRecord, JournalEntry, UpdateRecord } from '../../src/model/records.js';
import { serverRecord, updateRecord } from '../support/records.js';
import { cli, fleetFor } from '../helpers/cli.js';

/** What a hostile (or merely careless) server prints: clear screen, title, cursor moves, … */
const HOSTILE =
  'ok\x1b[2J\x1b[H\x1b]0;owned\x07 \x1b[31mred\x1b[0m\rover\bX\x00\x7f \u009b2J \u202eevil\u202c \u2066iso\u2069 \ufffd end';

/** Anything a terminal acts on: C0 controls but \n and \t, DEL, C1, bidi overrides and isolates. */
// eslint-disable-next-line no-control-regex
const RAW_CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

function server(over: Partial<ServerRecord> = {}): ServerRecord {
  return serverRecord(0, {
    host: '10.0.0.1', user: 'op', type: 'app', types: ['app'], status: 'rolled-back', fromCommit: 'a'.repeat(40), toCommit: 'b'.repeat(40),
    error: `update command exited 3: ${HOSTILE}`, startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.000Z',
    ...over,
  });
}

function update(): UpdateRecord {
  return updateRecord({
    status: 'failure', createdAt: '2026-01-01T00:00:00.000Z', repo: '/r', commit: 'b'.repeat(40),
    reason: `stopped: server s1 was rolled back (${HOSTILE})`,
  });
}

function assertHarmless(text: string, what: string): void {
  const m = RAW_CONTROL.exec(text);
  assert.equal(m, null, `${what} prints a raw control character ${JSON.stringify(m?.[0])} at ${m?.index}: ${JSON.stringify(text)}`);
  assert.ok(text.includes('\\e[2J'), `${what}: ESC is shown as \\e: ${JSON.stringify(text)}`);
  assert.ok(text.includes('\\u202e'), `${what}: a bidi override is shown escaped`);
}

test('visibleText / visibleLine: every control a terminal acts on is a visible escape; text in any language is left alone', () => {
  assert.equal(visibleText('a\x1b[31mb\x1b[0m'), 'a\\e[31mb\\e[0m');
  assert.equal(visibleText('1\n\t2\r3\x07\x00\x7f'), '1\n\t2\\r3\\x07\\x00\\x7f');
  assert.equal(visibleLine('1\n\t2'), '1\\n\\t2');
  assert.equal(visibleText('\u009b2J \u0085'), '\\u009b2J \\u0085');
  assert.equal(visibleText('\u202aa\u202bb\u202cc\u202dd\u202ee\u2066f\u2067g\u2068h\u2069i\u200ej\u200fk\u061cl'),
    '\\u202aa\\u202bb\\u202cc\\u202dd\\u202ee\\u2066f\\u2067g\\u2068h\\u2069i\\u200ej\\u200fk\\u061cl');
  assert.equal(visibleText('bad byte: \ufffd'), 'bad byte: \\ufffd');
  for (const plain of ['plain ascii', 'é ünïcödé ✓ 日本語 עברית العربية 🚀', 'C:\\path\\x', '']) assert.equal(visibleText(plain), plain);
  for (let code = 0; code < 0x100; code++) {
    const ch = String.fromCharCode(code);
    const shown = visibleLine(ch);
    if (code < 0x20 || (code >= 0x7f && code < 0xa0)) assert.match(shown, /^\\(e|r|n|t|x[0-9a-f]{2}|u00[89][0-9a-f])$/, `U+${code.toString(16)}`);
    else assert.equal(shown, ch);
  }
});

test('terminalSafeJson: the same document, with DEL, C1 and bidi controls as \\u escapes', () => {
  const value = { s: 'a\x1b[2J\x7f\u009b\u202eb', n: 1 };
  const json = terminalSafeJson(JSON.stringify(value, null, 2));
  assert.doesNotMatch(json, RAW_CONTROL);
  assert.deepEqual(JSON.parse(json), value);
});

test('logs text shows every control character of remote output as a visible escape, keeping lines and tabs', () => {
  const step: JournalEntry = {
    id: 1, updateName: 'u', serverId: 1, serverName: 's1', phase: 'update', command: 'make',
    startedAt: '2026-01-01T00:00:00.000Z', endedAt: '2026-01-01T00:00:01.000Z', exitCode: 3,
    stdout: `line one\n\tindented ${HOSTILE}\nlast`, stderr: HOSTILE, error: null,
  };
  const event: EventRecord = { id: 1, updateName: 'u', serverName: 's1', at: '2026-01-01T00:00:01.000Z', kind: 'status', message: `rolled-back: ${HOSTILE}`, actor: null };
  const text = logsText([server()], [step], [event]);
  assertHarmless(text, 'logs');
  assert.match(text, /\| line one\n/, 'newlines still split lines');
  assert.match(text, /\| \tindented ok\\e\[2J\\e\[H\\e\]0;owned\\x07 \\e\[31mred\\e\[0m\\rover\\x08X\\x00\\x7f \\u009b2J \\u202eevil\\u202c \\u2066iso\\u2069 \\ufffd end/);
});

test('status text shows a server error and the reason harmlessly, on one line', () => {
  const text = updateText(update(), [server({ error: `exited 1: ${HOSTILE}\nsecond line\tx` })]);
  assertHarmless(text, 'status');
  assert.match(text, /second line/);
  assert.doesNotMatch(text, /\nsecond line/, 'a newline in an error does not break the table');
  assert.match(text, /\\nsecond line\\tx/, 'newline and tab shown as \\n and \\t');
});

test('the progress reporter shows remote errors harmlessly', () => {
  const stream = new PassThrough();
  let out = '';
  stream.on('data', (d: Buffer) => (out += d.toString()));
  const r = new Reporter({ stream: stream as unknown as NodeJS.WriteStream, quiet: false, live: false, prefix: false, verbose: true });
  r.onEvent({ type: 'probe', update: 'u', server: 's1', status: 'unreachable', commit: null, error: `version_command exited 1: ${HOSTILE}` });
  r.onEvent({ type: 'command', update: 'u', server: 's1', phase: 'update', command: 'make', code: null, error: HOSTILE, durationMs: 1 });
  r.onEvent({ type: 'server-finished', update: 'u', server: 's1', status: 'rolled-back', error: HOSTILE, durationMs: 1, fromCommit: null, toCommit: null, atCommit: null });
  r.onEvent({ type: 'takeover', update: 'u', server: 's1', message: HOSTILE });
  r.onEvent({ type: 'update-finished', update: 'u', status: 'failure', reason: HOSTILE, counts: { total: 1 } });
  assertHarmless(out, 'the reporter');
  assert.equal(out.split('\n').length, 6, `one line per event: ${JSON.stringify(out)}`);
});

test('through the CLI: logs and status show a server\'s escape sequences escaped; --raw and --json give them back', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'esc.db');
  // An update command that prints escape sequences and bidi overrides, then fails with more on stderr.
  const noisy = String.raw`printf 'fetching\033[2J\033[H\033]0;owned\007 \342\200\256evil\n'; printf '\033[31mboom\033[0m\rX\n' >&2; exit 3`;
  const config = fleet.writeConfig({ name: 'esc', agent: { update: [noisy] } });
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);
  const r = await cli(['start', 'esc'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, RAW_CONTROL, 'start\'s progress lines');
  assert.match(r.stdout, /\\e\[31mboom\\e\[0m/);

  const logs = await cli(['logs', 'esc'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  assert.doesNotMatch(logs.stdout, RAW_CONTROL);
  assert.match(logs.stdout, /fetching\\e\[2J\\e\[H\\e\]0;owned\\x07 \\u202eevil/);
  assert.match(logs.stdout, /! \\e\[31mboom\\e\[0m\\r/);

  const status = await cli(['status', 'esc'], { db });
  assert.equal(status.code, 0, status.stderr);
  assert.doesNotMatch(status.stdout, RAW_CONTROL);
  assert.match(status.stdout, /exited 3: \\e\[31mboom\\e\[0m/);

  // The journal keeps what the server printed: --raw shows it as it is, --json escapes it as JSON does.
  const raw = await cli(['logs', 'esc', '--raw'], { db });
  assert.equal(raw.code, 0, raw.stderr);
  assert.ok(raw.stdout.includes('fetching\x1b[2J\x1b[H\x1b]0;owned\x07 \u202eevil'), raw.stdout);
  const json = await cli(['logs', 'esc', '--json'], { db });
  assert.equal(json.code, 0, json.stderr);
  assert.doesNotMatch(json.stdout, RAW_CONTROL);
  const doc = JSON.parse(json.stdout) as { servers: Array<{ steps: Array<{ stdout: string | null }> }> };
  assert.ok(doc.servers[0]!.steps.some((s) => s.stdout?.includes('\x1b[2J')), 'the JSON holds the original text');
});

test('status text: an executor alive on this host that has not beaten for a while is shown as maybe stopped; a dead one as gone', async () => {
  const { hostname } = await import('node:os');
  const { processStartTime } = await import('../../src/liveness.js');
  const old = new Date(Date.now() - 40_000).toISOString();
  const alive = { token: 't', pid: process.pid, host: hostname(), pidStart: processStartTime(process.pid), since: old, heartbeat: old };
  const stopped = updateText(updateRecord({ lease: alive }), []);
  assert.match(stopped, new RegExp(`executor pid ${process.pid} on .* \\(alive, but no heartbeat for 4\\ds: stopped\\? \`kill -CONT ${process.pid}\` on `));
  const beating = updateText(updateRecord({ lease: { ...alive, heartbeat: new Date().toISOString() } }), []);
  assert.doesNotMatch(beating, /stopped\?|gone/);
  const dead = updateText(updateRecord({ lease: { ...alive, pid: 2147483646 } }), []);
  assert.match(dead, /\(gone: `.*start u` takes over\)/);
});
