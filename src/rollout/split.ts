import { TransitionError, UsageError } from '../errors.js';
import type { Store } from '../store/store.js';
import { whatYouCanDo } from './status.js';

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
 * Split a pending update's pending servers into `n` updates in one transaction: the original
 * keeps the first batch (and its test mode); `NAME.2` … `NAME.N` get the others. Servers that
 * the plan already settled (skipped, unreachable) stay with the original.
 */
export function splitUpdate(store: Store, name: string, n: number): string[] {
  return store.tx(() => {
    const u = store.getUpdate(name);
    if (u.status !== 'pending') {
      throw new TransitionError(`cannot split update ${name}: it is ${u.status}, and only a pending update can be split. ${whatYouCanDo(name, u.status)}`);
    }
    const pending = store.getServers(name).filter((s) => s.status === 'pending');
    const batches = balancedBatches(pending, n);
    const names = batches.map((_, i) => batchName(name, i));
    for (const other of names.slice(1)) {
      if (store.hasUpdate(other)) throw new UsageError(`cannot split ${name}: an update named ${other} already exists`);
    }
    batches.slice(1).forEach((batch, i) => {
      const batch_ = names[i + 1]!;
      store.insertBatch(u, batch_, 0);
      store.moveServers(batch.map((s) => s.id), batch_);
      store.addEvent(batch_, null, 'split', `batch ${i + 2} of ${n}, split from ${name}: ${batch.map((s) => s.name).join(', ')}`);
    });
    // Keep the original's remaining servers numbered in order.
    const kept = store.getServers(name);
    store.moveServers(kept.map((s) => s.id), name);
    store.addEvent(name, null, 'split', `split into ${n} batches: ${names.join(', ')}`);
    return names;
  });
}
