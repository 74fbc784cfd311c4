/**
 * `plan --show-commands`: every command each step will send, with its placeholders filled in by
 * the executor's own expansion (util/shell.ts expandCommand/expandText) and the values the
 * executor uses in each phase (rollout/server-flow.ts: walkHop, rollbackServer; rollout/health.ts: verifyHealth).
 * test/plan/review.e2e.test.ts runs a rollout and a rollback and compares what the journal
 * recorded with what this shows, so the two cannot drift apart unnoticed. Nothing is run.
 */
import type { RolloutSettings } from '../config/types.js';
import { expandCommand, expandText, type PlaceholderValues } from '../util/shell.js';
import { healthCheckOf, phaseValues, rollbackTarget } from '../rollout/phases.js';
import { hookTarget } from '../rollout/hooks.js';
import { GUARD_CONCURRENCY } from '../rollout/passed-check.js';
import type { PathStop } from '../model/records.js';
import type { JournalPhase, ServerStatus } from '../model/lifecycle.js';
import { serversByStep, stepProgress, stepsOf } from '../model/steps.js';

/**
 * The journal phase a shown command will be recorded in (its JSON field is named `step`, as
 * `plan --show-commands --json` has always written it).
 */
export type CommandStep = Exclude<JournalPhase, 'probe' | 'takeover' | 'unlock'>;

export interface ShownCommand {
  step: CommandStep;
  /** an `agent.update` command, the `version_command` check, a named restart, the health check, an `agent.diagnose` command */
  kind: 'prepare' | 'update' | 'version' | 'restart' | 'health' | 'diagnose';
  /** kind `restart`: the `agent.restart` name */
  name?: string;
  /**
   * exactly what is sent to the server, or null when it cannot be expanded (`error` says why:
   * the executor fails that step without sending anything)
   */
  command: string | null;
  /**
   * kind `version`: the commit it must print (null at the re-check, which only reads it); kind
   * `health`: the text its output must contain
   */
  expect?: string | null;
  /** kind `diagnose`: its timeout (agent.diagnose.timeout) */
  timeoutMs?: number;
  error?: string;
  /** a server walking stepping stones: the hop (1-based) of how many, and that hop's version (or commit) */
  hop?: number;
  hops?: number;
  hopTo?: string;
}

export interface CommandGroup {
  /** the servers that get exactly these commands, in plan order */
  servers: string[];
  /** their commit as probed: `{previous_commit}`, and the rollback target without `rollback.commit` */
  fromCommit: string | null;
  commands: ShownCommand[];
}

/**
 * The health check of servers that passed, as the guard and their step's bake re-check them
 * (rollout/passed-check.ts): agent.health with the values of its verify, a server's final target
 * as `{commit}` and the commit it had before the update as `{previous_commit}`; null `command`
 * when it cannot be expanded (`error`: the re-check counts the server unhealthy).
 */
export interface HealthRecheck {
  /** the servers it is exactly this for, in plan order */
  servers: string[];
  command: string | null;
  expect: string | null;
  error?: string;
}

/** execution.steps as `plan --show-commands` shows them: each step's size, bake, pause and servers. */
export interface ShownSteps {
  /** how many servers the steps divide */
  servers: number;
  /** how often a bake re-checks its step's servers (agent.health.interval) */
  intervalMs: number;
  plan: Array<{ step: number; through: number; bakeMs: number; pauseAfter: boolean; servers: string[] }>;
}

/** execution.guard as `plan --show-commands` shows it (its command: each group's passedCheck). */
export interface ShownGuard {
  intervalMs: number;
  rollback: boolean;
  afterFinishMs: number;
  /** how many servers a round re-checks at once */
  concurrency: number;
}

export interface ShownCommands {
  /** the update they are read from, or null (from a config: nothing probed, nothing recorded) */
  update: string | null;
  /** a rolling restart (agent-update restart): each server's commands at the commit it runs; absent otherwise */
  restartOnly?: true;
  /** undoOf: the update an undo puts back (its target is not the branch's tip, but each server's commit before it) */
  source: { repo: string; branch: string; commit: string; undoOf?: string };
  /**
   * placeholders whose value is each server's own and not known here (from a config:
   * `previous_commit`), shown as `<previous_commit>` where the value goes, quoted as it will be
   */
  unknown: string[];
  health: { intervalMs: number; timeoutMs: number; stableForMs: number };
  rollback: { enabled: boolean; commit: string | null; continueAfterRollback: boolean };
  /**
   * source.min_version and the stepping stones (commits in full), when the settings have them: a
   * server below min_version walks the stones first (from a config, whose servers' versions are
   * not read, the groups show the direct upgrade); absent otherwise
   */
  steppingStones?: { minVersion: string; stones: Array<{ version: string; commit: string }> };
  groups: CommandGroup[];
  /** the plan's hooks (run on the machine running agent-update, not on the servers); absent when none */
  hooks?: ShownHook[];
  /** execution.steps, when the plan has them (and a server to divide) */
  steps?: ShownSteps;
  /** execution.guard, when it is on */
  guard?: ShownGuard;
  /** the re-check of a server that passed (the guard's, a bake's), grouped as `groups`; absent when neither runs */
  healthRechecks?: HealthRecheck[];
}

/** A server as the steps count it (model/steps.ts): what `showCommands` needs to divide the servers into steps. */
export interface StepCounted {
  name: string;
  status: ServerStatus;
  startedAt: string | null;
  position: number;
}

/** A hook as `plan --show-commands` shows it: a url by its scheme and host only (rollout/hooks.ts hookTarget). */
export interface ShownHook {
  /** its index in `hooks:` */
  hook: number;
  target: string;
  events: string[];
  timeoutMs: number;
  required: boolean;
}

/** Stands where a server's previous commit goes, in text shown (never sent). */
export const PREVIOUS_MARK = '<previous_commit>';
/** In a rolling restart's commands from a config: stands for the commit each server runs ({commit} and {previous_commit} both). */
export const COMMIT_MARK = '<commit>';

/** What stands for the server's own commit, not known here, in these settings' commands. */
function markOf(settings: Pick<RolloutSettings, 'restartOnly'>): string {
  return settings.restartOnly ? COMMIT_MARK : PREVIOUS_MARK;
}
/**
 * Expanded in its place: a word quoted exactly like a 40-hex commit (both are SAFE_WORDs of
 * util/shell.ts, neither a reserved word), replaced by PREVIOUS_MARK afterwards.
 */
const SENTINEL = 'AGENTUPDATEPREVIOUSCOMMITSTANDSHERE0000000';

/**
 * The commands one server gets, step by step: the re-check, the update commands and the version
 * check, the restarts, the health check, then the agent.diagnose commands (run only on a
 * failure, with the forward values), then (rollback enabled) the same with the rollback values. `from`: its commit as probed, or 'unknown' (shown as PREVIOUS_MARK).
 */
export function serverCommands(settings: RolloutSettings, target: string, from: string | null | 'unknown', stone = false): ShownCommand[] {
  if (settings.restartOnly) return restartCommands(settings, from);
  const previous = from === 'unknown' ? SENTINEL : from;
  const shown = (s: string) => (from === 'unknown' ? s.split(SENTINEL).join(PREVIOUS_MARK) : s);
  const { agent, restart, rollback } = settings;
  const expanded = (step: CommandStep, kind: ShownCommand['kind'], template: string, v: PlaceholderValues, extra: Partial<ShownCommand> = {}): ShownCommand => {
    try {
      return { step, kind, ...extra, command: shown(expandCommand(template, v)) };
    } catch (e) {
      return { step, kind, ...extra, command: null, error: `not run: ${shown((e as Error).message)}` };
    }
  };
  const health = (step: CommandStep, v: PlaceholderValues): ShownCommand => {
    try {
      const expect = shown(expandText(agent.health.expect, v));
      return { step, kind: 'health', command: shown(expandCommand(agent.health.command, v)), expect };
    } catch (e) {
      return { step, kind: 'health', command: null, expect: null, error: `health command not run: ${shown((e as Error).message)}` };
    }
  };
  // the values of each phase, as the executor has them (rollout/phases.ts)
  const commits = { target, from: previous, stone };
  const forward = phaseValues(settings, 'update', commits)!;
  // agent.prepare, ahead of the server's turn (rollout/ahead.ts), with the same values
  const out: ShownCommand[] = [];
  if ((settings.execution?.prepareAhead ?? 1) > 0) for (const c of agent.prepare ?? []) out.push(expanded('prepare', 'prepare', c, forward));
  out.push({ step: 'recheck', kind: 'version', command: agent.versionCommand, expect: null });
  for (const c of agent.update) out.push(expanded('update', 'update', c, forward));
  out.push({ step: 'update', kind: 'version', command: agent.versionCommand, expect: target });
  for (const name of restart) out.push(expanded('restart', 'restart', agent.restart[name] ?? '', forward, { name }));
  out.push(health('verify', phaseValues(settings, 'verify', commits)!));
  // agent.diagnose: on a failure, before the rollback (rollout/diagnose.ts), rollback or not
  const diagnose = agent.diagnose;
  if (diagnose) {
    const values = phaseValues(settings, 'diagnose', commits)!;
    for (const c of diagnose.commands) out.push(expanded('diagnose', 'diagnose', c, values, { timeoutMs: diagnose.timeoutMs }));
  }
  if (!rollback.enabled) return out;
  const to = rollbackTarget(settings, previous, stone);
  if (to === null) {
    const error = 'no previous commit is known to roll back to (set rollback.commit): the server would end fatal';
    out.push({ step: 'rollback', kind: 'update', command: null, error });
    return out;
  }
  const back = phaseValues(settings, 'rollback', commits)!;
  for (const c of agent.update) out.push(expanded('rollback', 'update', c, back));
  out.push({ step: 'rollback', kind: 'version', command: agent.versionCommand, expect: shown(to) });
  for (const name of restart) out.push(expanded('rollback', 'restart', agent.restart[name] ?? '', back, { name }));
  out.push(health('verify-rollback', back));
  return out;
}

/**
 * The commands of a server in a rolling restart (rollout/restart-flow.ts), at the commit it runs
 * (`from`: as probed, or 'unknown', shown as COMMIT_MARK): the re-check, the restarts, the
 * health check, the version check that the commit is unchanged; agent.diagnose on a failure; no
 * update command, no rollback.
 */
export function restartCommands(settings: RolloutSettings, from: string | null | 'unknown'): ShownCommand[] {
  const unknown = from === 'unknown' || from === null;
  const commit = unknown ? SENTINEL : from;
  const shown = (s: string) => (unknown ? s.split(SENTINEL).join(COMMIT_MARK) : s);
  const { agent, restart } = settings;
  const expanded = (step: CommandStep, kind: ShownCommand['kind'], template: string, v: PlaceholderValues, extra: Partial<ShownCommand> = {}): ShownCommand => {
    try {
      return { step, kind, ...extra, command: shown(expandCommand(template, v)) };
    } catch (e) {
      return { step, kind, ...extra, command: null, error: `not run: ${shown((e as Error).message)}` };
    }
  };
  const values = phaseValues(settings, 'restart', { target: commit, from: commit })!;
  const out: ShownCommand[] = [{ step: 'recheck', kind: 'version', command: agent.versionCommand, expect: null }];
  for (const name of restart) out.push(expanded('restart', 'restart', agent.restart[name] ?? '', values, { name }));
  try {
    const { command, expect } = healthCheckOf(settings, phaseValues(settings, 'verify', { target: commit, from: commit })!);
    out.push({ step: 'verify', kind: 'health', command: shown(command), expect: shown(expect) });
  } catch (e) {
    out.push({ step: 'verify', kind: 'health', command: null, expect: null, error: `health command not run: ${shown((e as Error).message)}` });
  }
  out.push({ step: 'recheck', kind: 'version', command: agent.versionCommand, expect: shown(commit) });
  const diagnose = agent.diagnose;
  if (diagnose) {
    const v = phaseValues(settings, 'diagnose', { target: commit, from: commit })!;
    for (const c of diagnose.commands) out.push(expanded('diagnose', 'diagnose', c, v, { timeoutMs: diagnose.timeoutMs }));
  }
  return out;
}

/**
 * The health check of a server that passed (the guard's, a bake's: rollout/passed-check.ts), as
 * it will be sent: agent.health with the values of its verify, `target` its final target and
 * `from` the commit it had before the update (or 'unknown': shown as PREVIOUS_MARK).
 */
export function passedCheck(settings: RolloutSettings, target: string, from: string | null | 'unknown'): Omit<HealthRecheck, 'servers'> {
  const shown = (s: string) => (from === 'unknown' ? s.split(SENTINEL).join(markOf(settings)) : s);
  // a restart's target is the server's own commit: as unknown as it, from a config
  const values = phaseValues(settings, 'verify', { target: settings.restartOnly && from === 'unknown' ? SENTINEL : target, from: from === 'unknown' ? SENTINEL : from })!;
  try {
    const { command, expect } = healthCheckOf(settings, values);
    return { command: shown(command), expect: shown(expect) };
  } catch (e) {
    return { command: null, expect: null, error: `health command not run: ${shown((e as Error).message)}` };
  }
}

/** Whether servers that passed are re-checked at all: the guard is on, or a step bakes. */
function rechecked(settings: RolloutSettings): boolean {
  const ex = settings.execution;
  return Boolean(ex?.guard) || (ex?.steps ?? []).some((st) => st.bakeMs > 0);
}

/**
 * The commands of a server walking stepping stones: each hop's, in order, the re-check (and the
 * prepare) once before the first; a hop's rollback goes back to the commit before it.
 */
export function pathCommands(settings: RolloutSettings, target: string, from: string | null | 'unknown', path: readonly PathStop[] | null | undefined): ShownCommand[] {
  if (!path || path.length <= 1) return serverCommands(settings, path?.[0]?.commit ?? target, from);
  return path.flatMap((h, i) => {
    const cmds = serverCommands(settings, h.commit, i === 0 ? from : path[i - 1]!.commit, i > 0);
    return (i === 0 ? cmds : cmds.filter((c) => c.step !== 'recheck' && c.step !== 'prepare')).map((c) => ({
      ...c,
      hop: i + 1,
      hops: path.length,
      hopTo: h.version ?? h.commit,
    }));
  });
}

/**
 * The commands of `servers` (each with its probed commit, or 'unknown'), servers that get the
 * same commands grouped together, in plan order of each group's first server.
 */
export function showCommands(
  update: string | null,
  settings: RolloutSettings,
  target: string,
  servers: ReadonlyArray<{ name: string; fromCommit: string | null | 'unknown'; path?: readonly PathStop[] | null }>,
  stepsOver?: readonly StepCounted[],
  undoOf: string | null = null,
): ShownCommands {
  const groups = new Map<string, CommandGroup>();
  for (const s of servers) {
    const commands = pathCommands(settings, target, s.fromCommit, s.path);
    const key = JSON.stringify(commands);
    const g = groups.get(key);
    if (g) g.servers.push(s.name);
    else groups.set(key, { servers: [s.name], fromCommit: s.fromCommit === 'unknown' ? null : s.fromCommit, commands });
  }
  const rechecks = new Map<string, HealthRecheck>();
  if (rechecked(settings)) {
    for (const s of servers) {
      const check = passedCheck(settings, s.path?.at(-1)?.commit ?? target, s.fromCommit);
      const key = JSON.stringify(check);
      const r = rechecks.get(key);
      if (r) r.servers.push(s.name);
      else rechecks.set(key, { servers: [s.name], ...check });
    }
  }
  // a group's commit is named only when all its servers are at it
  const commitOf = new Map(servers.map((s) => [s.name, s.fromCommit]));
  for (const g of groups.values()) {
    if (g.servers.some((n) => commitOf.get(n) !== g.fromCommit)) g.fromCommit = null;
  }
  const { agent: { health }, rollback, source } = settings;
  return {
    update,
    ...(settings.restartOnly ? { restartOnly: true as const } : {}),
    source: { repo: source.repo, branch: source.branch, commit: target, ...(undoOf !== null ? { undoOf } : {}) },
    unknown: servers.some((s) => s.fromCommit === 'unknown') ? (settings.restartOnly ? ['commit', 'previous_commit'] : ['previous_commit']) : [],
    health: { intervalMs: health.intervalMs, timeoutMs: health.timeoutMs, stableForMs: health.stableForMs ?? 0 },
    rollback: { enabled: rollback.enabled, commit: rollback.commit, continueAfterRollback: rollback.continueAfterRollback },
    ...(settings.versions?.minVersion && (settings.versions.steppingStones ?? []).length > 0
      ? {
          steppingStones: {
            minVersion: settings.versions.minVersion,
            stones: settings.versions.steppingStones!.map((st) => ({ version: st.version, commit: st.commit })),
          },
        }
      : {}),
    groups: [...groups.values()],
    ...(settings.hooks?.length
      ? { hooks: settings.hooks.map((h, hook) => ({ hook, target: hookTarget(h), events: h.events, timeoutMs: h.timeoutMs, required: h.required })) }
      : {}),
    ...shownSteps(settings, stepsOver ?? servers.map((s, position) => ({ name: s.name, status: 'pending' as const, startedAt: null, position }))),
    ...(settings.execution?.guard
      ? { guard: { intervalMs: settings.execution.guard.intervalMs, rollback: settings.execution.guard.rollback, afterFinishMs: settings.execution.guard.afterFinishMs, concurrency: GUARD_CONCURRENCY } }
      : {}),
    ...(rechecks.size > 0 ? { healthRechecks: [...rechecks.values()] } : {}),
  };
}

/** The steps over `servers` (all of the update's, or those given as pending, in plan order); nothing without execution.steps. */
function shownSteps(settings: RolloutSettings, servers: readonly StepCounted[]): { steps?: ShownSteps } {
  const steps = settings.execution?.steps;
  if (!steps || steps.length === 0) return {};
  const { total } = stepProgress(servers);
  const plan = stepsOf(steps, total);
  if (plan.length === 0) return {};
  const names = serversByStep(servers, plan);
  return {
    steps: {
      servers: total,
      intervalMs: settings.agent.health.intervalMs,
      plan: plan.map((p, i) => ({ step: p.index, through: p.through, bakeMs: p.bakeMs, pauseAfter: p.pauseAfter, servers: names[i]!.map((s) => s.name) })),
    },
  };
}
