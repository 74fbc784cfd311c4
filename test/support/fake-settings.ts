/**
 * The rollout settings the tests with the fake transport (fake-transport.ts) run with: commands it
 * understands (`version`, `reset {commit}`, `restart`, `health`), short timeouts, no real key.
 */
import type { RolloutSettings } from '../../src/config/types.js';

export const OLD = 'a'.repeat(40);
export const NEW = 'b'.repeat(40);
export const OTHER = 'c'.repeat(40);

export const fakeSettings: RolloutSettings = {
  source: { repo: '/r', branch: 'master', commit: NEW },
  ssh: {
    user: 'u', port: 22, identityFile: null, passphraseEnv: 'X', agent: false, knownHosts: '/k',
    connectTimeoutMs: 1000, commandTimeoutMs: 1000, keepaliveIntervalMs: 0, outputLimitBytes: 1024,
  },
  agent: {
    versionCommand: 'version',
    update: ['reset {commit}'],
    restart: { web: 'restart' },
    health: { command: 'health', expect: '{commit}', timeoutMs: 300, intervalMs: 50 },
  },
  restart: ['web'],
  rollback: { enabled: true, continueAfterRollback: false, commit: null },
};
