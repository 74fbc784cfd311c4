/**
 * agent.diagnose end to end (issue 15, item 6): the real CLI in its own process against the real
 * OpenSSH fleet, with a commit whose agent never comes online (the upstream's `broken` branch,
 * BROKEN=1: health never passes). The diagnose commands print what only the server knows (the
 * running agent's state file, its health check's complaint), so the test can tell they ran on
 * the server, and ran before the rollback put the old commit back.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { agentCommands, currentCommit } from '../../src/sim/agent.js';
import { type JournalEntry } from '../../src/model/records.js';
import { byName, cli, planned, sharedFleet, spawnCli, statusJson } from '../helpers/cli.js';
import { waitGate } from '../helpers/gates.js';
import { openStore, waitForStore as waitFor } from '../helpers/db.js';

/** One sshd fleet for the file; each test sees its first servers, reset (test/helpers/cli.ts). */
const fleetFor = sharedFleet({ servers: 2 });

/** The commit whose agent never comes online, with a health timeout short enough to see it fast. */
const BROKEN = { source: { branch: 'broken' }, agent: { health: { timeout: '500ms', interval: '100ms' } } };

/** What the running agent recorded at its last start, and its health check's complaint (on stderr, exit 7). */
const LOOK = ['cat ~/agent/run/web.state', '~/agent/bin/health', "printf 'target %s\\033[2J\\n' {commit}"];

async function steps(db: string, name: string, server: string): Promise<JournalEntry[]> {
  const store = openStore(db);
  try {
    return await store.getJournal(name, server);
  } finally {
    await store.close();
  }
}

test('a version that never comes online: diagnosed on the server before the rollback; in the journal, logs and the summary; rolled back', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await planned(fleet, { ...BROKEN, agent: { ...BROKEN.agent, diagnose: LOOK } });

  const shown = await cli(['plan', '--show-commands', name], { db });
  assert.equal(shown.code, 0, shown.stderr);
  assert.match(shown.stdout, /on a failure, first \(agent\.diagnose\):\n\s+diagnose\s+cat ~\/agent\/run\/web\.state/);
  assert.ok(shown.stdout.includes(`printf 'target %s\\033[2J\\n' ${commits.broken}`), 'placeholders filled in as they will be sent');

  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s = byName(await statusJson(db, name));
  assert.equal(s.s1!.status, 'rolled-back');
  assert.match(s.s1!.error ?? '', /not online/, 'the reason is the failure itself');
  assert.equal(currentCommit(fleet.home('s1')), commits.base);
  assert.equal(s.s2!.status, 'pending');

  // The journal: the diagnose rows after the last health check and before the first rollback
  // command, their output what the server held while the broken commit ran.
  const journal = await steps(db, name, 's1');
  const phases = journal.map((x) => x.phase);
  const first = phases.indexOf('diagnose');
  assert.deepEqual(phases.slice(first - 1, first + 4), ['verify', 'diagnose', 'diagnose', 'diagnose', 'rollback']);
  const [state, health, printed] = journal.slice(first, first + 3);
  assert.equal(state!.exitCode, 0);
  assert.match(state!.stdout ?? '', new RegExp(`COMMIT=${commits.broken}\\nSTARTED_MS=\\d+\\nBROKEN=1\\n`), 'the broken agent was still the one running');
  assert.equal(health!.exitCode, 7, 'a command that fails is recorded as it ended');
  assert.match(health!.stderr ?? '', /crashed on startup/);
  assert.equal(printed!.command, `printf 'target %s\\033[2J\\n' ${commits.broken}`);

  // The end-of-run summary: each command's last lines, terminal-safe, and where the rest is.
  assert.match(r.stdout, /diagnostics of s1 \(rolled-back\), run after it failed \(agent\.diagnose\):/);
  assert.match(r.stdout, /\$ cat ~\/agent\/run\/web\.state {2}→ exit 0\n(.*\n)*.*\| BROKEN=1/);
  assert.match(r.stdout, /\$ ~\/agent\/bin\/health {2}→ exit 7\n.*\| health: connection refused: agent at [0-9a-f]{40} crashed on startup/);
  assert.ok(r.stdout.includes(`| target ${commits.broken}\\e[2J`), 'a control sequence from the server is shown escaped');
  assert.ok(!r.stdout.includes('\x1b[2J'), 'and never sent to the terminal');
  assert.match(r.stdout, /the whole output: agent-update --db \S+ logs u1 --server s1/);
  assert.ok(r.stdout.indexOf('diagnostics of s1') > r.stdout.indexOf(`${name} failure`), 'under the outcome line');

  // logs: the steps with their output, in phase diagnose.
  const logs = await cli(['logs', name, '--server', 's1'], { db });
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /\[diagnose\] \$ cat ~\/agent\/run\/web\.state\n\s+exit 0.*\n(.*\n)*\s+\| BROKEN=1/);
  assert.match(logs.stdout, /\[diagnose\] \$ ~\/agent\/bin\/health\n\s+exit 7/);
  assert.match(logs.stdout, /running \(diagnose\)/, 'the step change is in the server events');
  assert.ok(logs.stdout.indexOf('[diagnose]') < logs.stdout.indexOf('[rollback]'));
});

test('a diagnose command that hangs is killed at its own timeout; the next one runs and the server is rolled back (--json: the diagnose events)', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await planned(fleet, { ...BROKEN, agent: { ...BROKEN.agent, diagnose: { commands: [waitGate('never'), 'echo after-the-hang'], timeout: '1s' } } });
  const r = await cli(['start', name, '--json'], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const diagnosed = events.filter((e) => e.type === 'diagnose');
  assert.equal(diagnosed.length, 2);
  assert.equal(diagnosed[0]!.server, 's1');
  assert.equal(diagnosed[0]!.ran, true);
  assert.equal(diagnosed[0]!.code, null);
  assert.equal(diagnosed[0]!.timedOut, true);
  assert.match(String(diagnosed[0]!.error), /1s/);
  assert.deepEqual([diagnosed[1]!.code, diagnosed[1]!.output], [0, 'after-the-hang']);
  const finished = events.findIndex((e) => e.type === 'server-finished');
  assert.ok(events.indexOf(diagnosed[1]!) < finished, 'diagnosed before the server finished');
  assert.equal(events.at(-1)!.type, 'result');
  assert.equal(byName(await statusJson(db, name)).s1!.status, 'rolled-back');
  assert.equal(currentCommit(fleet.home('s1')), commits.base);
  const [hung] = (await steps(db, name, 's1')).filter((x) => x.phase === 'diagnose');
  assert.equal(hung!.exitCode, null);
  assert.ok(hung!.endedAt !== null, 'its row was completed at the timeout');
  // the summary went to stderr, beside the stream
  assert.match(r.stderr, /diagnostics of s1 \(rolled-back\)/);
});

test('an update command that fails with rollback disabled: diagnosed, then left failed as it is', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { update } = agentCommands();
  const { db, name } = await planned(fleet, {
    agent: { update: [...update, 'echo migration 42 failed >&2; exit 9'], diagnose: ['tail -n 1 ~/agent/deploys.log'] },
    rollback: { enabled: false },
  });
  const r = await cli(['start', name], { db });
  assert.equal(r.code, 1, r.stdout + r.stderr);
  const s1 = byName(await statusJson(db, name)).s1!;
  assert.equal(s1.status, 'failed');
  assert.match(s1.error ?? '', /update command exited 9: migration 42 failed/);
  const journal = await steps(db, name, 's1');
  assert.deepEqual(journal.slice(-2).map((x) => x.phase), ['diagnose', 'unlock'], 'diagnosed last, then only our lock released');
  assert.equal(journal.at(-2)!.stdout?.trim(), fleet.upstream.commits.good);
  assert.match(r.stdout, /diagnostics of s1 \(failed\)/);
});

test('killed (kill -9) during a diagnose command: the takeover does not diagnose again, it goes on with the rollback', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const { commits } = fleet.upstream;
  const { db, name } = await planned(fleet, { ...BROKEN, agent: { ...BROKEN.agent, diagnose: { commands: [waitGate('diagnose'), 'echo second'], timeout: '60s' } } });
  const run = spawnCli(['start', name], { db });
  await waitFor(db, 's1 in its diagnose command', async (store) => (await store.getJournal(name, 's1')).some((x) => x.phase === 'diagnose' && x.endedAt === null));
  run.kill('SIGKILL');
  await run;
  assert.equal(byName(await statusJson(db, name)).s1!.step, 'diagnose');

  const taken = await cli(['start', name], { db });
  assert.equal(taken.code, 1, taken.stdout + taken.stderr);
  const s1 = byName(await statusJson(db, name)).s1!;
  assert.equal(s1.status, 'rolled-back');
  assert.match(s1.error ?? '', /not online/, 'the reason recorded before diagnose');
  assert.equal(currentCommit(fleet.home('s1')), commits.base);
  const journal = await steps(db, name, 's1');
  const diagnose = journal.filter((x) => x.phase === 'diagnose');
  assert.equal(diagnose.length, 1, 'not diagnosed again');
  assert.equal(diagnose[0]!.endedAt, null, 'the interrupted one is left without a result');
  // the re-check may first find the dead executor's diagnose still being killed on the server,
  // and wait for it (its own takeover steps): right after the last of them, the rollback
  const takeover = journal.map((x) => x.phase).lastIndexOf('takeover');
  assert.equal(journal[takeover + 1]!.phase, 'rollback', 'right after the re-check: the rollback');
});

test('bad agent.diagnose values: exit 2 naming the file, line and key; no database written', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const file = join(fleet.root, 'bad.yaml');
  fleet.writeConfig({ agent: { diagnose: { commands: ['tail {logfile}', 7], timeout: 'soon' } } }, file);
  const db = join(fleet.root, 'never.db');
  const r = await cli(['plan', '-c', file], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  const text = readFileSync(file, 'utf8').split('\n');
  // each problem as FILE:LINE: KEY: what is wrong, the line the one where the value is written
  const at = (key: string, message: RegExp, value: string) => {
    const found = r.stderr.split('\n').find((l) => l.includes(`${file}:`) && l.includes(`: ${key}: `));
    assert.ok(found, `a problem at ${key}: ${r.stderr}`);
    assert.match(found, message);
    const line = Number(/:(\d+): /.exec(found)![1]);
    assert.ok(text[line - 1]!.includes(value), `line ${line} is ${JSON.stringify(text[line - 1])}, not the one with ${value}`);
  };
  at('agent.diagnose.commands[0]', /unknown placeholder \{logfile\}/, 'tail {logfile}');
  at('agent.diagnose.commands[1]', /YAML read it as the number 7/, '7');
  at('agent.diagnose.timeout', /bad duration: "soon"/, 'soon');
  assert.equal(existsSync(db), false, 'nothing written');
});
