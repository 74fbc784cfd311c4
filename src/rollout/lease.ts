import { randomUUID } from 'node:crypto';
import { BusyError } from '../errors.js';
import type { Liveness } from '../liveness.js';
import type { EngineStore, ReportStore } from '../store/port.js';
import type { AutoRun, Lease, UpdateRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';

/** How often a live executor refreshes its lease. */
export const HEARTBEAT_MS = 2_000;
/** A lease not refreshed for this long belongs to a dead (or frozen) executor and is taken over. */
export const LEASE_STALE_MS = 30_000;

export function describeHolder(l: Lease): string {
  return `pid ${l.pid} on ${l.host} since ${l.since} (last heartbeat ${l.heartbeat})`;
}

/**
 * A holder is dead when it is proven gone. On this host that is its process: gone (or the pid
 * reused by another process) is dead, alive is busy whatever its heartbeat says (a process
 * stopped with Ctrl-Z or SIGSTOP beats no more, yet continued it would go on). On another host
 * nothing can be looked at, so a heartbeat older than LEASE_STALE_MS decides; a wrong guess is
 * made harmless by the fencing token every remote command checks (remote-lock.ts).
 */
export function holderIsDead(l: Lease, now: Date, live: Liveness): boolean {
  if (l.host === live.host) return !live.isAlive(l.pid, l.pidStart);
  return silentFor(l, now) > LEASE_STALE_MS;
}

/**
 * An open `auto` run's claim is judged like a lease: its process gone (this host) or no
 * heartbeat. Here, beside holderIsDead, so that `status` and `forget` need not load plan/auto.ts
 * (and execa with it) to ask it.
 */
export function autoRunIsDead(r: AutoRun, now: Date, live: Liveness): boolean {
  return holderIsDead({ token: '', pid: r.pid, host: r.host, pidStart: r.pidStart, since: r.startedAt, heartbeat: r.heartbeat }, now, live);
}

/** How long since the holder's last heartbeat, in ms. */
function silentFor(l: Pick<Lease, 'heartbeat'>, now: Date): number {
  return now.getTime() - Date.parse(l.heartbeat);
}

/**
 * Whole seconds since the holder's last heartbeat, once it has missed five (a live holder that
 * quiet may be stopped); null while it beats.
 */
export function quietFor(l: Pick<Lease, 'heartbeat'>, now: Date): number | null {
  const silent = silentFor(l, now);
  return silent > HEARTBEAT_MS * 5 ? Math.round(silent / 1000) : null;
}

/**
 * The holder as a person should read it: who, and, when it has not beaten for a while, that it
 * may be stopped (on this host: `kill -CONT` it, or end it).
 */
export function describeLiveHolder(l: Lease, now: Date, live: Pick<Liveness, 'host'>): string {
  const base = describeHolder(l);
  const secs = quietFor(l, now);
  if (secs === null) return base;
  return l.host === live.host
    ? `${base}; it has not beaten for ${secs}s although its process is alive: stopped? (Ctrl-Z, SIGSTOP) continue it with \`kill -CONT ${l.pid}\`, or end it with \`kill ${l.pid}\`, then try again`
    : `${base}; it has not beaten for ${secs}s (taken over as dead after ${LEASE_STALE_MS / 1000}s)`;
}

export interface HeldLease {
  token: string;
  /** the previous holder when we took over from a dead one */
  previous: Lease | null;
  /**
   * false once someone else took the lease (we were judged dead): stop at once. Reads the
   * database (`via`: the store, or the transaction about to write), not only what the last
   * heartbeat saw: a process that was frozen past the lease's staleness may run again before its
   * heartbeat timer does.
   */
  stillHeld(via?: ReportStore): Promise<boolean>;
  /** What this process knows without asking the database: false once it found the lease lost. */
  readonly held: boolean;
  /** The database said, in a write it refused, that the lease is another's: stop as stillHeld would. */
  lost(): void;
  /**
   * stillHeld judged from the update as just read (its `lease`), without a read of its own: false,
   * and lost, when the row names another holder or none.
   */
  heldPer(u: Pick<UpdateRecord, 'lease'>): boolean;
  release(): Promise<void>;
}

/**
 * Take the update's lease or throw BusyError (exit 4) naming the live holder. While held, a
 * timer (`live.heartbeat`) refreshes the heartbeat; `onLost` fires if another process took it over.
 */
export async function acquireLease(store: EngineStore, update: string, onLost: () => void, live: Liveness, now: () => Date): Promise<HeldLease> {
  const token = randomUUID();
  const result = await store.acquireLease(
    update,
    { token, pid: live.pid, host: live.host, pidStart: live.pidStart },
    (holder) => holderIsDead(holder, now(), live),
  );
  if (!result.ok) {
    throw new BusyError(
      `update ${update} is being executed by ${describeLiveHolder(result.holder, now(), live)}; ` +
        `watch it with \`${suggest(`status ${update} --watch`)}\` or ask it to stop with \`${suggest(`pause ${update}`)}\``,
    );
  }
  let held = true;
  const lose = () => {
    held = false;
    stopBeating();
    onLost();
  };
  // A timer cannot wait for its write: each beat's runs on its own, and its answer is looked at
  // when it comes (a beat answered after release() changes nothing). A busy database for longer
  // than its timeout rejects it: the next beat tries again.
  const stopBeating = live.heartbeat(HEARTBEAT_MS, () => {
    if (!held) return;
    store.heartbeat(update, token).then(
      (ours) => {
        if (!ours && held) lose();
      },
      () => {},
    );
  });
  return {
    token,
    previous: result.previous,
    get held() {
      return held;
    },
    lost() {
      if (held) lose();
    },
    heldPer(u) {
      if (held && u.lease?.token !== token) lose();
      return held;
    },
    async stillHeld(via: ReportStore = store) {
      if (!held) return false;
      let current: string | null;
      try {
        current = await via.leaseToken(update);
      } catch {
        return held; // a busy database: the heartbeat decides
      }
      if (current !== token) lose();
      return held;
    },
    async release() {
      stopBeating();
      if (held) await store.releaseLease(update, token);
      held = false;
    },
  };
}
