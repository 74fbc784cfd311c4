/**
 * What callers hand the store to write: a new update with its servers, and the fields of an
 * update or a server that a write may change. The records it gives back are model/records.ts.
 */
import type { RolloutSettings, ServerSpec, VersionClass } from '../config/types.js';
import type { Hop, Lease } from '../model/records.js';
import type { ServerStep, UpdateStatus } from '../model/lifecycle.js';

export interface NewUpdate {
  name: string;
  repo: string;
  branch: string;
  commit: string;
  configFile: string | null;
  settings: RolloutSettings;
  testStopAfter: number;
  /** `types` defaults to `[type]`; `path`: the server's own hops (undo), else set by the plan */
  servers: Array<Omit<ServerSpec, 'types'> & Partial<Pick<ServerSpec, 'types'>> & { path?: Hop[] | null }>;
  retryOf?: string | null;
  undoOf?: string | null;
  createdBy?: string | null;
}

export interface ServerChange {
  step?: ServerStep | null;
  fromCommit?: string | null;
  toCommit?: string | null;
  error?: string | null;
  startedAt?: string | null;
  endedAt?: string | null;
  lockHeld?: boolean;
  agentVersion?: string | null;
  versionClass?: VersionClass | null;
  /** null = one hop to the update's commit */
  path?: Hop[] | null;
  hop?: number | null;
}

export interface UpdateChange {
  startedAt?: string | null;
  endedAt?: string | null;
  pauseAtWorked?: number | null;
  pauseBase?: number | null;
  pauseRequestedAt?: string | null;
  pauseRequestedBy?: string | null;
  reason?: string | null;
}

/** A command's result as the journal records it. */
export interface StepResult {
  code: number | null;
  stdout: string;
  stderr: string;
  error: string | null;
}

/** Who asks for a lease: the lease less the times the store stamps. */
export type LeaseClaim = Omit<Lease, 'since' | 'heartbeat'>;

/** The lease taken (with the dead holder it was taken from), or the live holder that keeps it. */
export type LeaseResult = { ok: true; previous: Lease | null } | { ok: false; holder: Lease };

/** An `auto` run's claim as it begins. */
export interface NewAutoRun {
  configFile: string;
  actor: string;
  pid: number;
  host: string;
  pidStart: string | null;
  commit: string | null;
}

/** The failure budget's use over a split's group (the root and its batches). */
export interface BudgetUse {
  used: number;
  total: number;
  updates: string[];
}

/** Another unfinished update with servers on the same accounts. */
export interface Overlap {
  update: string;
  status: UpdateStatus;
  servers: string[];
}

/** A person's run of an update (`start`, `resume`, `takeover` events with an actor). */
export interface RunEvent {
  at: string;
  kind: string;
  actor: string;
}
