/**
 * The executor loop's own decisions, pure (as decide() and recoveryOf are): where test mode
 * pauses, and whether to keep waiting for a server another update holds. run.ts carries them
 * out; test/rollout/rules.test.ts has their tables.
 */
import type { UpdateRecord } from '../model/records.js';
import { formatDuration } from '../util/duration.js';
import { isWindowPause } from '../config/window.js';
import { isFreezePause } from '../model/freeze.js';

/**
 * Test mode's limit as a start, resume or takeover sets it: pause once `stopAtWorked` servers
 * have finished with work, counted from `stopFromWorked` (how many had when it was set).
 * `stopAfter`: `start|resume --stop-after N` (0 clears the limit); else a first start takes
 * test_mode.stop_after from the plan, a resume clears it (but for one paused by execution.window,
 * which stopped short of it), and a takeover keeps what was set.
 */
export function testModeLimit(
  before: Pick<UpdateRecord, 'status' | 'stopAtWorked' | 'stopFromWorked' | 'testStopAfter'> & { reason?: string | null },
  worked: number,
  stopAfter?: number,
): { stopAtWorked: number | null; stopFromWorked: number | null } {
  const after = (n: number) => (n > 0 ? { stopAtWorked: worked + n, stopFromWorked: worked } : { stopAtWorked: null, stopFromWorked: null });
  if (stopAfter !== undefined) return after(stopAfter);
  if (before.status === 'pending') return after(before.testStopAfter);
  // a pause for execution.window or a freeze kept the limit it stopped short of: the resume goes on to it
  if (before.status === 'paused' && (isWindowPause(before.reason) || isFreezePause(before.reason))) return { stopAtWorked: before.stopAtWorked, stopFromWorked: before.stopFromWorked };
  if (before.status === 'paused') return { stopAtWorked: null, stopFromWorked: null };
  return { stopAtWorked: before.stopAtWorked, stopFromWorked: before.stopFromWorked };
}

/** A server another update (or another database's executor) holds: who, and whether waiting can help. */
export interface Busy {
  serverId: number;
  server: string;
  /** who holds it, as a key: a change of holder is announced again */
  holder: string;
  /** why, for the operator */
  reason: string;
  /** its holder's executor is gone: waiting cannot help */
  dead: boolean;
  /** held by a lock on the server (looked at with a remote command), not by a row of this database */
  remote: boolean;
}

/** The wait for one busy server: since when, for which holder, how many times looked at. */
export interface Waiting {
  serverId: number;
  holder: string;
  since: number;
  polls: number;
}

/** How often a server held by another update of this database is looked at again (no remote command). */
export const DB_BUSY_POLL_MS = 500;
/** The first wait for a server locked from another database; doubled each time, up to the cap. */
export const LOCK_POLL_FIRST_MS = 1_000;
export const LOCK_POLL_MAX_MS = 15_000;

export type BusyStep =
  /** give up: pause the update, saying why */
  | { kind: 'pause'; why: string }
  /** wait `sleepMs`, then decide again; `announce`: a new holder (journal it as such) */
  | { kind: 'wait'; waiting: Waiting; announce: boolean; waitedMs: number; sleepMs: number };

/**
 * Whether to keep waiting for a busy server (execution.busy_wait, `limitMs`): a dead holder or
 * a wait past the limit pauses the update; else look again, a locked server (a remote command
 * each time) less and less often, a row of this database every half second.
 */
export function busyStep(busy: Busy, waiting: Waiting | null, now: number, limitMs: number): BusyStep {
  const w: Waiting = waiting && waiting.serverId === busy.serverId ? { ...waiting } : { serverId: busy.serverId, holder: '', since: now, polls: 0 };
  const waited = now - w.since;
  if (busy.dead || waited >= limitMs) {
    return { kind: 'pause', why: busy.dead ? busy.reason : `${busy.reason}; waited ${formatDuration(waited)} for it (execution.busy_wait)` };
  }
  const announce = w.holder !== busy.holder;
  w.holder = busy.holder;
  const poll = busy.remote ? Math.min(LOCK_POLL_MAX_MS, LOCK_POLL_FIRST_MS * 2 ** w.polls) : DB_BUSY_POLL_MS;
  w.polls++;
  return { kind: 'wait', waiting: w, announce, waitedMs: announce ? 0 : waited, sleepMs: Math.max(1, Math.min(poll, limitMs - waited)) };
}
