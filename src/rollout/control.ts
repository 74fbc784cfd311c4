/**
 * A pause or a cancel asked from another process (or a signal): one transaction each.
 */
import { actor } from '../util/actor.js';
import type { Liveness } from '../liveness.js';
import { TransitionError } from '../errors.js';
import type { EngineStore } from '../store/port.js';
import type { ServerRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { describeLiveHolder, holderIsDead } from './lease.js';
import { allows, itIs, whatYouCanDo } from '../model/lifecycle.js';

/**
 * Ask a running update to pause after the server in flight; from another process or a signal.
 * `by`: who asks (`user@host`, by default this process's user), recorded with the pause. One
 * transaction (of `store`, or the caller's).
 */
export function requestPause(store: EngineStore, name: string, now: Date, live: Liveness, by: string = actor()): Promise<{ alreadyPaused: boolean; pausedNow: boolean }> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    if (u.status === 'paused') return { alreadyPaused: true, pausedNow: false };
    if (!allows(u.status, 'pause')) {
      throw new TransitionError(`cannot pause update ${name}: ${itIs(u.status)}. ${whatYouCanDo(name, u.status)}`);
    }
    const executorAlive = u.lease !== null && !holderIsDead(u.lease, now, live);
    const inFlight = (await t.getServers(name)).some((s) => s.status === 'running');
    if (!executorAlive && !inFlight) {
      // Its executor died between servers: nothing is half done, so it can be paused right here.
      await t.addEvent(name, null, 'pause-requested', `pause requested by ${by}`, by);
      await t.setUpdateStatus(name, 'paused', { reason: `pause requested by ${by}`, pauseRequestedAt: null, pauseRequestedBy: null, stopAtWorked: null, stopFromWorked: null });
      return { alreadyPaused: false, pausedNow: true };
    }
    // The first request is the one that pauses it; a second is journalled too, but does not rename who asked.
    await t.patchUpdate(name, { pauseRequestedAt: u.pauseRequestedAt ?? now.toISOString(), pauseRequestedBy: u.pauseRequestedAt ? u.pauseRequestedBy : by });
    await t.addEvent(name, null, 'pause-requested', `pause requested by ${by}`, by);
    return { alreadyPaused: false, pausedNow: false };
  });
}

/**
 * End a pending or paused update, or a `running` one whose executor is dead (the way out when the
 * server it left in flight never comes back): that server becomes `fatal`, for a person, since
 * nobody knows what state it is in. Returns those servers.
 */
export function cancelUpdate(store: EngineStore, name: string, now: Date, live: Liveness, by: string = actor()): Promise<{ leftForAPerson: ServerRecord[]; alreadyCancelled: boolean }> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    // Asking again for the end state it is in is not an error (as `pause` of a paused update).
    if (u.status === 'cancelled') return { leftForAPerson: [], alreadyCancelled: true };
    if (u.status !== 'running') {
      await t.addEvent(name, null, 'cancel', `cancelled by ${by}`, by);
      await t.setUpdateStatus(name, 'cancelled', { endedAt: now.toISOString(), reason: `cancelled by ${by}` });
      return { leftForAPerson: [], alreadyCancelled: false };
    }
    if (u.lease && !holderIsDead(u.lease, now, live)) {
      throw new TransitionError(
        `cannot cancel update ${name}: it is running, executed by ${describeLiveHolder(u.lease, now, live)}; ` +
          `pause it first with \`${suggest(`pause ${name}`)}\`, then cancel it`,
      );
    }
    const inFlight = (await t.getServers(name)).filter((s) => s.status === 'running');
    const left: ServerRecord[] = [];
    for (const s of inFlight) {
      const lock = s.lockHeld ? `; our lock may still be on it: clear it with \`${suggest(`unlock ${s.name} --yes`)}\` once it is dealt with` : '';
      left.push(
        await t.setServerStatus(s.id, 'fatal', {
          step: null,
          endedAt: now.toISOString(),
          error:
            `it was in flight (step ${s.step ?? '?'}) when the executor died, and the update was cancelled before anything ` +
            `re-checked it: its state is unknown, check it by hand${lock}`,
        }),
      );
    }
    if (u.lease) await t.releaseLease(name, u.lease.token);
    const reason = left.length
      ? `cancelled by ${by} after its executor died; left for a person: ${left.map((s) => s.name).join(', ')}`
      : `cancelled by ${by} after its executor died`;
    await t.addEvent(name, null, 'cancel', `cancelled by ${by}`, by);
    await t.setUpdateStatus(name, 'cancelled', { endedAt: now.toISOString(), reason, pauseRequestedAt: null, pauseRequestedBy: null });
    return { leftForAPerson: left, alreadyCancelled: false };
  });
}
