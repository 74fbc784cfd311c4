/**
 * One server's turn in a rolling restart (`agent-update restart`, settings.restartOnly): the
 * re-check under the lock reads the commit it runs; that commit is recorded (with the step
 * `restart`, committed before the first restart command, as an update records its previous
 * commit); the named restarts run in order; then verify: agent.health until healthy (its
 * `{commit}` the server's own), and version_command must still print the commit it had. Nothing
 * is fetched or checked out; a server is never `skipped` (a restart has no target to be at) and
 * never rolled back: a failure runs agent.diagnose and leaves it `failed`, which stops or pauses
 * the update as any failure (the failure budget). A takeover decides from the journal
 * (recover.ts restartRecoveryOf): restarts never sent run, one whose end was never recorded is
 * not run again, the server is verified.
 */
import type { RolloutSettings } from '../config/types.js';
import type { PathStop } from '../model/records.js';
import { expandCommand } from '../util/shell.js';
import { diagnoseServer } from './diagnose.js';
import { verifyHealth } from './health.js';
import { phaseValues } from './phases.js';
import { describeFailure } from './read-commit.js';
import { restartProgress, restartRecoveryOf, type Found, type RestartProgress, type RestartRecovery } from './recover.js';
import type { ServerRun } from './server-run.js';

/**
 * Each restart of the settings with the command as the journal records it when run on a server
 * at `commit` ({commit} and {previous_commit} are both that commit): the expanded command, or the
 * template when it cannot be expanded (what the executor journals then, refused).
 */
export function restartCommandsOf(settings: Pick<RolloutSettings, 'agent' | 'restart' | 'source' | 'rollback'>, commit: string): Array<{ name: string; template: string; command: string }> {
  const values = phaseValues(settings, 'restart', { target: commit, from: commit })!;
  return settings.restart.map((name) => {
    const template = settings.agent.restart[name] ?? '';
    let command: string;
    try {
      command = expandCommand(template, values);
    } catch {
      command = template;
    }
    return { name, template, command };
  });
}

/** Its turn: what the re-check found, from FRESH (nothing has run on it). */
export function restartServer(run: ServerRun, found: Found, plannedFrom: string | null): Promise<void> {
  return carryOutRestart(run, restartRecoveryOf({ step: 'update', fromCommit: null, error: null }, found, [], 'turn'), plannedFrom);
}

/** A takeover: what was recorded (its step, its commit, the journal of its restarts) and what the re-check found. */
export async function recoverRestart(run: ServerRun, found: Found): Promise<void> {
  const s = run.server;
  let progress: RestartProgress[] = [];
  if (s.fromCommit !== null) {
    const rows = (await run.ctx.deps.store.getJournal(s.updateName, s.name)).filter((j) => j.serverId === s.id && j.phase === 'restart');
    progress = restartProgress(restartCommandsOf(run.settings, s.fromCommit), rows);
  }
  return carryOutRestart(run, restartRecoveryOf(s, found, progress));
}

async function carryOutRestart(run: ServerRun, next: RestartRecovery, plannedFrom?: string | null): Promise<void> {
  switch (next.kind) {
    case 'unreachable':
      return run.finish('unreachable', { error: next.reason, ...(plannedFrom !== undefined ? { fromCommit: plannedFrom } : {}) });
    case 'failed':
      return failRestart(run, next.reason, next.diagnosed);
    case 'begin': {
      // Committed before any restart command: a takeover knows a restart may have begun, and at what commit.
      // its own target is the commit it runs (the guard, a bake and history read it from the path)
      const planned = run.server.path?.[0];
      const path: PathStop[] = [{ commit: next.commit, version: planned?.commit === next.commit ? planned.version : null }];
      await run.setStep('restart', { fromCommit: next.commit, toCommit: next.commit, path });
      return restartAndVerify(run, 0);
    }
    case 'restart':
      return restartAndVerify(run, next.from);
    case 'verify':
      if (next.note !== null) await run.ctx.deps.store.addEvent(run.server.updateName, run.server.name, 'takeover', next.note);
      if (run.server.step !== 'verify') await run.setStep('verify');
      return verifyRestart(run);
  }
}

/** The restarts from index `from` on, in order; then verify. */
async function restartAndVerify(run: ServerRun, from: number): Promise<void> {
  const commit = run.server.fromCommit!;
  const { settings } = run;
  if (run.server.step !== 'restart') await run.setStep('restart');
  const values = phaseValues(settings, 'restart', { target: commit, from: commit })!;
  const restarts = restartCommandsOf(settings, commit).slice(from);
  for (const [i, r] of restarts.entries()) {
    // a restart cut by a lost connection is not sent again once the server answers (as after a crash): verified
    const result = await run.execTemplate('restart', r.template, values, undefined, { sendOnce: true });
    if (result.ended === 'lost') {
      const after = restarts.slice(i + 1).map((x) => x.name);
      await run.ctx.deps.store.addEvent(
        run.server.updateName,
        run.server.name,
        'connection',
        `restart ${r.name} was cut by a lost connection: it is not run again (a restart is never run twice blindly)${after.length > 0 ? `, nor ${after.join(', ')} after it` : ''}; verifying`,
      );
      break;
    }
    if (result.code !== 0) return failRestart(run, `restart ${r.name} ${describeFailure(result)}`);
  }
  await run.setStep('verify');
  return verifyRestart(run);
}

/** agent.health until healthy at the server's own commit, then version_command must print that commit still. */
async function verifyRestart(run: ServerRun): Promise<void> {
  const commit = run.server.fromCommit!;
  const health = await verifyHealth(run, 'verify', run.hop);
  if (!health.ok) return failRestart(run, health.error);
  // in phase recheck: a lost connection is waited for (ssh.reconnect_for), as a re-check's is
  const v = await run.version('recheck');
  if (!v.ok) return failRestart(run, `after the restart, ${v.error}`);
  if (v.commit !== commit) {
    return failRestart(run, `after the restart, version_command prints ${v.commit.slice(0, 12)}, not ${commit.slice(0, 12)} as before it: the commit changed (a restart changes none)`);
  }
  return run.finish('success', { error: null });
}

/** agent.diagnose (unless it ran for this failure already), then `failed`: a restart has nothing to roll back. */
async function failRestart(run: ServerRun, reason: string, diagnosed = false): Promise<void> {
  if (!diagnosed) await diagnoseServer(run, reason);
  return run.finish('failed', { error: reason });
}

