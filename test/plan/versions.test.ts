/**
 * Agent versions (issue 14, items 1–3), the pure parts: what counts as a version, the classes,
 * the ceiling, and the probe's one command read back into the commit's and the version's result
 * (run here by /bin/sh, as a server's shell would).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { test } from 'node:test';
import { checkCeiling, classOf, parseOnly, probeScript, readVersion, splitProbe } from '../../src/plan/versions.js';
import { classCounts } from '../../src/model/version-class.js';
import { parseVersion } from '../../src/util/version.js';
import { finalStatus } from '../../src/rollout/decide.js';
import { canTransitionUpdate, countsOf, serverTransition, WORKED_SERVER, worksOn } from '../../src/model/lifecycle.js';
import type { ServerRecord } from '../../src/model/records.js';
import { UsageError } from '../../src/errors.js';

test('parseVersion: strict semver after trimming and one leading v; nothing else is coerced', () => {
  const good: Array<[string, string]> = [
    ['1.3.0', '1.3.0'],
    ['  1.3.0\n', '1.3.0'],
    ['v1.3.0', '1.3.0'],
    ['V2.0.0', '2.0.0'],
    ['1.3.0-rc.1', '1.3.0-rc.1'],
    ['1.3.0+build.5', '1.3.0'],
    ['10.20.30', '10.20.30'],
  ];
  for (const [text, want] of good) assert.equal(parseVersion(text), want, JSON.stringify(text));
  for (const bad of ['', 'base', '1.3', '1', '1.3.0.1', 'vv1.3.0', '=1.3.0', 'release-1.3.0', '1.3.0\n1.4.0', '1.3.0 beta', '01.3.0', 'v', 'latest']) {
    assert.equal(parseVersion(bad), null, JSON.stringify(bad));
  }
});

test('readVersion: the version, or why not with the output in the reason', () => {
  assert.deepEqual(readVersion({ code: 0, stdout: '1.2.0\n', stderr: '' }), { version: '1.2.0' });
  const printed = readVersion({ code: 0, stdout: 'base\n', stderr: '' });
  assert.ok('error' in printed);
  assert.match(printed.error, /^version unreadable: semver_command printed "base", not a version/);
  const failed = readVersion({ code: 1, stdout: '', stderr: 'cat: VERSION: No such file or directory\n' });
  assert.ok('error' in failed);
  assert.match(failed.error, /semver_command exited 1: "cat: VERSION: No such file or directory"/);
  const cut = readVersion({ code: null, stdout: '', stderr: '', error: 'connection lost' });
  assert.ok('error' in cut);
  assert.match(cut.error, /failed: connection lost/);
});

test('classOf: below min_compatible required, below the target recommended, else current', () => {
  const bounds = { version: '1.3.0', minCompatible: '1.1.0' };
  assert.equal(classOf('1.0.0', bounds), 'required');
  assert.equal(classOf('1.1.0-rc.1', bounds), 'required');
  assert.equal(classOf('1.1.0', bounds), 'recommended');
  assert.equal(classOf('1.2.9', bounds), 'recommended');
  assert.equal(classOf('1.3.0-rc.2', bounds), 'recommended');
  assert.equal(classOf('1.3.0', bounds), 'current');
  assert.equal(classOf('2.0.0', bounds), 'current');
  // without min_compatible nothing is required; without a target nothing is classed
  assert.equal(classOf('0.1.0', { version: '1.3.0' }), 'recommended');
  assert.equal(classOf('0.1.0', {}), null);
  assert.deepEqual(classCounts([{ versionClass: 'required' }, { versionClass: 'current' }, { versionClass: 'current' }, { versionClass: null }, {}]), {
    required: 1,
    recommended: 0,
    current: 2,
  });
});

test('checkCeiling: a target above max_compatible is refused naming both versions; at it, or without one, it is not', () => {
  assert.throws(
    () => checkCeiling('/c.yaml', { version: '2.0.0', maxCompatible: '1.9.0' }),
    (e: Error) => e instanceof UsageError && /2\.0\.0 \(source\.version\) is above 1\.9\.0 \(source\.max_compatible\)/.test(e.message),
  );
  assert.throws(() => checkCeiling('/c.yaml', { version: '1.9.0', maxCompatible: '1.9.0-rc.1' }), UsageError);
  checkCeiling('/c.yaml', { version: '1.9.0', maxCompatible: '1.9.0' });
  checkCeiling('/c.yaml', { version: '1.9.0' });
  checkCeiling('/c.yaml', { maxCompatible: '1.0.0' });
});

test('parseOnly: required or recommended; anything else is a usage error', () => {
  assert.equal(parseOnly(undefined), null);
  assert.equal(parseOnly('required'), 'required');
  assert.equal(parseOnly('recommended'), 'recommended');
  assert.throws(() => parseOnly('current'), UsageError);
  assert.throws(() => parseOnly('Required'), UsageError);
});

/** probeScript run by /bin/sh, split back. */
function probe(versionCommand: string, semverCommand: string) {
  const p = probeScript(versionCommand, semverCommand, 'n0nce');
  const r = spawnSync('/bin/sh', ['-c', p.script], { encoding: 'utf8' });
  return splitProbe({ code: r.status, stdout: r.stdout, stderr: r.stderr, error: null }, p.marker);
}

test('probe script: one command, each result read back with its own exit status, output and errors', () => {
  const sha = 'a'.repeat(40);
  const both = probe(`echo ${sha}`, 'echo 1.3.0');
  assert.deepEqual(both.commit, { code: 0, stdout: `${sha}\n`, stderr: '', error: null });
  assert.deepEqual(both.version, { code: 0, stdout: '1.3.0\n', stderr: '', error: null });

  // no newline at the end of either; stderr from each kept apart
  const bare = probe(`printf ${sha}; echo oops >&2`, 'printf v1.2.0; echo warn >&2');
  assert.equal(bare.commit.stdout, sha);
  assert.equal(bare.commit.stderr, 'oops\n');
  assert.equal(bare.version.stdout, 'v1.2.0');
  assert.equal(bare.version.stderr, 'warn\n');

  // an `exit` in the version command does not skip the semver command; its status is kept
  const exits = probe('echo nope; exit 3', 'echo 1.0.0');
  assert.equal(exits.commit.code, 3);
  assert.equal(exits.commit.stdout, 'nope\n');
  assert.equal(exits.version.code, 0);
  assert.equal(exits.version.stdout, '1.0.0\n');

  // a failing semver command, and one whose last line is a comment
  const fails = probe(`echo ${sha} # the commit`, 'cat /nonexistent/VERSION # a comment');
  assert.equal(fails.commit.code, 0);
  assert.notEqual(fails.version.code, 0);
  assert.match(fails.version.stderr, /nonexistent/);

  // output that looks like a marker of another probe is just output
  const lookalike = probe('echo agent-update-semver-other 0', 'echo 1.0.0');
  assert.equal(lookalike.commit.stdout, 'agent-update-semver-other 0\n');
});

test('splitProbe: without the marker (cut connection) the whole result is the commit\'s and the version is not read', () => {
  const r = splitProbe({ code: null, stdout: 'half', stderr: '', error: 'connection lost' }, 'agent-update-semver-x');
  assert.deepEqual(r.commit, { code: null, stdout: 'half', stderr: '', error: 'connection lost' });
  assert.equal(r.version.code, null);
  assert.equal(r.version.error, 'connection lost');
});

function server(name: string, status: ServerRecord['status']): ServerRecord {
  return { id: 1, updateName: 'u', position: 0, name, host: 'h', port: 22, user: 'x', type: 't', types: ['t'], status, step: null, fromCommit: null, toCommit: null, error: null, startedAt: null, endedAt: null, lockHeld: false };
}

test('excluded: a terminal server status from pending (the probe) or unreachable (a refresh); never worked on, not a failure', () => {
  serverTransition('u', 's', 'pending', 'excluded');
  serverTransition('u', 's', 'unreachable', 'excluded');
  for (const to of ['pending', 'running', 'success', 'skipped'] as const) assert.throws(() => serverTransition('u', 's', 'excluded', to));
  assert.throws(() => serverTransition('u', 's', 'running', 'excluded'));
  assert.equal(WORKED_SERVER.has('excluded'), false);
  assert.equal(worksOn(server('s', 'excluded')), false);
  assert.deepEqual(countsOf([server('a', 'excluded'), server('b', 'success')]), { total: 2, excluded: 1, success: 1 });
  assert.equal(canTransitionUpdate('running', 'success'), true);
});

test('finalStatus: excluded servers count neither for nor against the update, and are named in the reason', () => {
  const ok = finalStatus([server('s1', 'success'), server('s2', 'skipped'), server('s3', 'excluded')]);
  assert.equal(ok.status, 'success');
  assert.equal(ok.reason, 'all 2 servers at the target; 1 server excluded, never touched: s3');
  const partial = finalStatus([server('s1', 'success'), server('s2', 'rolled-back'), server('s3', 'excluded')]);
  assert.equal(partial.status, 'partial-success');
  assert.match(partial.reason, /s2 rolled-back; 1 server excluded, never touched: s3$/);
  const bad = finalStatus([server('s1', 'failed'), server('s3', 'excluded')]);
  assert.equal(bad.status, 'failure');
  const none = finalStatus([server('s1', 'excluded'), server('s2', 'excluded')]);
  assert.equal(none.status, 'success');
  assert.equal(none.reason, 'no server to update; 2 servers excluded, never touched: s1, s2');
  // unchanged without excluded servers
  assert.equal(finalStatus([server('s1', 'success')]).reason, 'its one server at the target');
});
