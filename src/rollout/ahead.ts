/**
 * Working ahead of a server's turn (issue 13, items 3 and 4), so that on each server only the
 * disruptive part (update, restart, verify) is on the critical path:
 *
 * - the next server's connection (handshake, authentication, host-key check) is opened while
 *   the current one is worked on, and handed to that server's run when its turn comes;
 * - `agent.prepare` (commands that change nothing that runs, a `git fetch`) runs on the next
 *   `execution.prepare_ahead` servers, under our lock on each, while the current one updates.
 *
 * "Next" is what decide() would pick once the current server ends well (`upcoming`). A guess
 * that turns out wrong costs an idle connection, closed when the update pauses or ends. Nothing
 * here judges a server: a connection that fails ahead is forgotten (its turn connects as
 * always, with its retries), a prepare that fails is journalled and the server updated normally.
 * The engine (run.ts) supplies how to connect and how to prepare; this file only keeps track.
 */
import type { Session } from '../ssh/transport.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { decide, type BudgetUse } from './decide.js';

/** `execution.prepare_ahead` when an update was planned before it existed. */
export const DEFAULT_PREPARE_AHEAD = 1;

/** On how many of the next servers agent.prepare runs (0 when there is nothing to prepare). */
export function prepareAheadOf(update: Pick<UpdateRecord, 'settings'>): number {
  const { agent, execution } = update.settings;
  if (!agent.prepare?.length) return 0;
  return execution?.prepareAhead ?? DEFAULT_PREPARE_AHEAD;
}

/**
 * The servers decide() would run after `current`, in order, supposing each ends well: at most
 * `count`, stopping at a pause, the end, or a server `busy` says another update is working on
 * (the engine would wait for that one, so nothing is guessed past it). Pure.
 */
export function upcoming(
  update: UpdateRecord,
  servers: readonly ServerRecord[],
  current: ServerRecord,
  count: number,
  budget?: BudgetUse,
  busy: (s: ServerRecord) => boolean = () => false,
): ServerRecord[] {
  const out: ServerRecord[] = [];
  let assumed = servers.map((s) => (s.id === current.id ? { ...s, status: 'success' as const, step: null } : s));
  while (out.length < count) {
    const d = decide(update, assumed, budget);
    if (d.kind !== 'run' || busy(d.server)) break;
    out.push(d.server);
    const id = d.server.id;
    assumed = assumed.map((s) => (s.id === id ? { ...s, status: 'success' as const } : s));
  }
  return out;
}

export interface AheadOps {
  /** open a connection to `server` (throws when it cannot: that is not held against the server) */
  connect(server: ServerRecord): Promise<Session>;
  /** run agent.prepare on `server` over `session`; resolves to the session to hand over, or null when it was lost */
  prepare(server: ServerRecord, session: Session): Promise<Session | null>;
}

interface Entry {
  server: ServerRecord;
  /** settles once the connection (and the prepare, if any) is done: the session to hand over, or null */
  ready: Promise<Session | null>;
}

/** The connections opened and the prepares run ahead of their servers' turns, for one run of one update. */
export class Ahead {
  private readonly entries = new Map<number, Entry>();
  /** entries guessed wrong: closed once their prepare is done; a turn of that server waits for it */
  private readonly draining = new Map<number, Promise<void>>();
  /** the servers agent.prepare was started on in this run (each at most once) */
  private readonly prepared = new Set<number>();

  constructor(private readonly ops: AheadOps) {}

  /**
   * Server `current` has begun: be ahead on `next` (upcoming()), opening a connection to each
   * not yet connected, and running agent.prepare on the first `prepareCount` of them. Entries for
   * servers no longer in `next` are closed (once their prepare, if any, is done), except the
   * current server's own, which its run is about to take.
   */
  plan(current: number, next: readonly ServerRecord[], prepareCount: number): void {
    for (const [id, e] of this.entries) {
      if (id === current || next.some((s) => s.id === id)) continue;
      this.entries.delete(id);
      this.draining.set(id, e.ready.then((s) => s?.close(), () => undefined));
    }
    next.forEach((server, i) => {
      if (this.entries.has(server.id)) return;
      const prepare = i < prepareCount && !this.prepared.has(server.id);
      if (prepare) this.prepared.add(server.id);
      const drained = this.draining.get(server.id);
      const ready = (async (): Promise<Session | null> => {
        if (drained) await drained;
        let session: Session;
        try {
          session = await this.ops.connect(server);
        } catch {
          return null;
        }
        return prepare ? this.ops.prepare(server, session) : session;
      })();
      this.entries.set(server.id, { server, ready: ready.catch(() => null) });
    });
  }

  /**
   * The session opened ahead for server `id` once what runs ahead on it is done, or null (none,
   * or it failed): the caller connects as usual. Nothing of ours runs on it after this resolves.
   */
  async take(id: number): Promise<Session | null> {
    const e = this.entries.get(id);
    this.entries.delete(id);
    await this.draining.get(id);
    this.draining.delete(id);
    return e ? e.ready : null;
  }

  /** Whether agent.prepare was started on server `id` in this run (it may hold our lock). */
  preparedOn(id: number): boolean {
    return this.prepared.has(id);
  }

  /** Wait for whatever runs ahead, then close every connection not handed over. */
  async close(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    const sessions = await Promise.all(all.map((e) => e.ready));
    for (const s of sessions) s?.close();
    await Promise.all(this.draining.values());
    this.draining.clear();
  }
}
