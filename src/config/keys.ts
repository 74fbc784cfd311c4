/**
 * What a config may hold: each section's keys (KEYS), the keys SPEC.md has decided on that are
 * not built yet (PLANNED: refused as "not supported yet" rather than as unknown keys), and the
 * value of each key left out (DEFAULTS).
 */

/** The value each key takes when the config (and the site defaults) leave it out. */
export const DEFAULTS = {
  serverType: 'default',
  sshPort: 22,
  knownHosts: '~/.ssh/known_hosts',
  connectTimeoutMs: 10_000,
  commandTimeoutMs: 600_000,
  passphraseEnv: 'AGENT_UPDATE_SSH_PASSPHRASE',
  sshAgent: true,
  keepaliveIntervalMs: 15_000,
  reconnectForMs: 30_000,
  outputLimitBytes: 65_536,
  healthExpect: '{commit}',
  healthTimeoutMs: 300_000,
  healthIntervalMs: 2_000,
  rollbackEnabled: true,
  continueAfterRollback: false,
  stopAfter: 0,
  busyWaitMs: 600_000,
  prepareAhead: 1,
  maxHandshakes: 8,
  jumpPort: 22,
  diagnoseTimeoutMs: 30_000,
  bakeMs: 0,
  guardIntervalMs: 30_000,
  guardAfterFinishMs: 0,
  hookTimeoutMs: 10_000,
} as const;

/** Each section's keys (`top`: the config's own); any other key is refused, naming the nearest when one is close. */
export const KEYS = {
  top: ['name', 'source', 'servers', 'inventory', 'server_types', 'include', 'exclude', 'ssh', 'agent', 'restart', 'rollback', 'test_mode', 'execution', 'hooks'],
  source: ['repo', 'branch', 'commit', 'version', 'min_compatible', 'max_compatible', 'min_version', 'stepping_stones'],
  stone: ['version', 'commit', 'min_version'],
  server: ['name', 'host', 'port', 'user', 'type', 'identity_file', 'jump'],
  ssh: [
    'user',
    'port',
    'identity_file',
    'known_hosts',
    'connect_timeout',
    'command_timeout',
    'passphrase_env',
    'agent',
    'keepalive_interval',
    'dead_man_timeout',
    'reconnect_for',
    'output_limit',
    'config',
    'jump',
    'max_handshakes',
  ],
  agent: ['version_command', 'semver_command', 'prepare', 'update', 'restart', 'health', 'diagnose'],
  health: ['command', 'expect', 'timeout', 'interval', 'stable_for'],
  rollback: ['enabled', 'continue_after_rollback', 'commit'],
  test_mode: ['stop_after'],
  execution: ['busy_wait', 'max_failures', 'prepare_ahead', 'steps', 'bake', 'pause_after_step', 'guard', 'window'],
  step: ['servers', 'bake', 'pause_after'],
  guard: ['interval', 'rollback', 'after_finish'],
  hook: ['run', 'url', 'timeout', 'required', 'events'],
  /** `execution.window` (config/window.ts) */
  window: ['days', 'hours', 'timezone'],
} as const;

/** Keys SPEC.md lists as decided extensions that this version does not implement yet. */
export const PLANNED: Record<string, Record<string, string>> = {
  top: {},
  source: {
  },
  agent: {},
};
