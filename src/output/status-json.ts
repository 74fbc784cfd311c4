import { holderIsDead } from '../rollout/lease.js';
import { systemLiveness } from '../liveness.js';
import type { BudgetUse, ReportStore } from '../store/port.js';
import type { PathStop, ServerRecord, UpdateRecord } from '../model/records.js';
import { hopOf } from '../model/hops.js';
import { serversByStep, stepProgress, stepsOf } from '../model/steps.js';
import { allowedFailures, budgetOf, describeBudget } from '../rollout/decide.js';
import type { Overrides, VersionClass } from '../config/types.js';
import { classCounts } from '../model/version-class.js';

/** `status NAME --json`, exactly as SPEC.md shows it, plus the documented extensions. */
export interface UpdateJson {
  name: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  source: { repo: string; branch: string; commit: string };
  batchOf: string | null;
  counts: Record<string, number>;
  servers: ServerJson[];
  /** extension: why the update is paused or ended */
  reason: string | null;
  /** extension: a pause has been asked and the executor has not yet stopped */
  pauseRequested: boolean;
  /** who asked for the pending pause (`user@host`, or the signal that asked) */
  pauseRequestedBy: string | null;
  /** extension: the process holding its lease; `alive: false` when it died (start takes over) */
  executor: { pid: number; host: string; since: string; heartbeat: string; alive: boolean } | null;
  /**
   * extension, when execution.max_failures is set: servers rolled back or failed (`used`) of the
   * `allowed`, over the `total` servers of the update and its batches (`updates`), which share it
   */
  budget?: BudgetJson;
  /**
   * extension, when the plan had source.version: the bounds the servers were classed by, the
   * class `plan --only` planned (null: all), the servers it left out of the update, and (with the
   * servers) how many are of each class
   */
  versions?: VersionsJson;
  /** extension: the update a `retry` was made from; null otherwise */
  retryOf: string | null;
  /** extension: the update an `undo` puts back; null otherwise */
  undoOf: string | null;
  /** extension: who planned it (`user@host`); null for updates planned before it was recorded */
  createdBy: string | null;
  /**
   * extension (issue 25), for an update that was split: every update of the split, this one first,
   * then the batches split from it (theirs included) in creation order; null when it was never
   * split. Absent in `status --json` without a name
   */
  batches?: BatchJson[] | null;
  /**
   * extension (issue 25), for an update that was split: the whole rollout, every batch's servers
   * (each row with its `batch`) and their counts; null when it was never split. `counts` and
   * `servers` stay this update's own. Absent in `status --json` without a name
   */
  rollout?: RolloutJson | null;
  /**
   * extension, issue 24: execution.steps as this update takes them (the step it is in, the plan of
   * its steps and which servers fall in each); null without steps. Absent in `status --json`
   * without a name (it needs the servers)
   */
  steps?: StepsJson | null;
  /** extension: the step whose servers bake now, and the bake time left at its last re-check; null when none bakes */
  bake: { step: number; leftMs: number } | null;
  /** extension: the guard's last round over the servers that passed (when, and what it found); null before its first */
  guard: { checkedAt: string; summary: string } | null;
  /**
   * extension, issue 25, only when planned with them: what `--limit` (its patterns, and how many
   * servers the config selected) and `--branch`/`--commit`/`--version` (as given) changed of the config
   */
  overrides?: Overrides;
  /**
   * extension, issue 25, only for `agent-update restart`: a rolling restart, no code change (each
   * server's toCommit is the commit it runs; `source.commit` is the one most of them ran when probed)
   */
  restartOnly?: true;
}

/** One update of a split, as `batches` lists it. */
export interface BatchJson {
  name: string;
  status: string;
  /** the update it was split from; null for the first (the one that was split) */
  batchOf: string | null;
  /** its servers, as `counts` counts them */
  counts: Record<string, number>;
  startedAt: string | null;
  endedAt: string | null;
  reason: string | null;
  pauseRequested: boolean;
}

/** The whole rollout of a split: the servers of every batch, and their counts. */
export interface RolloutJson {
  /** `total` and a key per status, over every batch */
  counts: Record<string, number>;
  /** every batch's servers, batch by batch in the order of `batches`, each row as in `servers` plus its `batch` */
  servers: Array<ServerJson & { batch: string }>;
}

/** An update of a split and its servers, as the status views take them. */
export interface SplitPart {
  u: UpdateRecord;
  servers: readonly ServerRecord[];
}

/** `batches` and `rollout` of an update that was split (`split`: itself first, then its batches), else null. */
export function splitJson(split: readonly SplitPart[] | undefined): { batches: BatchJson[] | null; rollout: RolloutJson | null } {
  if (!split || split.length <= 1) return { batches: null, rollout: null };
  return {
    batches: split.map(({ u, servers }) => ({
      name: u.name,
      status: u.status,
      batchOf: u.batchOf,
      counts: countsOf(servers),
      startedAt: u.startedAt,
      endedAt: u.endedAt,
      reason: u.reason,
      pauseRequested: u.pauseRequestedAt !== null,
    })),
    rollout: {
      counts: countsOf(split.flatMap((b) => b.servers)),
      servers: split.flatMap(({ u, servers }) => servers.map((s) => ({ ...serverJson(s, u.commit), batch: u.name }))),
    },
  };
}

export interface StepsJson {
  /** the step the update is in (1-based): the first not let go yet; the last once every one is */
  current: number;
  /** how many steps */
  total: number;
  /** how many of the servers the steps divide the current step takes the update to */
  through: number;
  /** how many servers the steps divide (those the update works on in its turns) */
  servers: number;
  /** how many of those are done */
  done: number;
  plan: StepJson[];
}

export interface StepJson {
  step: number;
  /** cumulative: how many servers are done at its end */
  through: number;
  /** its bake (0: none; the last step never bakes) */
  bakeMs: number;
  /** it waits for `resume` after it (and its bake) */
  pauseAfter: boolean;
  /** its servers: those done in the order their turns came, then the pending ones in plan order */
  servers: string[];
}

/** The steps of an update (execution.steps) over its servers, or null when it has none. */
export function stepsJson(u: UpdateRecord, servers: readonly ServerRecord[]): StepsJson | null {
  const steps = u.settings.execution?.steps;
  if (!steps || steps.length === 0) return null;
  const { total, done } = stepProgress(servers);
  const plan = stepsOf(steps, total);
  if (plan.length === 0) return null;
  const current = Math.min(u.stepsPromoted + 1, plan.length);
  const names = serversByStep(servers, plan);
  return {
    current,
    total: plan.length,
    through: plan[current - 1]!.through,
    servers: total,
    done,
    plan: plan.map((p, i) => ({ step: p.index, through: p.through, bakeMs: p.bakeMs, pauseAfter: p.pauseAfter, servers: names[i]!.map((s) => s.name) })),
  };
}

export interface VersionsJson {
  target: string;
  minCompatible: string | null;
  maxCompatible: string | null;
  only: VersionClass | null;
  leftOut: string[];
  /** extension: source.min_version, and the stepping stones (commits in full) */
  minVersion: string | null;
  steppingStones: Array<{ version: string; commit: string; minVersion: string | null }>;
  classes?: Record<VersionClass, number>;
}

export interface BudgetJson {
  maxFailures: number | string;
  allowed: number;
  used: number;
  total: number;
  updates: string[];
  exceeded: boolean;
}

/** The failure budget as status shows it, or undefined when the update has none. */
export function budgetJson(u: UpdateRecord, use: { used: number; total: number; updates: string[] } | undefined): BudgetJson | undefined {
  const b = budgetOf(u);
  if (b === null || use === undefined) return undefined;
  const allowed = allowedFailures(b, use.total);
  return { maxFailures: 'count' in b ? b.count : describeBudget(b), allowed, used: use.used, total: use.total, updates: use.updates, exceeded: use.used > allowed };
}

export interface ServerJson {
  name: string;
  host: string;
  /** the primary type (SPEC) */
  type: string;
  /** extension: every type of the server, `type` first (an inventory host in several groups) */
  types: string[];
  status: string;
  step: string | null;
  fromCommit: string | null;
  toCommit: string | null;
  error: string | null;
  startedAt: string | null;
  endedAt: string | null;
  /** extension: the agent's version the plan read (agent.semver_command), normal semver; null when not read */
  agentVersion: string | null;
  /** extension: its class against the target's version (required, recommended, current); null when not classed */
  versionClass: VersionClass | null;
  /**
   * extension: the hops it walks (stepping stones, then the target), each `{commit, version}`;
   * null when it goes straight to the update's commit
   */
  path: PathStop[] | null;
  /** extension: with a path, the hop it is on or ended on (1-based `index` of `count`, that hop's version and commit); null otherwise or before its first */
  hop: { index: number; count: number; version: string | null; commit: string } | null;
}

export { freezeJson, type FreezeJson } from '../model/freeze.js';
export { countsOf } from '../model/lifecycle.js';
import { countsOf } from '../model/lifecycle.js';

/**
 * The status document of `u`; `split` (itself first, then its batches, as the store's batchesOf
 * gives them) for an update that was split: `batches` and `rollout` (issue 25).
 */
export function updateJson(u: UpdateRecord, servers: readonly ServerRecord[], budget?: { used: number; total: number; updates: string[] }, split?: readonly SplitPart[]): UpdateJson {
  const doc = documentOf(u, countsOf(servers), servers, budget);
  // before steps, bake and guard, which stay the document's last members
  const { steps, bake, guard, ...rest } = doc;
  return { ...rest, ...splitJson(split), steps, bake, guard };
}

/** `status --json` without a name lists each update so, without its servers: counts from Store.countsByUpdate. */
export function updateSummaryJson(u: UpdateRecord, counts: Record<string, number>, budget?: { used: number; total: number; updates: string[] }): Omit<UpdateJson, 'servers'> {
  return documentOf(u, counts, null, budget);
}

function documentOf(u: UpdateRecord, counts: Record<string, number>, servers: readonly ServerRecord[], budget?: { used: number; total: number; updates: string[] }): UpdateJson;
function documentOf(u: UpdateRecord, counts: Record<string, number>, servers: null, budget?: { used: number; total: number; updates: string[] }): Omit<UpdateJson, 'servers'>;
function documentOf(
  u: UpdateRecord,
  counts: Record<string, number>,
  servers: readonly ServerRecord[] | null,
  budget?: { used: number; total: number; updates: string[] },
): UpdateJson | Omit<UpdateJson, 'servers'> {
  const b = budgetJson(u, budget);
  return {
    name: u.name,
    status: u.status,
    createdAt: u.createdAt,
    startedAt: u.startedAt,
    endedAt: u.endedAt,
    source: { repo: u.repo, branch: u.branch, commit: u.commit },
    batchOf: u.batchOf,
    counts,
    ...(servers === null ? {} : { servers: servers.map((s) => serverJson(s, u.commit)) }),
    reason: u.reason,
    pauseRequested: u.pauseRequestedAt !== null,
    pauseRequestedBy: u.pauseRequestedAt !== null ? u.pauseRequestedBy : null,
    executor: u.lease
      ? { pid: u.lease.pid, host: u.lease.host, since: u.lease.since, heartbeat: u.lease.heartbeat, alive: !holderIsDead(u.lease, new Date(), systemLiveness) }
      : null,
    ...(b ? { budget: b } : {}),
    ...versionsOf(u, servers),
    retryOf: u.retryOf ?? null,
    undoOf: u.undoOf ?? null,
    createdBy: u.createdBy ?? null,
    ...(servers === null ? {} : { steps: stepsJson(u, servers) }),
    // what a bake left behind in an update that was cancelled meanwhile is not a bake any more
    bake: u.status === 'running' || u.status === 'paused' ? (u.bake ?? null) : null,
    guard: u.guard ?? null,
    ...(u.settings.overrides ? { overrides: u.settings.overrides } : {}),
    ...(u.settings.restartOnly ? { restartOnly: true as const } : {}),
  };
}

function serverJson(s: ServerRecord, updateCommit: string): ServerJson {
  return {
    name: s.name,
    host: s.host,
    type: s.type,
    types: s.types,
    status: s.status,
    step: s.step,
    fromCommit: s.fromCommit,
    toCommit: s.toCommit,
    error: s.error,
    startedAt: s.startedAt,
    endedAt: s.endedAt,
    agentVersion: s.agentVersion ?? null,
    versionClass: s.versionClass ?? null,
    path: s.path ?? null,
    hop: hopJson(s, updateCommit),
  };
}

function hopJson(s: ServerRecord, updateCommit: string): ServerJson['hop'] {
  if (!s.path || s.path.length === 0 || s.hop === null || s.hop === undefined) return null;
  const h = hopOf(s, updateCommit);
  return { index: h.index + 1, count: h.count, version: h.toVersion, commit: h.to };
}

/** The `versions` member of the status document, when the update was planned with source.version. */
export function versionsJson(u: UpdateRecord, servers: readonly ServerRecord[] | null): VersionsJson | undefined {
  const v = u.settings.versions;
  if (!v?.version) return undefined;
  return {
    target: v.version,
    minCompatible: v.minCompatible ?? null,
    maxCompatible: v.maxCompatible ?? null,
    only: v.only ?? null,
    leftOut: v.leftOut ?? [],
    minVersion: v.minVersion ?? null,
    steppingStones: (v.steppingStones ?? []).map((st) => ({ version: st.version, commit: st.commit, minVersion: st.minVersion })),
    ...(servers === null ? {} : { classes: classCounts(servers) }),
  };
}

function versionsOf(u: UpdateRecord, servers: readonly ServerRecord[] | null): { versions?: VersionsJson } {
  const v = versionsJson(u, servers);
  return v ? { versions: v } : {};
}

/** What `status NAME` shows of an update in the store: it, its servers, its failure budget's use, and its split. */
export interface StatusOf {
  u: UpdateRecord;
  servers: ServerRecord[];
  budget: BudgetUse | undefined;
  /** the update and the batches split from it (theirs included), each with its servers; undefined when it was never split */
  split: SplitPart[] | undefined;
}

/** Read what `status NAME` shows (the budget only for an update that has one, the batches only when it was split). */
export async function statusOf(store: ReportStore, name: string): Promise<StatusOf> {
  const u = await store.getUpdate(name);
  const servers = await store.getServers(name);
  const budget = budgetOf(u) !== null ? await store.budgetUse(u) : undefined;
  const batches = await store.batchesOf(name);
  const split = batches.length === 0 ? undefined : [{ u, servers }, ...(await Promise.all(batches.map(async (b) => ({ u: b, servers: await store.getServers(b.name) }))))];
  return { u, servers, budget, split };
}

/** `status NAME --json` of an update in the store: what the status command prints. */
export async function statusDocument(store: ReportStore, name: string): Promise<UpdateJson> {
  const s = await statusOf(store, name);
  return updateJson(s.u, s.servers, s.budget, s.split);
}
