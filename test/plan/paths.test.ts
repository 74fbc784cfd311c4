/**
 * Stepping stones (issue 14, item 4), the pure parts: the config keys' checks, and each server's
 * path from its version (plan/versions.ts pathFor).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
/* eslint-disable @typescript-eslint/no-explicit-any */
import { describePath, pathFor } from '../../src/plan/versions.js';
import type { VersionBounds } from '../../src/config/types.js';
import { ok, problems, variant } from '../config/helpers.js';

const C = (n: number) => String(n).repeat(40);
const bounds: VersionBounds = {
  version: '1.3.0',
  minVersion: '1.1.0',
  steppingStones: [
    { version: '1.0.0', commit: C(1), minVersion: '0.9.0' },
    { version: '1.1.0', commit: C(2), minVersion: null },
  ],
};
const T = C(9);
const versions = (v: string) => {
  const r = pathFor(v, bounds, T);
  return r.kind === 'path' ? r.hops.map((h) => h.version) : r.kind;
};

test('pathFor: at or above min_version direct; below it every stone above its version, in order, then the target', () => {
  assert.equal(versions('1.1.0'), 'direct');
  assert.equal(versions('1.2.5'), 'direct');
  assert.equal(versions('1.3.0'), 'direct', 'current');
  assert.equal(versions('2.0.0'), 'direct');
  assert.deepEqual(versions('1.0.5'), ['1.1.0', '1.3.0']);
  assert.deepEqual(versions('1.0.0'), ['1.1.0', '1.3.0'], 'at a stone: the stones above it');
  assert.deepEqual(versions('0.9.4'), ['1.0.0', '1.1.0', '1.3.0']);
  const r = pathFor('0.9.4', bounds, T);
  assert.ok(r.kind === 'path');
  assert.deepEqual(r.hops.map((h) => h.commit), [C(1), C(2), T], 'each hop its own commit, the target last');
  assert.equal(describePath('0.9.4', r.hops), '0.9.4 → 1.0.0 → 1.1.0 → 1.3.0');
  // a prerelease below a stone is below it
  assert.deepEqual(versions('1.1.0-rc.1'), ['1.1.0', '1.3.0']);
});

test('pathFor: no path below a stone’s own min_version, nor without stones; no bound means direct', () => {
  const low = pathFor('0.8.0', bounds, T);
  assert.equal(low.kind, 'none');
  assert.match(low.kind === 'none' ? low.reason : '', /agent 0\.8\.0 is below source\.min_version 1\.1\.0.*0\.8\.0 is below 0\.9\.0, the oldest that can upgrade to the stepping stone 1\.0\.0: no path/);
  const bare = pathFor('1.0.0', { version: '1.3.0', minVersion: '1.1.0' }, T);
  assert.equal(bare.kind, 'none');
  assert.match(bare.kind === 'none' ? bare.reason : '', /no stepping stone leads there from it/);
  assert.equal(pathFor('0.1.0', { version: '1.3.0' }, T).kind, 'direct', 'no min_version: every server direct');
});

test('config: min_version and stepping_stones are read, stones sorted; their rules are config errors naming the key', () => {
  const c = ok(
    variant((r) => {
      r.source.version = '1.3.0';
      r.source.min_version = 'v1.1.0';
      r.source.stepping_stones = [{ version: '1.1.0', commit: 'ABCDEF1' }, { version: '1.0.0', commit: 'abcdef2', min_version: '0.9.0' }];
      r.agent.semver_command = 'cat VERSION';
    }),
  );
  assert.equal(c.source.minVersion, '1.1.0');
  assert.deepEqual(c.source.steppingStones!.map((x) => [x.version, x.minVersion]), [['1.0.0', '0.9.0'], ['1.1.0', null]], 'sorted by version');
  assert.equal(c.source.steppingStones![0]!.commit.toLowerCase(), 'abcdef2');
  const cases: Array<[string, (r: Record<string, any>) => void, string, RegExp]> = [
    ['min_version without version', (r) => void ((r.source.min_version = '1.1.0'), (r.agent.semver_command = 'x')), 'source.min_version', /needs source\.version/],
    ['min_version without semver_command', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0')), 'source.min_version', /needs agent\.semver_command/],
    ['min_version above version', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.4.0'), (r.agent.semver_command = 'x')), 'source.min_version', /above source\.version 1\.3\.0/],
    ['stones without min_version', (r) => void ((r.source.version = '1.3.0'), (r.source.stepping_stones = [{ version: '1.1.0', commit: 'abcdef1' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones', /needs source\.min_version/],
    ['stone not a mapping', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = ['1.1.0']), (r.agent.semver_command = 'x')), 'source.stepping_stones[0]', /must be \{version, commit\}/],
    ['stone without commit', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.1.0' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones[0].commit', /is required/],
    ['stone bad commit', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.1.0', commit: 'xyz' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones[0].commit', /7 to 40 hex/],
    ['stone unknown key', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.1.0', commit: 'abcdef1', branch: 'x' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones[0].branch', /unknown key/],
    ['stone at the target', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.3.0', commit: 'abcdef1' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones', /1\.3\.0 is not below source\.version/],
    ['stone twice', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.1.0', commit: 'abcdef1' }, { version: 'v1.1.0', commit: 'abcdef2' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones[1].version', /listed twice/],
    ['highest stone below min_version', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.0.0', commit: 'abcdef1' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones', /the highest stepping stone, 1\.0\.0, is below source\.min_version 1\.1\.0/],
    ['stone min_version not below it', (r) => void ((r.source.version = '1.3.0'), (r.source.min_version = '1.1.0'), (r.source.stepping_stones = [{ version: '1.1.0', commit: 'abcdef1', min_version: '1.2.0' }]), (r.agent.semver_command = 'x')), 'source.stepping_stones[0].min_version', /not below the stepping stone's own version/],
  ];
  for (const [what, fn, key, re] of cases) {
    const found = problems(variant(fn));
    const p = found.find((x) => x.path === key);
    assert.ok(p, `${what}: expected a problem at ${key}, got ${JSON.stringify(found)}`);
    assert.match(p.message, re, what);
  }
});

test('config: a stone whose commit or version is wrong is that one problem, not also "the highest stepping stone is below min_version"', () => {
  for (const [what, stone, key] of [
    ['a bad commit', { version: '1.1.0', commit: 'zzzzzzzz' }, 'source.stepping_stones[1].commit'],
    ['no commit', { version: '1.1.0' }, 'source.stepping_stones[1].commit'],
    ['a bad version', { version: 'v1.1', commit: 'abcdef1' }, 'source.stepping_stones[1].version'],
  ] as const) {
    const found = problems(
      variant((r) => {
        r.source.version = '1.3.0';
        r.source.min_version = '1.1.0';
        r.source.stepping_stones = [{ version: '1.0.0', commit: 'abcdef2' }, stone];
        r.agent.semver_command = 'x';
      }),
    );
    assert.deepEqual(found.map((p) => p.path), [key], `${what}: ${JSON.stringify(found)}`);
  }
});
