import assert from 'node:assert/strict';
import { ConfigError, EXIT, type ConfigProblem } from '../../src/errors.js';
import type { Config } from '../../src/config/types.js';
import { validateConfig, type ValidateContext } from '../../src/config/validate.js';

export const HOME = '/home/op';
export const DIR = '/srv/rollouts';
export const EXISTING = new Set([`${HOME}/.ssh/known_hosts`, `${HOME}/.ssh/id_ed25519`, `${DIR}/keys/deploy`]);

export function ctx(extra: Partial<ValidateContext> = {}): ValidateContext {
  return {
    file: 'fleet.yaml',
    dir: DIR,
    home: HOME,
    user: 'op',
    exists: (p) => EXISTING.has(p),
    // no inventory exists here unless a test gives its own reader
    readInventory: (p) => ({ kind: 'unreadable', message: `file not found: ${p}` }),
    ...extra,
  };
}

/** A small valid config as YAML would parse it. */
export function base(): Record<string, unknown> {
  return {
    source: { repo: 'https://github.com/example/agent', branch: 'master' },
    servers: [
      { name: 'app1', host: '10.0.0.11', type: 'app' },
      { name: 'db1', host: '10.0.0.21', port: 2222, user: 'ops', type: 'db' },
    ],
    agent: {
      version_command: 'git -C ~/agent/repo rev-parse HEAD',
      update: ['git -C ~/agent/repo fetch --quiet {repo} {branch}', 'git -C ~/agent/repo reset --hard {commit}'],
      restart: { web: 'sudo supervisorctl restart agent:web', workers: "sudo supervisorctl restart 'agent:worker-*'" },
      health: { command: 'curl -fsS http://127.0.0.1:25052/version' },
    },
    restart: ['web'],
  };
}

/** base() changed by `fn` (which may mutate it, or return a replacement). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function variant(fn: (c: Record<string, any>) => unknown): Record<string, unknown> {
  const c = base();
  const r = fn(c);
  return (r === undefined ? c : r) as Record<string, unknown>;
}

export function ok(raw: unknown, c: ValidateContext = ctx()): Config {
  const r = validateConfig(raw, c);
  if ('problems' in r) assert.fail(`expected a valid config, got:\n${r.problems.map((p) => `${p.path}: ${p.message}`).join('\n')}`);
  return r.config;
}

export function problems(raw: unknown, c: ValidateContext = ctx()): ConfigProblem[] {
  const r = validateConfig(raw, c);
  if ('config' in r) assert.fail('expected problems, the config was accepted');
  return r.problems;
}

/** The ConfigError (exit 2) `fn` throws; fails the test when it throws nothing or something else. */
export function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
    assert.equal(e.exitCode, EXIT.usage);
    return e;
  }
  assert.fail('expected a ConfigError');
}
