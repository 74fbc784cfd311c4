/**
 * The records every layer reads: an update, a server of it, a journal row, an event, a lease, an
 * `auto` run. The store writes and returns them; the engine, plan, output and cli read them. Plain
 * data, no I/O.
 */
import type { JumpHost, RolloutSettings, ServerSpec, VersionClass } from '../config/types.js';
import type { ServerStatus, ServerStep, UpdateStatus } from './lifecycle.js';

export interface UpdateRecord {
  name: string;
  status: UpdateStatus;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  repo: string;
  branch: string;
  commit: string;
  batchOf: string | null;
  configFile: string | null;
  settings: RolloutSettings;
  /** test_mode.stop_after from the config; applies to the first start only */
  testStopAfter: number;
  /** pause once this many servers have finished with work (absolute count); null = never */
  stopAtWorked: number | null;
  /**
   * how many servers had finished when stopAtWorked was set (the limit counts from there).
   * Test mode has one name in the code: stop after N (test_mode.stop_after, `--stop-after`,
   * testStopAfter, stopAtWorked, stopFromWorked; columns pause_at_worked and pause_base)
   */
  stopFromWorked: number | null;
  pauseRequestedAt: string | null;
  /** who asked for the pending pause (`user@host`, or the signal that asked) */
  pauseRequestedBy: string | null;
  /** why the update is paused or ended, for an operator */
  reason: string | null;
  lease: Lease | null;
  /** the update a `retry` was made from (status JSON `retryOf`); null otherwise */
  retryOf: string | null;
  /** the update an `undo` puts back (status JSON `undoOf`); null otherwise */
  undoOf: string | null;
  /** who planned it (`user@host`); null in updates planned before it was recorded */
  createdBy: string | null;
  /** how many of its steps (execution.steps) are done and let go: 0 while in the first */
  stepsPromoted: number;
  /** the step (1-based) whose servers bake now, and the bake time left at its last check */
  bake: { step: number; leftMs: number } | null;
  /** the guard's last round over the servers that passed: when, and what it found */
  guard: { checkedAt: string; summary: string } | null;
}

/**
 * One stop on a server's path (model/hops.ts: each hop ends at one): the commit it is updated to
 * and verified at, and the agent version that commit is (a stepping stone's, the target's; null
 * when versions are not used).
 */
export interface PathStop {
  commit: string;
  version: string | null;
}

export interface Lease {
  token: string;
  pid: number;
  host: string;
  pidStart: string | null;
  since: string;
  heartbeat: string;
}

export interface ServerRecord {
  id: number;
  updateName: string;
  position: number;
  name: string;
  host: string;
  port: number;
  user: string;
  /** the primary type (`types[0]`) */
  type: string;
  /** every type of the server, `type` first */
  types: string[];
  status: ServerStatus;
  step: ServerStep | null;
  fromCommit: string | null;
  toCommit: string | null;
  error: string | null;
  startedAt: string | null;
  endedAt: string | null;
  /** our lock may be on the server: set before the command that takes it, cleared once released */
  lockHeld: boolean;
  /** the agent's version the plan's probe read (agent.semver_command), normal semver form; null when not read */
  agentVersion?: string | null;
  /** its class against the target's version (plan/versions.ts); null when not classed */
  versionClass?: VersionClass | null;
  /**
   * the hops it walks, in order, its own target last (stepping stones, undo); null = one hop to
   * the update's commit
   */
  path?: PathStop[] | null;
  /** the index in its path (or 0 for one hop) being worked on; null while none has begun */
  hop?: number | null;
  /** how it is reached, when not as the update's ssh settings say (see ServerSpec) */
  identityFiles?: string[];
  knownHosts?: string;
  jump?: JumpHost[];
  identitiesOnly?: boolean;
  identityAgent?: string;
  certificateFiles?: string[];
}

/** What `servers.ssh_json` holds. */
export type ServerReach = Pick<ServerSpec, 'identityFiles' | 'knownHosts' | 'jump' | 'identitiesOnly' | 'identityAgent' | 'certificateFiles'>;

/** The ServerSpec a transport connects to for a stored server. */
export function specOf(r: ServerRecord): ServerSpec {
  const spec: ServerSpec = { name: r.name, host: r.host, port: r.port, user: r.user, type: r.type, types: r.types };
  if (r.identityFiles !== undefined) spec.identityFiles = r.identityFiles;
  if (r.knownHosts !== undefined) spec.knownHosts = r.knownHosts;
  if (r.jump !== undefined) spec.jump = r.jump;
  if (r.identitiesOnly !== undefined) spec.identitiesOnly = r.identitiesOnly;
  if (r.identityAgent !== undefined) spec.identityAgent = r.identityAgent;
  if (r.certificateFiles !== undefined) spec.certificateFiles = r.certificateFiles;
  return spec;
}

/** Another update's server on the same account (`user@host:port`) that is in flight now. */
export interface BusyAccount {
  update: string;
  server: string;
  lease: Lease | null;
  step: ServerStep | null;
}

/**
 * One row of the journal (the `steps` table): a remote command, recorded before it was sent and
 * completed with its result; `phase` is model/lifecycle.ts JournalPhase. Not a server's step
 * (its stage inside `running`), which is ServerStep.
 */
export interface JournalEntry {
  id: number;
  updateName: string;
  serverId: number;
  serverName: string;
  phase: string;
  command: string;
  startedAt: string;
  endedAt: string | null;
  exitCode: number | null;
  stdout: string | null;
  stderr: string | null;
  error: string | null;
}

export interface EventRecord {
  id: number;
  updateName: string;
  serverName: string | null;
  at: string;
  kind: string;
  message: string;
  /** who did it (`user@host`), for events that record a person's command */
  actor: string | null;
}

/** One `auto` run (table auto_runs): open (`endedAt` null) while it plans and starts, then its audit record. */
export interface AutoRun {
  id: number;
  configFile: string;
  startedAt: string;
  endedAt: string | null;
  actor: string;
  pid: number;
  host: string;
  pidStart: string | null;
  heartbeat: string;
  commit: string | null;
  updateName: string | null;
  /** nothing-to-do, started (and how it ended), abandoned (its process died), error; null while open */
  outcome: string | null;
  message: string | null;
}

/**
 * A deploy freeze of one source repo (table freezes): active while `unfrozenAt` is null, then
 * the audit record of who froze it, why, and who lifted it. model/freeze.ts has its rules.
 */
export interface FreezeRecord {
  id: number;
  /** what the freeze matches an update by: its repo as model/freeze.ts repoKey writes it */
  repoKey: string;
  /** the repo as the config that froze it wrote it */
  repo: string;
  /** the config `freeze -c` was given (its absolute path); null when not known */
  configFile: string | null;
  reason: string;
  /** `user@host` */
  frozenBy: string;
  frozenAt: string;
  unfrozenBy: string | null;
  unfrozenAt: string | null;
}
