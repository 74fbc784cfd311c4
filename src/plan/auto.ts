/**
 * `agent-update auto -c FILE`: plan and start only when needed, safe to run from cron or a CI
 * schedule as often as anyone likes. What it finds is decided from the database alone, in one
 * IMMEDIATE transaction that also writes the claim (an `auto_runs` row) and the plan, so two
 * `auto` runs started at the same instant make exactly one rollout.
 *
 * "This config's update" is an update whose `config_file` is the config's absolute path (what
 * `plan -c` and `auto -c` of that file store; a retry keeps its original's). The same file reached
 * by two paths (a symlink) is two configs: the path is the identity, as it is in `status`.
 */
import { datedName, freeName } from '../config/names.js';
import type { Config } from '../config/types.js';
import type { Liveness } from '../liveness.js';
import { autoRunIsDead, holderIsDead, HEARTBEAT_MS } from '../rollout/lease.js';
import type { PlanStore, ReportStore } from '../store/port.js';
import type { AutoRun, FreezeRecord, UpdateRecord } from '../model/records.js';
import { isFreezePause, repoKey } from '../model/freeze.js';
import { ACTIVE_UPDATE } from '../model/lifecycle.js';
import { isWindowPause } from '../config/window.js';
import { actor } from '../util/actor.js';
import { plural } from '../util/plural.js';
import { planInput, recordPlan, type PlanInput } from './plan.js';

/** What `auto` found, and so what it does. */
export type AutoFinding =
  /** an update of this config is being executed by a live process: exit 0, nothing touched */
  | { kind: 'running'; updates: UpdateRecord[] }
  /** an update of this config is paused (a person, or test mode): exit 3, nothing touched */
  | { kind: 'paused'; updates: UpdateRecord[] }
  /**
   * every paused update of this config is paused only for its execution.window or for a deploy
   * freeze (since lifted: a freeze in force is `frozen`): resumed once the window is open
   */
  | { kind: 'window-paused'; updates: UpdateRecord[] }
  /** the config's source repo is frozen (`freeze`): exit 3, nothing touched */
  | { kind: 'frozen'; freeze: FreezeRecord }
  /** a pending update of this config that a person planned (plan, retry, undo): theirs to start; exit 3, nothing touched */
  | { kind: 'planned'; updates: UpdateRecord[] }
  /** another `auto` of this config is planning or starting right now: exit 0, nothing touched */
  | { kind: 'claimed'; run: AutoRun }
  /** the newest finished update of this config to this very commit failed: exit 1, nothing touched */
  | { kind: 'failed-before'; update: UpdateRecord }
  /** updates of this config to begin (pending) or take over (running, executor dead), as `start` would; `resume`: paused for the window, resumed */
  | { kind: 'start'; runId: number; names: string[]; takeover: boolean; resume?: boolean }
  /** a new update recorded `planning` (with the claim), to probe */
  | { kind: 'plan'; runId: number; input: PlanInput };

/** The statuses of an update that is not finished. */


/**
 * Read only: an update of this config being executed (its lease held by a live process), one
 * paused, or another auto of it at work. `auto` asks this before it even resolves the target,
 * and again inside the transaction that claims. Updates paused only because their
 * execution.window closed (`window-paused`) are not a person's pause: auto resumes them once
 * the window is open (a person's pause among them makes them all `paused`).
 */
export async function existingWork(
  store: ReportStore,
  configFile: string,
  now: Date,
  live: Liveness,
): Promise<Extract<AutoFinding, { kind: 'running' | 'paused' | 'window-paused' | 'claimed' }> | null> {
  const unfinished = (await store.updatesOfConfig(configFile)).filter((u) => ACTIVE_UPDATE.has(u.status));
  const running = unfinished.filter((u) => u.status === 'running' && u.lease !== null && !holderIsDead(u.lease, now, live));
  if (running.length > 0) return { kind: 'running', updates: running };
  // A paused batch split from a paused update that never ran is paused too: a person's to start.
  const paused = unfinished.filter((u) => u.status === 'paused');
  // paused by its window closing or a freeze, not by a person nor test mode: auto's to resume once it is open (and the freeze lifted)
  if (paused.length > 0 && paused.every((u) => isWindowPause(u.reason) || isFreezePause(u.reason))) return { kind: 'window-paused', updates: paused };
  if (paused.length > 0) return { kind: 'paused', updates: paused };
  const claim = (await store.openAutoRuns(configFile)).find((r) => !autoRunIsDead(r, now, live));
  if (claim) return { kind: 'claimed', run: claim };
  return null;
}

/**
 * The check and the claim, in one IMMEDIATE transaction: a freeze of the config's repo (nothing
 * written), what is there for this config, and,
 * when there is work, the auto run's claim and (for a new plan) the update recorded `planning`;
 * updates paused for their window come back as `start` with `resume` (the caller checked that
 * the window is open).
 * Claims of dead auto runs are ended (`abandoned`), and the `planning` update such a run left is
 * cancelled, so a killed `auto` never blocks the next one.
 */
export function claimAuto(store: PlanStore, config: Config, commit: string, rollbackCommit: string | null, now: Date, live: Liveness): Promise<Exclude<AutoFinding, { kind: 'window-paused' }>> {
  return store.tx(async (t): Promise<Exclude<AutoFinding, { kind: 'window-paused' }>> => {
    // a freeze of the repo (checked before, and again here with the claim: one that lands in between is seen)
    const frozen = await t.activeFreeze(repoKey(config.source.repo));
    if (frozen) return { kind: 'frozen', freeze: frozen };
    const found = await existingWork(t, config.file, now, live);
    if (found?.kind === 'window-paused') {
      const names = found.updates.map((u) => u.name).reverse();
      const id = await t.beginAutoRun({ configFile: config.file, actor: actor(), pid: live.pid, host: live.host, pidStart: live.pidStart, commit });
      await t.setAutoRunUpdate(id, names[0]!);
      return { kind: 'start', runId: id, names, takeover: false, resume: true };
    }
    if (found) return found;
    for (const dead of await t.openAutoRuns(config.file)) {
      await t.endAutoRun(dead.id, 'abandoned', `its process (pid ${dead.pid} on ${dead.host}) ended before the run did`);
      const left = dead.updateName === null ? null : await t.findUpdate(dead.updateName);
      if (left?.status === 'planning') {
        await t.setUpdateStatus(left.name, 'cancelled', { endedAt: now.toISOString(), reason: `the auto run planning it (pid ${dead.pid} on ${dead.host}) died` });
      }
    }
    const updates = await t.updatesOfConfig(config.file);
    const begin = async (what: string | null) => {
      const id = await t.beginAutoRun({ configFile: config.file, actor: actor(), pid: live.pid, host: live.host, pidStart: live.pidStart, commit });
      if (what !== null) await t.setAutoRunUpdate(id, what);
      return id;
    };
    // Left running by a dead executor, or planned by an auto run that died before starting it:
    // begun as `start` would. A pending plan a person made (plan -c, retry, undo) is theirs to
    // review and start, as a paused one is theirs to resume.
    const takeover = updates.filter((u) => u.status === 'running');
    const byAuto = new Set((await t.autoRuns(config.file)).map((r) => r.updateName));
    const planned = updates.filter((u) => u.status === 'pending' && !byAuto.has(u.name) && !(u.batchOf !== null && byAuto.has(u.batchOf)));
    if (takeover.length === 0 && planned.length > 0) return { kind: 'planned', updates: planned };
    const pending = updates.filter((u) => u.status === 'pending' && !planned.includes(u));
    if (takeover.length > 0 || pending.length > 0) {
      const names = [...takeover, ...pending].map((u) => u.name).reverse();
      return { kind: 'start', runId: await begin(names[0]!), names, takeover: takeover.length > 0 };
    }
    // (a rolling restart of the config deployed nothing: its outcome says nothing of the commit)
    const last = updates.find((u) => !ACTIVE_UPDATE.has(u.status) && u.status !== 'cancelled' && !u.settings.restartOnly && u.commit === commit);
    if (last && (last.status === 'failure' || last.status === 'partial-success')) return { kind: 'failed-before', update: last };
    const input = planInput(config, await freeName(config.name ?? datedName(config.source.branch, now), (n) => t.hasUpdate(n)), commit, rollbackCommit);
    const runId = await begin(input.name);
    await recordPlan(t, input);
    await t.addEvent(input.name, null, 'auto', `planned by agent-update auto (run ${runId}) of ${config.file}`, input.createdBy);
    return { kind: 'plan', runId, input };
  });
}

/** Refresh the claim's heartbeat while the auto run lives; returns the function that stops it. */
export function keepClaim(store: PlanStore, runId: number, live: Liveness): () => void {
  // a timer cannot wait for its write: each beat's runs on its own; a busy database: the next beat
  return live.heartbeat(HEARTBEAT_MS, () => void store.autoHeartbeat(runId).catch(() => {}));
}

/**
 * After the probes of an auto plan, in one transaction: servers that could not be reached are
 * `excluded` (left for the next run, not failures of this one; the reason says so); with no
 * server left to update, the update and everything recorded for it go and the auto run's row is
 * the one record of it (`nothing-to-do`); else the update becomes `pending`.
 */
export function finishAutoPlan(
  store: PlanStore,
  runId: number,
  name: string,
  commit: string,
  now: Date,
): Promise<{ nothing: string } | { update: UpdateRecord; leftForNextRun: string[] }> {
  return store.tx(async (t) => {
    const servers = await t.getServers(name);
    const unreachable = servers.filter((s) => s.status === 'unreachable');
    for (const s of unreachable) {
      await t.setServerStatus(s.id, 'excluded', { error: `unreachable when auto planned (${s.error ?? 'no reason recorded'}); left for the next auto run`, endedAt: now.toISOString() });
    }
    const pending = servers.filter((s) => s.status === 'pending');
    // each with why, so that the one line a no-op run prints keeps the error in sight
    const why = unreachable.map((s) => `${s.name} (${firstLine(s.error)})`).join(', ');
    const unreached = unreachable.length === 0 ? '' : `; ${unreachable.length} unreachable, left for the next run: ${why}`;
    if (pending.length === 0) {
      const at = servers.filter((s) => s.status === 'skipped').length;
      const other = servers.length - at - unreachable.length;
      const message =
        at === 0 && other === 0 && unreachable.length > 0
          ? `no server could be reached, so nothing was done: ${unreachable.length} unreachable, left for the next run: ${why}`
          : `nothing to do: ${plural(at, 'server')} already ${at === 1 ? 'runs' : 'run'} the target ${commit.slice(0, 12)}` +
        `${other > 0 ? `; ${plural(other, 'server')} excluded by the probe` : ''}${unreached}`;
      await t.discardPlan(name);
      await t.endAutoRun(runId, 'nothing-to-do', message, null);
      return { nothing: message };
    }
    return { update: await t.setUpdateStatus(name, 'pending'), leftForNextRun: unreachable.map((s) => s.name) };
  });
}

/** An error's first line, cut to 120 characters: what a one-line summary quotes of it. */
function firstLine(error: string | null): string {
  const line = (error ?? 'no reason recorded').split('\n')[0]!.trim();
  return line.length > 120 ? `${line.slice(0, 119)}…` : line;
}
