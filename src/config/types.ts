/**
 * The validated, normalised config (SPEC.md "Config"). Durations are milliseconds, paths are
 * absolute (`~` expanded, relative paths resolved against the config file's folder).
 * Secrets never live here: a key passphrase is read from the environment when connecting.
 */
export interface ServerSpec {
  name: string;
  /** the host connected to (an ssh config alias is already resolved to its HostName) */
  host: string;
  port: number;
  user: string;
  /** the primary type: `types[0]` (status JSON's `type`) */
  type: string;
  /**
   * every type of the server, `type` first: one for a `servers:` entry with `type: app`,
   * several for `type: [app, web]` or an Ansible host in several groups (extension)
   */
  types: string[];
  /**
   * How this server is reached, when it differs from the `ssh` block (per-server keys, the ssh
   * config, `ssh.jump`); absent fields fall back to the `ssh` block. Paths only, never key material.
   */
  identityFiles?: string[];
  knownHosts?: string;
  /** ssh config IdentitiesOnly yes (only with ssh.agent false, where it is what the transport does): offer the identity files only */
  identitiesOnly?: boolean;
  /** ssh config IdentityAgent: 'none' (only with ssh.agent false); a socket path is refused until the transport can use it */
  identityAgent?: string;
  /** ssh config CertificateFile that exist (refused until the transport offers certificates: never set yet) */
  certificateFiles?: string[];
  /** jump hosts in order (the first is connected to directly); absent or [] = direct */
  jump?: JumpHost[];
  /**
   * Where each of the values above was decided (`servers[2].host`, `hosts.ini:3 (web1)`, `ssh
   * config /home/me/.ssh/config:12`, `ssh.user`), for `agent-update servers`. Set by the validator
   * as a non-enumerable property: in memory only, never in JSON, the database or a copy of the spec.
   */
  readonly sources?: ServerSources;
}

/** The fields of a server whose provenance `agent-update servers` shows. */
export type ServerSourceField = 'host' | 'port' | 'user' | 'identityFiles' | 'jump' | 'knownHosts';
/** Where each value came from, in words (ServerSpec.sources). */
export type ServerSources = Partial<Record<ServerSourceField, string>>;

/** One jump host (bastion) on the way to a server. */
export interface JumpHost {
  host: string;
  port: number;
  user: string;
  /** private key files offered, in order, before ssh-agent; absent = `ssh.identity_file` */
  identityFiles?: string[];
  /** its host key is checked against this file; absent = `ssh.known_hosts` */
  knownHosts?: string;
  /** as in ServerSpec */
  identitiesOnly?: boolean;
  identityAgent?: string;
  certificateFiles?: string[];
}

export interface SshConfig {
  user: string;
  port: number;
  /** absolute path, or null to rely on ssh-agent only */
  identityFile: string | null;
  /** name of the environment variable holding the identity file's passphrase */
  passphraseEnv: string;
  /** use $SSH_AUTH_SOCK when it is set */
  agent: boolean;
  knownHosts: string;
  connectTimeoutMs: number;
  commandTimeoutMs: number;
  keepaliveIntervalMs: number;
  /**
   * how long a lost connection (or a refused reconnect) is retried, with backoff, before the
   * step it interrupted is judged; absent in updates planned before it existed (30 s)
   */
  reconnectForMs?: number;
  /**
   * `ssh.dead_man_timeout`: a running command is killed on the server when no beat came from the
   * executor for this long (a silent partition, a frozen executor); 0 = off; absent in updates
   * planned before it existed (3 × keepaliveIntervalMs, or 60 s without keepalives)
   */
  deadManTimeoutMs?: number;
  /** cap on captured stdout/stderr per command, bytes (the tail is kept) */
  outputLimitBytes: number;
  /**
   * at most this many SSH handshakes at once to one host (a jump host, or a server connected to
   * directly); absent in updates planned before it existed (8)
   */
  maxHandshakes?: number;
  /** the OpenSSH client config the servers were resolved with (`ssh.config`), for the record */
  configFile?: string | null;
}

export interface HealthConfig {
  command: string;
  expect: string;
  timeoutMs: number;
  intervalMs: number;
  /**
   * after the first good check, the agent must stay healthy (checked every interval) this long
   * before the server counts as verified; 0 = the first good check is enough. Absent in updates
   * planned before it existed (read as 0).
   */
  stableForMs?: number;
}

/** A day of the week as `execution.window.days` stores it. */
export type Weekday = 'mon' | 'tue' | 'wed' | 'thu' | 'fri' | 'sat' | 'sun';

/**
 * `execution.window` (config/window.ts): when new servers may be started. Stored with the plan
 * (RolloutSettings.execution), so a `start` on another machine keeps to the same window.
 */
export interface RolloutWindow {
  /** the days the window opens, in week order (Monday first); all seven when the config gives none */
  days: Weekday[];
  /** `HH:MM-HH:MM` on the window's clock (the end before the start: past midnight); null: the whole day */
  hours: string | null;
  /** an IANA time zone name, canonical; the planning machine's when the config gives none */
  timezone: string;
}

/** `execution.max_failures`: servers that may end rolled-back or failed before the update stops. */
export type FailureBudget = { count: number } | { percent: number };

/**
 * One of `execution.steps`: how far the update goes before it stops to bake (a cumulative
 * number of its servers, or a percentage of them rounded up), how long its servers then bake
 * (re-checked at the health interval; 0 = not at all), and whether it then waits for `resume`.
 */
export interface DeliveryStep {
  size: { count: number } | { percent: number };
  bakeMs: number;
  pauseAfter: boolean;
}

/**
 * `execution.guard`: the servers that passed are re-checked in the background with the health
 * command every `intervalMs`; one that turns unhealthy pauses the update (and is rolled back
 * with `rollback`); `afterFinishMs`: how long it keeps watching after the last server.
 */
export interface GuardConfig {
  intervalMs: number;
  rollback: boolean;
  afterFinishMs: number;
}

export interface AgentConfig {
  versionCommand: string;
  /**
   * `agent.semver_command`: prints the installed agent's version (semver); run by the plan's
   * probe in the same remote command as versionCommand. Absent or null: versions are not read.
   */
  semverCommand?: string | null;
  update: string[];
  /**
   * `agent.prepare`: commands that change nothing that runs (a `git fetch`), run ahead on the
   * next servers while the current one updates; absent in updates planned before it existed
   */
  prepare?: string[];
  restart: Record<string, string>;
  health: HealthConfig;
  /**
   * `agent.diagnose`: commands run on a server whose update or verify failed, before the rollback
   * (rollout/diagnose.ts); their output is journalled and shown, never judged. Absent when the
   * config has none, and in updates planned before it existed.
   */
  diagnose?: DiagnoseConfig;
}

/** `agent.diagnose`: the commands (placeholders as in agent.update) and the timeout of each. */
export interface DiagnoseConfig {
  commands: string[];
  /** each command is killed after this long (`agent.diagnose.timeout`, default 30s) */
  timeoutMs: number;
}

export interface Config {
  /** absolute path of the file it was read from */
  file: string;
  name: string | null;
  source: { repo: string; branch: string; commit: string | null } & VersionBounds;
  /**
   * Where `source.branch` and `source.commit` were written (`FILE:LINE`, the config's or the site
   * defaults'), for an error about the value found only when the repo is read; absent when not known.
   */
  sourceAt?: { branch?: string; commit?: string };
  /** `servers:` then the hosts of `inventory:`, in that order */
  servers: ServerSpec[];
  /** the inventory file servers were read from (absolute), or null (extension) */
  inventory: string | null;
  serverTypes: string[] | null;
  /** server-name globs, applied after server_types (extension); null = all */
  include: string[] | null;
  exclude: string[] | null;
  ssh: SshConfig;
  agent: AgentConfig;
  /** names of `agent.restart` entries to run, in order */
  restart: string[];
  rollback: { enabled: boolean; continueAfterRollback: boolean; commit: string | null };
  testMode: { stopAfter: number };
  /** how the executor shares servers with other updates */
  execution: {
    busyWaitMs: number;
    maxFailures: FailureBudget | null;
    /** `execution.prepare_ahead`: on how many of the next servers agent.prepare runs ahead (0 = off); absent in older plans (1) */
    prepareAhead?: number;
    /** `execution.steps` (with `bake` and `pause_after_step` filled in); null or absent: one step, all servers */
    steps?: DeliveryStep[] | null;
    /** `execution.guard`; null: off (`guard: false`); absent in plans made before it existed: off */
    guard?: GuardConfig | null;
    /** `execution.window`: when new servers may be started (config/window.ts); absent when the config has none, and in older plans */
    window?: RolloutWindow;
  };
  /** `hooks:` (config/check-hooks.ts): called on rollout events; [] when none */
  hooks: HookConfig[];
  /**
   * what the command line changed of it for one update (plan/overrides.ts withOverrides; never
   * read from the file): `source` is already the overridden one, the servers narrowed by
   * `limit` (plan/plan.ts selectServers). Absent without such options.
   */
  overrides?: Overrides;
}

/**
 * `--limit`, `--branch`, `--commit`, `--version` of `plan`, `auto` (and `--limit` of `restart`):
 * what they changed of the config for this update alone, recorded in its settings
 * (RolloutSettings.overrides) and shown by `status`.
 */
export interface Overrides {
  /**
   * `--limit`: its patterns as written (`web*`, `!web3`, `&db*`; an `@FILE` read into its
   * lines), and how many servers the config selected before it (config/limit.ts)
   */
  limit?: { patterns: string[]; selected: number };
  /**
   * `--branch`, `--commit`, `--version` as given (a commit as typed; the update's commit is the
   * one it resolved to): they replaced the config's source.branch, source.commit, source.version
   */
  source?: { branch?: string; commit?: string; version?: string };
}

/**
 * One entry of `hooks:`: a local command (`run`, run with /bin/sh on the machine running
 * agent-update) or a webhook (`url`, POSTed the event as JSON), called on the events it names
 * (rollout/hooks.ts). Stored with the plan: `url` as written, its `${VAR}`s expanded only when
 * it is called, so a secret kept in the environment never reaches the database.
 */
export type HookConfig = ({ run: string; url?: undefined } | { url: string; run?: undefined }) & {
  /** the call is cut off after this long (a command's process group killed, a request aborted) */
  timeoutMs: number;
  /** a failure pauses the update (before any server is touched, on update-started) */
  required: boolean;
  /** hook event names (config/hook-events.ts), NDJSON event types, or `all` */
  events: string[];
};

/**
 * `source.version`, `source.min_compatible`, `source.max_compatible` (plan/versions.ts), each a
 * valid semver in its normal form (a leading `v` dropped); absent or null when not given.
 */
export interface VersionBounds {
  /** the target's version */
  version?: string | null;
  /** a server below it is class `required` */
  minCompatible?: string | null;
  /** the newest agent the control plane supports: a target above it is refused at plan time */
  maxCompatible?: string | null;
  /** the oldest version that upgrades directly to the target; older ones walk the stepping stones */
  minVersion?: string | null;
  /** releases on the way to the target, sorted by version (plan/versions.ts pathFor) */
  steppingStones?: SteppingStone[];
}

/**
 * `source.stepping_stones[]`: a release every older agent passes through on its way to the
 * target. `commit` is 7 to 40 hex in a config, the full 40 once planned; `minVersion`: the
 * oldest version that can upgrade to it (absent: any older one can).
 */
export interface SteppingStone {
  version: string;
  commit: string;
  minVersion: string | null;
}

/** What `plan` labels each server by its version (plan/versions.ts). */
export type VersionClass = 'required' | 'recommended' | 'current';

/**
 * What a plan stores with the update, so `start` needs no config file: everything the executor
 * runs. Plain JSON; no secret is ever part of it.
 */
export type RolloutSettings = Pick<Config, 'ssh' | 'agent' | 'restart' | 'rollback'> & {
  source: { repo: string; branch: string; commit: string };
  /** absent in updates planned before it existed: read it through `executionOf` */
  execution?: Config['execution'];
  /**
   * the version bounds the plan classed servers by, `plan --only`'s class, and the servers that
   * `--only` left out of the update; absent in updates planned without source.version
   */
  versions?: VersionBounds & { only: VersionClass | null; leftOut?: string[] };
  /** `hooks:`; absent when the config had none, and in updates planned before it existed */
  hooks?: HookConfig[];
  /** what `--limit`, `--branch`, `--commit`, `--version` changed of the config; absent without them */
  overrides?: Overrides;
  /**
   * `agent-update restart` (issue 25): a rolling restart, no code change. Each server's turn
   * re-reads its commit, runs the restarts, verifies health and that the commit is unchanged
   * (rollout/restart-flow.ts); never skipped, never fetched or checked out, never rolled back
   * (rollback is off in these settings: a failure is `failed`). Absent for every other update.
   */
  restartOnly?: true;
};
