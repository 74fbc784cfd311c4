import { TransitionError } from '../errors.js';
import { suggest } from '../util/suggest.js';
import type { UpdateRecord } from './records.js';

/**
 * THE state machine (SPEC.md "Statuses"). Every status change of an update or a server goes
 * through `updateTransition` / `serverTransition`; anything not in these tables is refused
 * with a named error that says what is allowed from the current status.
 */
export const UPDATE_STATUSES = [
  'planning',
  'pending',
  'running',
  'paused',
  'success',
  'partial-success',
  'failure',
  'cancelled',
] as const;
export type UpdateStatus = (typeof UPDATE_STATUSES)[number];

export const SERVER_STATUSES = [
  'pending',
  'running',
  'skipped',
  'unreachable',
  'success',
  'rolled-back',
  'failed',
  'fatal',
  'excluded',
] as const;
export type ServerStatus = (typeof SERVER_STATUSES)[number];

/** `diagnose`: agent.diagnose runs on a server that failed, before its rollback (rollout/diagnose.ts). */
export const SERVER_STEPS = ['update', 'restart', 'verify', 'diagnose', 'rollback', 'verify-rollback'] as const;
export type ServerStep = (typeof SERVER_STEPS)[number];

/**
 * The steps inside `running`, in order: update → restart → verify, and on a failure diagnose →
 * rollback → verify-rollback. What each says about the server, read by a takeover
 * (rollout/recover.ts) and by the hop's walk (a server already verifying is not restarted again):
 * - `updated`: every update command of the hop has run (its commit is expected on it);
 * - `restarted`: its restarts have run too, only the health check is left;
 * - `rollingBack`: the hop failed; diagnose, rollback and its verify are what is left.
 */
export const STEP_TABLE: Record<ServerStep, { updated: boolean; restarted: boolean; rollingBack: boolean }> = {
  update: { updated: false, restarted: false, rollingBack: false },
  restart: { updated: true, restarted: false, rollingBack: false },
  verify: { updated: true, restarted: true, rollingBack: false },
  diagnose: { updated: false, restarted: false, rollingBack: true },
  rollback: { updated: false, restarted: false, rollingBack: true },
  'verify-rollback': { updated: false, restarted: false, rollingBack: true },
};

const UPDATE_TABLE: Record<UpdateStatus, readonly UpdateStatus[]> = {
  // planning → cancelled: a plan whose process died before it finished probing.
  planning: ['pending', 'cancelled'],
  pending: ['running', 'cancelled'],
  // running → running is a takeover of an update whose executor died.
  // running → cancelled only when its executor is dead (cancelUpdate checks): the way out of an
  // update whose in-flight server never comes back.
  running: ['running', 'paused', 'success', 'partial-success', 'failure', 'cancelled'],
  paused: ['running', 'cancelled'],
  success: [],
  'partial-success': [],
  failure: [],
  cancelled: [],
};

const SERVER_TABLE: Record<ServerStatus, readonly ServerStatus[]> = {
  // pending → skipped / unreachable / excluded: what the plan's probe found (excluded: its
  // version is unreadable; later also below min_version with no path), or `drop` (an operator took it
  // out of a pending or paused update: rollout/drop.ts).
  pending: ['running', 'skipped', 'unreachable', 'excluded'],
  // running → running moves between steps, and is how a takeover re-runs the server in flight.
  // running → unreachable: the connection could not be opened, so nothing ran on the server.
  // running → pending: another update (or another database's executor) holds the server; nothing
  // ran on it, and it waits for its turn.
  running: ['running', 'pending', 'success', 'skipped', 'unreachable', 'rolled-back', 'failed', 'fatal'],
  skipped: [],
  // unreachable → pending / skipped / excluded: only `plan --refresh` of a pending or paused
  // update, which probed it again (nothing had run on it).
  unreachable: ['pending', 'skipped', 'excluded'],
  // success → failed / running: it turned unhealthy after it passed (execution.guard, or a step's
  // bake): counted as failed, or claimed again to be rolled back (guard.rollback: true).
  success: ['failed', 'running'],
  'rolled-back': [],
  failed: [],
  fatal: [],
  // excluded: never touched, and never will be by this update (not a failure; see finalStatus).
  excluded: [],
};

/**
 * The phases of the journal (a `steps` row's `phase`): which part of the work a remote command
 * was. Not the same thing as a server's step above: one step runs commands of several phases
 * (a takeover's re-check is `takeover`, a release of the lock `unlock`, at any step).
 */
export const JOURNAL_PHASES = ['probe', 'prepare', 'recheck', 'update', 'restart', 'verify', 'diagnose', 'rollback', 'verify-rollback', 'takeover', 'unlock'] as const;
export type JournalPhase = (typeof JOURNAL_PHASES)[number];

/**
 * The phases whose command, cut by a lost connection, is run again once the server answers
 * (ssh.reconnect_for). Not retried: a health check that cannot connect is just not healthy yet
 * (its loop has its own timeout); releasing the lock is best effort; a prepare is not worth
 * waiting for (the server's turn connects again); agent.diagnose is informational and stops once
 * the server does not answer; a probe marks the server unreachable.
 */
export const RETRIED_AFTER_LOST: ReadonlySet<JournalPhase> = new Set(['recheck', 'update', 'restart', 'rollback', 'takeover']);

/** Statuses the table lets nothing leave. */
export const TERMINAL_UPDATE: ReadonlySet<UpdateStatus> = new Set(UPDATE_STATUSES.filter((st) => UPDATE_TABLE[st].length === 0));
/** Statuses an update can still move from: it is being planned, waits, runs or is paused. */
export const ACTIVE_UPDATE: ReadonlySet<UpdateStatus> = new Set(UPDATE_STATUSES.filter((st) => !TERMINAL_UPDATE.has(st)));

// ---- named sets of server statuses ----------------------------------------------------------
// Every rule that groups server statuses reads one of these; the store builds its SQL from them
// (sqlList), so a query and the code that reads its rows never disagree about a group.

/** Terminal statuses that involved work on the server: they count towards test mode's stop_after. */
export const WORKED_SERVER: ReadonlySet<ServerStatus> = new Set(['success', 'rolled-back', 'failed', 'fatal']);
/** What the failure budget (execution.max_failures) counts: a rollback, or a failure with rollback off. */
export const BUDGETED_SERVER: ReadonlySet<ServerStatus> = new Set(['rolled-back', 'failed']);
/** Worked on and not at the target: a pause after one of these in the same run is exit 5 (rollout/outcome.ts). */
export const FAILED_SERVER: ReadonlySet<ServerStatus> = new Set(['rolled-back', 'failed', 'fatal']);
/** Still to do or in flight: the update has work left on it. */
export const ACTIVE_SERVER: ReadonlySet<ServerStatus> = new Set(['pending', 'running']);
/** Ended at the update's target: updated, or found there. */
export const AT_TARGET_SERVER: ReadonlySet<ServerStatus> = new Set(['success', 'skipped']);
/** Something ran on it, or runs now: worked, or in flight (what a later update's undo must not undo). */
export const TOUCHED_SERVER: ReadonlySet<ServerStatus> = new Set(['running', ...WORKED_SERVER]);
/**
 * The rows that say something about the server's commit (`history`): worked on, being worked on,
 * or found at the target. Pending, unreachable and excluded rows never touched it.
 */
export const HISTORY_SERVER: ReadonlySet<ServerStatus> = new Set([...WORKED_SERVER, 'running', 'skipped']);

/** A set of statuses as an SQL list (`'a', 'b'`): fixed names from the tables above, never input. */
export function sqlList(statuses: ReadonlySet<string>): string {
  return [...statuses].map((st) => `'${st}'`).join(', ');
}

export function canTransitionUpdate(from: UpdateStatus, to: UpdateStatus): boolean {
  return UPDATE_TABLE[from].includes(to);
}

export function allowedFromUpdate(from: UpdateStatus): readonly UpdateStatus[] {
  return UPDATE_TABLE[from];
}

/** Throws a TransitionError unless the table allows `from → to` for an update. */
export function updateTransition(name: string, from: UpdateStatus, to: UpdateStatus): void {
  if (!canTransitionUpdate(from, to)) {
    throw new TransitionError(`update ${name}: ${itIs(from)}, so it cannot become ${to}. ${whatYouCanDo(name, from)}`);
  }
}

/** Throws a TransitionError unless the table allows `from → to` for a server. */
/** The statuses a server may become `to` from (the table read backwards). */
export function serverStatusesBefore(to: ServerStatus): ServerStatus[] {
  return (Object.keys(SERVER_TABLE) as ServerStatus[]).filter((from) => SERVER_TABLE[from].includes(to));
}

export function serverTransition(update: string, server: string, from: ServerStatus, to: ServerStatus): void {
  if (!SERVER_TABLE[from].includes(to)) {
    throw new TransitionError(`server ${server} of update ${update} is ${from}; it cannot become ${to}`);
  }
}

/**
 * The statuses of an update `forget` may remove, always only one never started (no server of it
 * was ever worked on): planned, cancelled before it began, or left `planning` by a killed plan.
 */
export const FORGETTABLE_UPDATE: ReadonlySet<UpdateStatus> = new Set(['planning', 'pending', 'cancelled']);

/** Whether `forget` may remove this update (plan/forget.ts checks its servers too). */
export function forgettable(u: Pick<UpdateRecord, 'status' | 'startedAt'>): boolean {
  return u.startedAt === null && FORGETTABLE_UPDATE.has(u.status);
}

/** "it is …" in a sentence: `it is paused`, `it has ended (success)`, `it was cancelled`. */
export function itIs(status: UpdateStatus): string {
  if (status === 'cancelled') return 'it was cancelled';
  return TERMINAL_UPDATE.has(status) ? `it has ended (${status})` : `it is ${status}`;
}

/**
 * The commands that act on an update, and the statuses each may act from: the one table that
 * `start`/`resume` (checkRunnable below), `pause`, `split`, `drop` and `plan --refresh` check,
 * and that the error messages read to name what can be done instead (`cancel` is refused by the
 * transition table itself: a terminal update cannot become cancelled).
 * - start/resume from running: a takeover (refused while its executor lives: the lease);
 * - start from paused: only a batch split from a paused update that never ran (checkRunnable);
 * - cancel from running: only when its executor is dead (cancelUpdate checks).
 */
export type UpdateCommand = 'start' | 'resume' | 'pause' | 'cancel' | 'split' | 'drop' | 'refresh';
const COMMANDS_FROM: Record<UpdateStatus, readonly UpdateCommand[]> = {
  planning: ['cancel'],
  pending: ['start', 'split', 'drop', 'refresh', 'cancel'],
  running: ['pause', 'start', 'resume', 'cancel'],
  paused: ['resume', 'split', 'drop', 'refresh', 'cancel'],
  success: [],
  'partial-success': [],
  failure: [],
  cancelled: [],
};

/** Whether `command` may act on an update that is `status` (its own checks may refuse it still). */
export function allows(status: UpdateStatus, command: UpdateCommand): boolean {
  return COMMANDS_FROM[status].includes(command);
}

/** What a command reads like in a suggestion (`split NAME --batches N`). */
function commandLine(command: UpdateCommand, name: string): string {
  return command === 'split' ? `split ${name} --batches N` : `${command} ${name}`;
}

/** The commands an operator can run from `status` (COMMANDS_FROM), for error messages that name the fix. */
export function whatYouCanDo(name: string, status: UpdateStatus): string {
  const can = COMMANDS_FROM[status];
  if (status === 'planning') {
    return `It is still being planned; if that process died, \`${suggest(`forget ${name}`)}\` removes it, and the name is free again.`;
  }
  if (status === 'running') {
    return `From running you can: \`${suggest(`pause ${name}`)}\`, or \`${suggest(`start ${name}`)}\` to take over if its process died.`;
  }
  if (can.length === 0) return `Nothing more can run in it. Plan a new update with \`${suggest(`plan -c FILE`)}\`.`;
  // the commands that move it on; drop and refresh change what it covers, and are named where they apply
  const shown = can.filter((c) => c !== 'drop' && c !== 'refresh');
  return `From ${status} you can: ${shown.map((c) => `\`${suggest(commandLine(c, name))}\``).join(', ')}.`;
}

/**
 * Throws (exit 2, nothing written) unless `start` (or `resume`) may run the update: pending (or
 * paused), or running (a takeover). A batch split from a paused update is paused but never ran:
 * `start` begins it as `resume` would.
 */
export function checkRunnable(u: Pick<UpdateRecord, 'name' | 'status' | 'batchOf' | 'startedAt'>, mode: 'start' | 'resume'): void {
  if (allows(u.status, mode)) return;
  if (mode === 'start' && u.status === 'paused' && u.batchOf !== null && u.startedAt === null) return;
  if (mode === 'start' && u.status === 'paused') {
    throw new TransitionError(`update ${u.name} is paused; continue it with \`${suggest(`resume ${u.name}`)}\``);
  }
  if (mode === 'resume' && u.status === 'pending') {
    throw new TransitionError(`update ${u.name} is pending, not paused; begin it with \`${suggest(`start ${u.name}`)}\``);
  }
  throw new TransitionError(`cannot ${mode} update ${u.name}: ${itIs(u.status)}. ${whatYouCanDo(u.name, u.status)}`);
}

/** `total` and a key for every server status that occurs (SPEC `counts`). */
export function countsOf(servers: ReadonlyArray<{ status: ServerStatus }>): Record<string, number> {
  const counts: Record<string, number> = { total: servers.length };
  for (const s of servers) counts[s.status] = (counts[s.status] ?? 0) + 1;
  return counts;
}

/**
 * A server this update works on (or did): everything but the servers left alone at plan time
 * (already at the target, or unreachable before anything ran). Progress counts these only.
 */
export function worksOn(s: { status: ServerStatus; startedAt: string | null }): boolean {
  return ACTIVE_SERVER.has(s.status) || WORKED_SERVER.has(s.status) || (s.status === 'unreachable' && s.startedAt !== null);
}
