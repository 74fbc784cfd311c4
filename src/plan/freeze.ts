/**
 * Deploy freezes (issue 25; model/freeze.ts has the rules): `freeze` and `unfreeze` of a
 * config's source repo, and the check `start`, `resume` and `auto` make before anything runs.
 * The freeze is a row of the plan store (table freezes), so with a shared PostgreSQL store it is
 * every machine's; the engine looks again before each new server (rollout/run.ts) and pauses a
 * rollout that a freeze caught mid-way.
 */
import { FrozenError, UsageError } from '../errors.js';
import { describeFreeze, repoKey } from '../model/freeze.js';
import { ACTIVE_UPDATE } from '../model/lifecycle.js';
import type { FreezeRecord, UpdateRecord } from '../model/records.js';
import type { PlanStore, ReportStore } from '../store/port.js';
import { shellQuote } from '../util/shell.js';
import { suggest } from '../util/suggest.js';

/** The longest reason a freeze takes (it is printed by every refused start). */
export const FREEZE_REASON_MAX = 1000;

/** `--reason TEXT`: required, not blank, one paragraph of at most FREEZE_REASON_MAX characters. */
export function checkReason(reason: string | undefined): string {
  if (reason === undefined) throw new UsageError('freeze needs --reason TEXT: why deploys stop (shown to everyone whose start it refuses)');
  const r = reason.trim();
  if (r === '') throw new UsageError('--reason is empty: say why deploys stop (shown to everyone whose start it refuses)');
  if (r.length > FREEZE_REASON_MAX) throw new UsageError(`--reason is ${r.length} characters long; at most ${FREEZE_REASON_MAX}`);
  return r;
}

/** The command that lifts `f`: with the config it was frozen with, when known. */
export function unfreezeHint(f: Pick<FreezeRecord, 'configFile'>): string {
  return suggest(`unfreeze -c ${f.configFile !== null ? shellQuote(f.configFile) : 'FILE'}`);
}

/** The freeze of `repo` in force now, if any. */
export function activeFreezeOf(store: ReportStore, repo: string): Promise<FreezeRecord | null> {
  return store.activeFreeze(repoKey(repo));
}

/** Why `what` (`start u1`, `auto`) is refused: who froze the repo, when and why, and the way out. */
export function frozenMessage(what: string, f: FreezeRecord): string {
  return `cannot ${what}: deploys of ${f.repo} are frozen ${describeFreeze(f)}; nothing was started or changed. Lift the freeze with \`${unfreezeHint(f)}\``;
}

/**
 * Before `start`/`resume` runs anything: a FrozenError (exit 3) naming who froze the repo of any
 * of `updates`, when and why. Reads only.
 */
export async function refuseIfFrozen(store: ReportStore, updates: readonly UpdateRecord[], mode: string): Promise<void> {
  for (const u of updates) {
    const f = await activeFreezeOf(store, u.repo);
    if (f) throw new FrozenError(frozenMessage(`${mode} ${u.name}`, f));
  }
}

/** The updates of this repo not finished yet, oldest first (the ones a freeze holds back). */
export async function unfinishedOfRepo(store: ReportStore, repo: string): Promise<UpdateRecord[]> {
  const key = repoKey(repo);
  return (await store.listUpdates()).filter((u) => ACTIVE_UPDATE.has(u.status) && repoKey(u.repo) === key);
}

/**
 * `freeze`: the repo frozen (or the freeze already in force, unchanged), and the updates it holds
 * back. In the same transaction each of them gets a `freeze` event with who froze it and why, so
 * its `logs` and `history NAME` show it where it happened.
 */
export function freezeRepo(
  store: PlanStore,
  f: { repo: string; configFile: string | null; reason: string; by: string },
): Promise<{ freeze: FreezeRecord; created: boolean; updates: UpdateRecord[] }> {
  return store.tx(async (t) => {
    const r = await t.freeze({ repoKey: repoKey(f.repo), repo: f.repo, configFile: f.configFile, reason: f.reason, frozenBy: f.by });
    const updates = await unfinishedOfRepo(t, f.repo);
    if (r.created) for (const u of updates) await t.addEvent(u.name, null, 'freeze', `deploys of ${r.freeze.repo} frozen ${describeFreeze(r.freeze)}`, f.by);
    return { ...r, updates };
  });
}

/** `unfreeze`: the freeze lifted (an `unfreeze` event on each unfinished update of the repo), or null when the repo was not frozen. */
export function unfreezeRepo(store: PlanStore, repo: string, by: string): Promise<FreezeRecord | null> {
  return store.tx(async (t) => {
    const lifted = await t.unfreeze(repoKey(repo), by);
    if (lifted) {
      for (const u of await unfinishedOfRepo(t, repo)) await t.addEvent(u.name, null, 'unfreeze', `deploys of ${lifted.repo} unfrozen by ${by} (frozen ${describeFreeze(lifted)})`, by);
    }
    return lifted;
  });
}
