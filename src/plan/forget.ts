/**
 * `agent-update forget NAME`: remove an update that never ran, with everything recorded for it
 * (its probes' journal, its events): a plan nobody will start, one cancelled before it began, or
 * one left `planning` by a plan that was killed. Its name is free again. An update any server of
 * which was ever worked on is the audit trail of that work and is refused (exit 2, nothing
 * changed). What was forgotten is recorded as a `forgotten` event under its name (with who and
 * what it was), the one row left of it.
 */
import { TransitionError } from '../errors.js';
import type { Liveness } from '../liveness.js';
import { forgettable, FORGETTABLE_UPDATE, TOUCHED_SERVER, type UpdateStatus } from '../model/lifecycle.js';
import type { UpdateRecord } from '../model/records.js';
import type { PlanStore } from '../store/port.js';
import { actor } from '../util/actor.js';
import { plural } from '../util/plural.js';
import { suggest } from '../util/suggest.js';
import { autoRunIsDead } from '../rollout/lease.js';

const FORGETTABLE: readonly UpdateStatus[] = [...FORGETTABLE_UPDATE];

export interface Forgotten {
  name: string;
  status: UpdateStatus;
  servers: number;
}

/**
 * In one transaction: NAME and the batches split from it, each checked (never started, no
 * server touched or carrying our lock, not being planned by a live `auto`), then removed; all
 * or nothing. Returns what was removed, NAME first.
 */
export function forgetUpdate(store: PlanStore, name: string, now: Date, live: Liveness, by: string = actor()): Promise<Forgotten[]> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    const all = [u, ...(await t.batchesOf(name))];
    const out: Forgotten[] = [];
    for (const x of all) {
      const servers = await t.getServers(x.name);
      refuseUnlessForgettable(x, name, servers);
      if (x.status === 'planning' && x.configFile !== null) {
        const claim = (await t.openAutoRuns(x.configFile)).find((r) => r.updateName === x.name && !autoRunIsDead(r, now, live));
        if (claim) {
          throw new TransitionError(
            `cannot forget update ${x.name}: an auto run (pid ${claim.pid} on ${claim.host}, since ${claim.startedAt}) is planning it now; nothing was changed`,
          );
        }
      }
      out.push({ name: x.name, status: x.status, servers: servers.length });
    }
    for (const x of all.slice().reverse()) {
      const f = out.find((o) => o.name === x.name)!;
      await t.discardPlan(x.name, FORGETTABLE);
      await t.addEvent(
        x.name,
        null,
        'forgotten',
        `update ${x.name} (${x.status}, ${plural(f.servers, 'server')}, target ${x.commit.slice(0, 12)}, planned${x.createdBy ? ` by ${x.createdBy}` : ''} at ${x.createdAt}) forgotten by ${by}; it never ran`,
        by,
      );
    }
    return out;
  });
}

function refuseUnlessForgettable(x: UpdateRecord, asked: string, servers: ReadonlyArray<{ name: string; status: string; lockHeld: boolean }>): void {
  const of = x.name === asked ? '' : ` (a batch of ${asked})`;
  const touched = servers.filter((s) => TOUCHED_SERVER.has(s.status as never) || s.lockHeld);
  if (!forgettable(x) || touched.length > 0) {
    const why =
      x.startedAt !== null || touched.length > 0
        ? `it ran (${x.status}${touched.length ? `; ${touched.slice(0, 5).map((s) => s.name).join(', ')}${touched.length > 5 ? ', …' : ''} worked on` : ''}), and its record is the audit trail of that work`
        : `it is ${x.status}`;
    throw new TransitionError(
      `cannot forget update ${x.name}${of}: ${why}; only an update that never started (planning, pending, or cancelled before it began) can be forgotten. ` +
        'Nothing was changed.' +
        (x.status === 'paused' ? ` To end it so that nothing more runs: \`${suggest(`cancel ${x.name}`)}\`` : ''),
    );
  }
}
