/**
 * `--json` for CI (docs/reference/events.md): `start`/`resume --json` write one event per
 * line as things happen, the last line the result; `status --watch --json` one document per line;
 * an error that ends a command is a JSON object on stdout too. The real CLI against a real sshd
 * fleet.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands } from '../../src/sim/agent.js';
import { MAX_FIELD } from '../../src/output/ndjson.js';
import { cli, printed, sharedFleet, spawnCli, statusJson, type StatusDoc } from '../helpers/cli.js';
import { heldInVerify, openGate } from '../helpers/gates.js';

const fleetFor = sharedFleet({ servers: 3 });

type Line = Record<string, unknown> & { v: number; type: string; at: string; update?: string; server?: string };

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/**
 * Every line of `stdout` parsed (each one must be a whole JSON object), and the checks every line
 * passes. (cli() gives stdout without its final newline, as execa does.)
 */
function lines(stdout: string): Line[] {
  assert.ok(stdout.length > 0, 'something on stdout');
  const out = stdout
    .split('\n')
    .map((l, i) => {
      let v: unknown;
      assert.doesNotThrow(() => (v = JSON.parse(l)), `line ${i + 1} is not JSON: ${l}`);
      return v as Line;
    });
  let previous = '';
  for (const [i, l] of out.entries()) {
    assert.equal(typeof l, 'object', `line ${i + 1}`);
    assert.equal(l.v, 1, `line ${i + 1} has v: 1`);
    assert.equal(typeof l.type, 'string', `line ${i + 1} has a type`);
    assert.match(l.at, ISO, `line ${i + 1} has at in ISO 8601 UTC`);
    assert.ok(l.at >= previous, `line ${i + 1} is not earlier than the one before`);
    previous = l.at;
  }
  return out;
}

test('start --json: NDJSON of a rollout with a server rolled back, event by event, the last line the result', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const agent = agentCommands();
  // s2 refuses the target in its update step (gate `refuse`), so it is rolled back; the first
  // health check of each verify fails with terminal controls in its output; one update command
  // is longer than an event carries.
  const long = `: ${'x'.repeat(3 * MAX_FIELD)}`;
  const refuse = `if [ -e ~/gates/refuse ] && [ {commit} = ${commits.good} ]; then echo 'refused by the test' >&2; exit 9; fi`;
  const health = `n=$(cat ~/hc 2>/dev/null || echo 0); echo $((n + 1)) > ~/hc; if [ "$n" -lt 1 ]; then printf 'starting \\033[2J \\342\\200\\256 evil\\n' >&2; exit 7; fi; ~/agent/bin/health`;
  const config = fleet.writeConfig({
    name: 'nd',
    agent: { update: [...agent.update, refuse, long], health: { command: health, timeout: '20s', interval: '50ms' } },
    rollback: { continue_after_rollback: true },
  });
  openGate(fleet, 'refuse', ['s2']);
  const db = join(fleet.root, 'nd.db');
  const p = await cli(['plan', '-c', config], { db });
  assert.equal(p.code, 0, p.stderr);

  const r = await cli(['start', 'nd', '--json'], { db });
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /s2 rolled-back/, 'human progress still goes to stderr');
  // eslint-disable-next-line no-control-regex
  assert.doesNotMatch(r.stdout, /[\x00-\x09\x0b-\x1f\x7f-\x9f\u202e]/, 'no raw control or bidi character on stdout');
  const all = lines(r.stdout);

  // The outline: update-started, each server started … finished in plan order, update-finished, result.
  const outline = all.filter((l) => ['update-started', 'server-started', 'server-finished', 'update-finished', 'result'].includes(l.type));
  assert.deepEqual(
    outline.map((l) => `${l.type}${l.server ? ` ${l.server}` : ''}`),
    ['update-started', 'server-started s1', 'server-finished s1', 'server-started s2', 'server-finished s2', 'server-started s3', 'server-finished s3', 'update-finished', 'result'],
  );
  assert.equal(all.at(-1)!.type, 'result', 'the result is the last line');
  for (const l of all) assert.equal(l.update, 'nd', `${l.type} names the update`);
  // Every event about a server comes after its server-started and before the next server's (the
  // release of its lock on the server is a command after its server-finished); none before the first.
  let current: string | null = null;
  for (const l of all) {
    if (l.type === 'server-started') current = l.server!;
    else if (['server-step', 'command', 'health-waiting', 'reconnecting', 'server-finished'].includes(l.type)) assert.equal(l.server, current, `${l.type} during ${current}`);
    else assert.equal(l.server, undefined, `${l.type} concerns no one server`);
  }

  const started = all.find((l) => l.type === 'update-started')!;
  assert.deepEqual(
    { takeover: started.takeover, resumed: started.resumed, pending: started.pending, total: started.total, counts: started.counts },
    { takeover: false, resumed: false, pending: 3, total: 3, counts: { total: 3, pending: 3 } },
  );
  const s1Started = all.find((l) => l.type === 'server-started' && l.server === 's1')!;
  assert.deepEqual(
    { index: s1Started.index, total: s1Started.total, port: s1Started.port, fromCommit: s1Started.fromCommit, toCommit: s1Started.toCommit },
    { index: 1, total: 3, port: fleet.port, fromCommit: commits.base, toCommit: commits.good },
  );
  assert.equal(s1Started.host, fleet.server('s1').host);

  const steps = (server: string) => all.filter((l) => l.type === 'server-step' && l.server === server).map((l) => l.step);
  assert.deepEqual(steps('s1'), ['update', 'restart', 'verify']);
  assert.deepEqual(steps('s2'), ['update', 'rollback', 'verify-rollback']);
  assert.deepEqual(steps('s3'), ['update', 'restart', 'verify']);

  const finished = Object.fromEntries(all.filter((l) => l.type === 'server-finished').map((l) => [l.server, l]));
  const doc = await statusJson(db, 'nd');
  for (const s of doc.servers) {
    const f = finished[s.name]!;
    assert.deepEqual(
      { status: f.status, error: f.error, fromCommit: f.fromCommit, toCommit: f.toCommit },
      { status: s.status, error: s.error, fromCommit: s.fromCommit, toCommit: s.toCommit },
      `server-finished ${s.name} says what the database recorded`,
    );
    assert.equal(typeof f.durationMs, 'number');
    assert.ok((f.durationMs as number) >= 0);
  }
  assert.deepEqual([finished.s1!.status, finished.s2!.status, finished.s3!.status], ['success', 'rolled-back', 'success']);
  assert.equal(finished.s1!.fromCommit, commits.base);
  assert.equal(finished.s1!.toCommit, commits.good);
  assert.equal(finished.s2!.fromCommit, commits.base);
  assert.match(String(finished.s2!.error), /refused by the test/);
  // where each one is now: the target, or back at its own commit after the rollback
  assert.deepEqual([finished.s1!.atCommit, finished.s2!.atCommit, finished.s3!.atCommit], [commits.good, commits.base, commits.good]);

  // Commands: phase, exit code, duration; the long one cut to a bounded size.
  const commands = all.filter((l) => l.type === 'command');
  assert.ok(commands.length >= 9, `${commands.length} command events`);
  for (const c of commands) {
    assert.equal(typeof c.phase, 'string');
    assert.ok(c.code === null || typeof c.code === 'number');
    assert.equal(typeof c.durationMs, 'number');
    assert.ok(String(c.command).length <= MAX_FIELD, `a command event carries at most ${MAX_FIELD} characters`);
  }
  const cut = commands.find((c) => String(c.command).startsWith(': xxx'));
  assert.ok(cut, 'the long command was run and reported');
  assert.match(String(cut.command), /characters cut/);
  assert.ok(commands.some((c) => c.server === 's2' && c.code === 9 && c.phase === 'update'), 'the refused command, with its exit code');

  // Health waiting, with the server's terminal controls escaped as JSON (the raw line has none).
  const waiting = all.filter((l) => l.type === 'health-waiting');
  assert.deepEqual([...new Set(waiting.map((w) => w.server))], ['s1', 's2', 's3']);
  for (const w of waiting) {
    assert.equal(typeof w.attempt, 'number');
    assert.equal(typeof w.elapsedMs, 'number');
    assert.ok(String(w.output).includes('starting \x1b[2J \u202e evil'), String(w.output));
  }

  const finishedLine = all.find((l) => l.type === 'update-finished')!;
  assert.equal(finishedLine.status, 'partial-success');
  assert.deepEqual(finishedLine.counts, { total: 3, success: 2, 'rolled-back': 1 });
  assert.equal(typeof finishedLine.reason, 'string');

  // The last line alone is enough for a script.
  const result = all.at(-1)!;
  assert.equal(result.status, 'partial-success');
  assert.equal(result.exitCode, 1);
  assert.equal(result.update, 'nd');
  assert.deepEqual(result.counts, { total: 3, success: 2, 'rolled-back': 1 });
  assert.deepEqual(result.updates, [doc], 'the result carries the status document of the update');
  assert.equal(result.error, undefined);
});

test('start --json of several batches: every line names its update, the result counts them all', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const db = join(fleet.root, 'b.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'b' })], { db })).code, 0);
  assert.equal((await cli(['split', 'b', '--batches', '2'], { db })).code, 0);
  const r = await cli(['start', 'b', 'b.2', '--json'], { db });
  assert.equal(r.code, 0, r.stderr);
  const all = lines(r.stdout);
  const of = (u: string) => all.filter((l) => l.update === u && l.type !== 'result');
  assert.deepEqual(of('b').filter((l) => l.type.startsWith('server-started')).map((l) => l.server), ['s1', 's2']);
  assert.deepEqual(of('b.2').filter((l) => l.type.startsWith('server-started')).map((l) => l.server), ['s3']);
  for (const u of ['b', 'b.2']) {
    assert.equal(of(u)[0]!.type, 'update-started', `${u} starts with update-started`);
    assert.equal(of(u).at(-1)!.type, 'update-finished', `${u} ends with update-finished`);
  }
  const result = all.at(-1)!;
  assert.equal(result.type, 'result');
  assert.equal(result.exitCode, 0);
  assert.equal(result.status, undefined, 'no one status for several updates');
  assert.deepEqual(result.counts, { total: 3, success: 3 });
  assert.deepEqual((result.updates as StatusDoc[]).map((u) => [u.name, u.status]), [['b', 'success'], ['b.2', 'success']]);
});

test('status --watch --json: one whole status document per line as it changes, ending with the update', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const db = join(fleet.root, 'w.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'w', ...heldInVerify() })], { db })).code, 0);
  const start = spawnCli(['start', 'w', '--json'], { db });
  // s1 is held in verify: its health-waiting event says so.
  await printed(start, 'stdout', /"type":"health-waiting"/);
  const watch = spawnCli(['status', 'w', '--watch', '--json', '--interval', '1'], { db });
  await printed(watch, 'stdout', /\n/);
  openGate(fleet, 'online');
  const [s, w] = await Promise.all([start, watch]);
  assert.equal(s.exitCode, 0, String(s.stderr));
  assert.equal(w.exitCode, 0, String(w.stderr));
  const stdout = String(w.stdout);
  const docs = stdout.split('\n').map((l) => JSON.parse(l) as StatusDoc);
  assert.ok(docs.length >= 2, stdout);
  for (const d of docs) {
    assert.equal(d.name, 'w');
    assert.equal(d.servers.length, 2, 'every line is the whole document');
  }
  assert.equal(docs[0]!.status, 'running');
  assert.equal(docs[0]!.servers[0]!.status, 'running');
  assert.equal(docs[0]!.servers[0]!.step, 'verify');
  assert.deepEqual(docs.at(-1), await statusJson(db, 'w'), 'the last line is the final document');
  assert.equal(docs.at(-1)!.status, 'success');
  for (let i = 1; i < docs.length; i++) assert.notDeepEqual(docs[i], docs[i - 1], 'a line only when something changed');
});

test('start --json of an update another process is executing: the result line carries the error, exit 4', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'busy.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'busy', ...heldInVerify() })], { db })).code, 0);
  const first = spawnCli(['start', 'busy', '--json'], { db });
  await printed(first, 'stdout', /"type":"health-waiting"/);
  const second = await cli(['start', 'busy', '--json'], { db });
  assert.equal(second.code, 4, second.stderr);
  const all = lines(second.stdout);
  assert.deepEqual(all.map((l) => l.type), ['result'], 'nothing started, so the result is the only line');
  const result = all[0]!;
  assert.equal(result.exitCode, 4);
  assert.equal(result.status, 'running', "the update is the other process's, running");
  assert.match(String(result.error), /pid \d+/);
  assert.deepEqual(result.errors, [{ update: 'busy', error: result.error, exitCode: 4 }]);
  openGate(fleet, 'online');
  assert.equal((await first).exitCode, 0);
});

test('--json: an error that ends a command is a JSON object on stdout too (unknown update, config, usage), exit 2', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'e.db');
  assert.equal((await cli(['plan', '-c', fleet.writeConfig({ name: 'e' })], { db })).code, 0);

  const one = (stdout: string) => {
    const all = lines(stdout);
    assert.equal(all.length, 1, stdout);
    return all[0]!;
  };
  for (const args of [['status', 'nope', '--json'], ['--json', 'start', 'nope'], ['resume', 'nope', '--json']]) {
    const r = await cli(args, { db });
    assert.equal(r.code, 2, args.join(' '));
    const e = one(r.stdout);
    assert.equal(e.type, 'error');
    assert.equal(e.exitCode, 2);
    assert.match(String(e.error), /nope/);
    assert.doesNotMatch(String(e.error), /^agent-update:/);
    assert.match(r.stderr, /agent-update: .*nope/, 'the text is on stderr too');
  }
  // A transition the state table refuses.
  assert.equal((await cli(['cancel', 'e'], { db })).code, 0);
  const refused = await cli(['start', 'e', '--json'], { db });
  assert.equal(refused.code, 2);
  assert.match(String(one(refused.stdout).error), /cancelled/);

  // A config error: every problem with its key path and line; nothing is written.
  const config = fleet.writeConfig({ agent: { health: { timeout: 'soon' } }, rollbak: {} });
  const fresh = join(fleet.root, 'fresh.db');
  const bad = await cli(['plan', '-c', config, '--json'], { db: fresh });
  assert.equal(bad.code, 2);
  assert.ok(!existsSync(fresh), 'nothing was written');
  const e = one(bad.stdout);
  assert.equal(e.exitCode, 2);
  const problems = e.problems as Array<{ file: string; line: number | null; path: string; message: string }>;
  assert.deepEqual(problems.map((p) => p.path).sort(), ['agent.health.timeout', 'rollbak']);
  for (const p of problems) {
    assert.equal(p.file, config);
    assert.equal(typeof p.line, 'number');
  }
  assert.match(String(e.error), /agent\.health\.timeout/);

  // commander's own usage errors, and a bad flag value.
  for (const args of [['--json', 'start'], ['status', '--json', '--no-such-flag'], ['start', 'e', '--json', '--stop-after', 'x']]) {
    const r = await cli(args, { db });
    assert.equal(r.code, 2, args.join(' '));
    const u = one(r.stdout);
    assert.equal(u.exitCode, 2);
    assert.ok(String(u.error).length > 0);
  }
  // Without --json stdout stays empty.
  const plain = await cli(['status', 'nope'], { db });
  assert.equal(plain.code, 2);
  assert.equal(plain.stdout, '');
});
