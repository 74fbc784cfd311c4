import { TransitionError, UsageError } from '../errors.js';
import type { EngineStore } from '../store/port.js';
import { allows, whatYouCanDo } from '../model/lifecycle.js';

/**
 * Divide `items` into `n` contiguous batches whose sizes differ by at most one, none empty,
 * together exactly `items` in order. Pure.
 */
export function balancedBatches<T>(items: readonly T[], n: number): T[][] {
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--batches must be a whole number of at least 1, not ${n}`);
  if (n > items.length) {
    throw new UsageError(`cannot split ${items.length} pending server${items.length === 1 ? '' : 's'} into ${n} batches: a batch would be empty`);
  }
  const base = Math.floor(items.length / n);
  const extra = items.length % n;
  const out: T[][] = [];
  let at = 0;
  for (let i = 0; i < n; i++) {
    const size = base + (i < extra ? 1 : 0);
    out.push(items.slice(at, at + size));
    at += size;
  }
  return out;
}

export function batchName(name: string, index: number): string {
  return index === 0 ? name : `${name}.${index + 1}`;
}

/**
 * Split a pending or paused update's pending servers into `n` updates in one transaction: the
 * original keeps the first batch (and its test mode); `NAME.2` … `NAME.N` get the others, with no
 * test mode. Servers that are not pending (settled by the plan, or finished before a pause: the
 * canary of `start --stop-after 1`) stay with the original, with their journal and events.
 * The batches of a paused update are paused too, so one `resume NAME NAME.2 …` runs them all
 * (`start` also begins a batch that never ran). A pending server that may still carry our lock
 * (left by a takeover) stays with the original, whose name the lock holds.
 */
export function splitUpdate(store: EngineStore, name: string, n: number): Promise<string[]> {
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    if (!allows(u.status, 'split')) {
      throw new TransitionError(
        `cannot split update ${name}: it is ${u.status}, and only a pending or paused update can be split. ${whatYouCanDo(name, u.status)}`,
      );
    }
    const pending = (await t.getServers(name)).filter((s) => s.status === 'pending' && !s.lockHeld);
    if (pending.length === 0) throw new UsageError(`cannot split update ${name}: it has no pending server left`);
    const batches = balancedBatches(pending, n);
    const names = batches.map((_, i) => batchName(name, i));
    for (const other of names.slice(1)) {
      if (await t.hasUpdate(other)) throw new UsageError(`cannot split ${name}: an update named ${other} already exists`);
    }
    const paused = u.status === 'paused';
    for (const [i, batch] of batches.slice(1).entries()) {
      const batch_ = names[i + 1]!;
      await t.insertBatch(u, batch_, 0, paused ? { status: 'paused', reason: `split from ${name} while it was paused` } : undefined);
      await t.moveServers(batch.map((s) => s.id), batch_);
      await t.addEvent(batch_, null, 'split', `batch ${i + 2} of ${n}, split from ${name}: ${batch.map((s) => s.name).join(', ')}`);
    }
    // Keep the original's remaining servers numbered in order.
    const kept = await t.getServers(name);
    await t.moveServers(kept.map((s) => s.id), name);
    await t.addEvent(name, null, 'split', `split into ${n} batches: ${names.join(', ')}`);
    return names;
  });
}
