/**
 * What one run of the executor shares: its dependencies (the ports), its options and result,
 * the context every server's work gets, and the two checks every action makes first (the lease is
 * still ours, the run was not stopped).
 */
import type { Clock } from '../clock.js';
import type { Liveness } from '../liveness.js';
import { BusyError, InterruptedError } from '../errors.js';
import type { Transport } from '../ssh/transport.js';
import type { EngineStore, ReportStore } from '../store/port.js';
import type { UpdateRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import type { Ahead } from './ahead.js';
import type { EventSink } from './events.js';
import type { HeldLease } from './lease.js';
import type { HookGate } from './hooks.js';
import type { ServerStatus, UpdateStatus } from '../model/lifecycle.js';
import type { Busy } from './rules.js';

export interface EngineDeps {
  store: EngineStore;
  transport: Transport;
  clock: Clock;
  /** this process and the others of this host: the lease, the locks' owners, dead-holder detection */
  liveness: Liveness;
  emit: EventSink;
  /** the hooks' say before any server of a run is touched (rollout/hooks.ts); absent: no hooks */
  hooks?: HookGate;
}

export interface RunOptions {
  /** `start` runs a pending update (or takes over a running one); `resume` a paused one (or takes over). */
  mode: 'start' | 'resume';
  /** pause after this many more servers finished with work (test mode); 0 = no limit */
  stopAfter?: number;
  /** aborting it stops at once: remote commands are abandoned, the server in flight stays recorded */
  signal?: AbortSignal;
  /** who runs it (`user@host`), for the audit trail; default this process's user */
  actor?: string;
  /** outside execution.window, wait for it to open instead of pausing (`--wait-for-window`) */
  waitForWindow?: boolean;
}

export interface RunResult {
  update: string;
  status: UpdateStatus;
  reason: string;
  /** rollout/outcome.ts exitCodeFor: 5 for a pause after a server of this run failed */
  exitCode: number;
  /** the servers that ended failed, rolled-back or fatal in this run, in plan order */
  failedInRun: Array<{ server: string; status: ServerStatus }>;
}

/**
 * What working on one server came to: done (whatever its status), or not touched because another
 * update holds it (rules.ts Busy; `dead`: that update's executor is gone, so waiting cannot help).
 */
export type ServerOutcome = { kind: 'done' } | ({ kind: 'busy' } & Busy);

export const DONE: ServerOutcome = { kind: 'done' };

export interface ServerContext {
  deps: EngineDeps;
  update: UpdateRecord;
  lease: HeldLease;
  signal: AbortSignal;
  /** connections and prepares made ahead of their servers' turns (ahead.ts) */
  ahead?: Ahead;
}

/**
 * Throws when the lease is no longer ours or the run was stopped hard. `via`: the store, or the
 * transaction a write is about to be made in.
 */
export async function checkStillOurs(ctx: ServerContext, opts?: RunOptions, via: ReportStore = ctx.deps.store): Promise<void> {
  await ctx.lease.stillHeld(via); // marks the lease lost when the database says so
  checkNotStopped(ctx, opts);
}

/** Why this executor stops when another process has taken its update's lease (exit 4). */
export function lostLease(ctx: Pick<ServerContext, 'update'>): BusyError {
  return new BusyError(`lost the lease on update ${ctx.update.name}: another process took it over; stopping without touching anything more`);
}

/**
 * checkStillOurs without asking the database: a lease this process already found lost, a hard
 * stop. Before a remote command, whose journal row (beginCommandIfLeased) asks the database in
 * the statement that writes it.
 */
export function checkNotStopped(ctx: ServerContext, opts?: RunOptions): void {
  if (!ctx.lease.held) throw lostLease(ctx);
  if ((opts?.signal ?? ctx.signal).aborted) {
    throw new InterruptedError(`interrupted: update ${ctx.update.name} stays running; \`${suggest(`start ${ctx.update.name}`)}\` takes it over`);
  }
}

/**
 * A state write made only while the lease is ours, checked in the transaction that writes: the
 * write, then the check, both before the commit, so a lease found lost undoes the write (the
 * PostgreSQL store sends the write with the transaction's start and the lease read in it: a round
 * trip less). A write that fails while the lease is lost is reported as the lost lease.
 */
export function guarded<T>(ctx: ServerContext, write: (t: EngineStore) => Promise<T>, opts?: RunOptions): Promise<T> {
  // a hard stop asked before the write: nothing is written (one asked during it: the write stands)
  checkNotStopped(ctx, opts);
  const leaseStillOurs = async (t: EngineStore) => {
    await ctx.lease.stillHeld(t); // marks the lease lost when the database says so
    if (!ctx.lease.held) throw lostLease(ctx);
  };
  return ctx.deps.store.tx(
    async (t) => {
      let out: T;
      try {
        out = await write(t);
      } catch (e) {
        await leaseStillOurs(t);
        throw e;
      }
      await leaseStillOurs(t);
      return out;
    },
    // every write made here is one port call, one write (the PostgreSQL store commits it with its check)
    { leaseOf: ctx.update.name, loneWriteLeased: ctx.lease.token },
  );
}
