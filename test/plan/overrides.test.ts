/**
 * `--limit`, `--branch`, `--commit`, `--version` of plan and auto (issue 25 §4.1, §4.2): the
 * config as they change it for one update, each value checked as the config's is; the target
 * they resolve to against a real (local) git repository with tags.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import type { Config } from '../../src/config/types.js';
import { EXIT, UsageError } from '../../src/errors.js';
import { checkSourceFlags, withOverrides } from '../../src/plan/overrides.js';
import { selectServers, settingsOf } from '../../src/plan/plan.js';
import { resolveTarget, resolveVersionTag } from '../../src/plan/source.js';
import { ok, variant } from '../config/helpers.js';

const work = mkdtempSync(join(tmpdir(), 'agent-update-overrides-'));
test.after(() => rmSync(work, { recursive: true, force: true }));

function git(...args: string[]): string {
  return execFileSync('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@x', '-c', 'commit.gpgsign=false', ...args], { encoding: 'utf8' }).trim();
}

// master: a (v1.0.0) ── b (v1.1.0, annotated) ── c; hotfix: from a ── h (1.0.1, no v)
const repo = join(work, 'up');
execFileSync('git', ['init', '--quiet', '-b', 'master', repo]);
const commit = (m: string) => {
  git('commit', '--quiet', '--allow-empty', '-m', m);
  return git('rev-parse', 'HEAD');
};
const a = commit('a');
git('tag', 'v1.0.0');
const b = commit('b');
git('tag', '-a', '-m', 'release', 'v1.1.0');
const c = commit('c');
git('checkout', '--quiet', '-b', 'hotfix', a);
const h = commit('h');
git('tag', '1.0.1');
git('checkout', '--quiet', 'master');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function config(over: (c: Record<string, any>) => unknown = () => undefined): Config {
  const cfg = ok(
    variant((x) => {
      x.source.repo = repo;
      x.servers = ['app1', 'app2', 'app3'].map((name, i) => ({ name, host: `10.0.0.${i + 1}` }));
      over(x);
    }),
  );
  return cfg;
}

async function usage(p: Promise<unknown> | (() => unknown)): Promise<string> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    assert.ok(e instanceof UsageError, String(e));
    assert.equal(e.exitCode, EXIT.usage);
    return e.message;
  }
  assert.fail('expected a UsageError');
}

test('without an option the config is the config, and its settings record nothing', () => {
  const cfg = config();
  assert.equal(withOverrides(cfg, {}), cfg);
  assert.equal(settingsOf(cfg, c, null).overrides, undefined);
});

test('--limit narrows the selected servers and is recorded with how many the config selected', () => {
  const cfg = withOverrides(config((x) => (x.exclude = ['app3'])), { limit: ['app*', '!app2'] });
  assert.deepEqual(selectServers(cfg).map((s) => s.name), ['app1']);
  assert.deepEqual(cfg.overrides, { limit: { patterns: ['app*', '!app2'], selected: 2 } });
  assert.deepEqual(settingsOf(cfg, c, null).overrides, cfg.overrides);
  // app3 is in the config but excluded: --limit never reaches past the config's selection
  assert.match(withOverridesError(config((x) => (x.exclude = ['app3'])), { limit: ['app3'] }), /"app3" matches none of the 2 servers the config selects \(it matches app3, which server_types, include or exclude leave out\)/);
});

function withOverridesError(cfg: Config, flags: Parameters<typeof withOverrides>[1]): string {
  try {
    withOverrides(cfg, flags);
  } catch (e) {
    assert.ok(e instanceof UsageError);
    return e.message;
  }
  assert.fail('expected a UsageError');
}

test('the shapes of --branch, --commit, --version are checked as the config checks its values, every one named', async () => {
  assert.deepEqual(checkSourceFlags({ branch: 'hotfix', commit: 'ABCDEF0', version: 'v1.2.3' }), { branch: 'hotfix', commit: 'abcdef0', version: '1.2.3' });
  const all = await usage(() => checkSourceFlags({ branch: 'a..b', commit: 'xyz', version: '1.2' }));
  assert.match(all, /--branch "a\.\.b" is not a valid branch name: it must not contain '\.\.'/);
  assert.match(all, /--commit "xyz" is not a commit hash \(7 to 40 hex digits\)/);
  assert.match(all, /--version "1\.2" is not a version \(semver/);
});

test('--branch: its tip, whatever source.commit said; an unknown branch names --branch (did you mean)', async () => {
  const cfg = withOverrides(config((x) => (x.source.commit = a.slice(0, 7))), { branch: 'hotfix' });
  assert.equal(cfg.source.branch, 'hotfix');
  assert.equal(cfg.source.commit, null);
  assert.equal(await resolveTarget(cfg), h);
  assert.deepEqual(settingsOf(cfg, h, null).source, { repo, branch: 'hotfix', commit: h });
  assert.match(await usage(resolveTarget(withOverrides(config(), { branch: 'hotfx' }))), /^--branch: .* has no branch "hotfx"; did you mean "hotfix"\?/);
});

test('--commit: that commit (an abbreviation expanded, on the branch); one not on it names --commit', async () => {
  assert.equal(await resolveTarget(withOverrides(config(), { commit: b.slice(0, 8) })), b);
  assert.equal(await resolveTarget(withOverrides(config(), { commit: a.slice(0, 7), branch: 'hotfix' })), a, 'a is on hotfix too');
  assert.match(await usage(resolveTarget(withOverrides(config(), { commit: h.slice(0, 9) }))), /^--commit: [0-9a-f]{9} is not a commit on branch master of /);
});

test('--version: the commit of its tag (v-prefixed, annotated peeled, or bare), the target version for classes and bounds', async () => {
  const v11 = withOverrides(config(), { version: 'v1.1.0' });
  assert.equal(v11.source.version, '1.1.0');
  assert.equal(await resolveTarget(v11), b, 'the annotated tag, peeled to its commit');
  assert.equal(settingsOf(v11, b, null).versions?.version, '1.1.0');
  assert.deepEqual(v11.overrides, { source: { version: 'v1.1.0' } });
  assert.deepEqual(await resolveVersionTag(repo, '1.0.0'), { commit: a, tag: 'v1.0.0' });
  assert.deepEqual(await resolveVersionTag(repo, '1.0.1'), { commit: h, tag: '1.0.1' }, 'a tag with no v');
  assert.match(await usage(resolveVersionTag(repo, '1.2.0')), /has no tag of version 1\.2\.0 \(v1\.2\.0 or 1\.2\.0\); did you mean "1\.0\.0" or "1\.1\.0"\?/);
  // with --commit, the version only labels that commit: no tag is needed
  const labelled = withOverrides(config(), { commit: c.slice(0, 7), version: '1.2.0' });
  assert.equal(await resolveTarget(labelled), c);
  assert.equal(labelled.source.version, '1.2.0');
  // two tags of one version naming different commits
  git('tag', 'v1.0.1', b);
  try {
    assert.match(await usage(resolveVersionTag(repo, '1.0.1')), /are all version 1\.0\.1 but name different commits; give --commit/);
  } finally {
    git('tag', '-d', 'v1.0.1');
  }
});

test('a config that states its version: --commit or --branch needs --version; --version is checked against the bounds', async () => {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const versioned = (more: (s: Record<string, any>) => void = () => undefined) =>
    config((x) => {
      x.agent.semver_command = 'cat VERSION';
      x.source.version = '1.1.0';
      more(x.source);
    });
  assert.match(await usage(() => withOverrides(versioned(), { commit: a.slice(0, 7) })), /--commit replaces the target of .*, whose source\.version \(1\.1\.0\) says what version its own target is: give the version of the new target with --version/);
  assert.match(await usage(() => withOverrides(versioned(), { branch: 'hotfix' })), /^--branch replaces the target/);
  assert.equal(withOverrides(versioned(), { branch: 'hotfix', version: '1.0.1' }).source.version, '1.0.1');
  const bounded = versioned((s) => {
    s.min_compatible = '1.0.0';
    s.min_version = '1.0.0';
    s.stepping_stones = [{ version: '1.0.5', commit: a }];
  });
  const e = await usage(() => withOverrides(bounded, { version: '0.9.0' }));
  assert.match(e, /^--version 0\.9\.0: it is below source\.min_compatible 1\.0\.0: .*; it is below source\.min_version 1\.0\.0: .*; the stepping stone 1\.0\.5 of the config is not below it/);
  assert.equal(withOverrides(bounded, { version: '1.1.0' }).source.version, '1.1.0');
});
