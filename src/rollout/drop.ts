import { globMatcher, patternProblem } from '../config/select.js';
import { TransitionError, UsageError } from '../errors.js';
import type { EngineStore } from '../store/port.js';
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { actor } from '../util/actor.js';
import { didYouMean } from '../util/did-you-mean.js';
import { allows, itIs, whatYouCanDo } from '../model/lifecycle.js';

/**
 * `drop NAME SERVER...`: take servers out of an update before they are worked on, as Frappe
 * Press lets an operator take rows out of a plan. A dropped server becomes `excluded` (terminal:
 * start and resume never touch it, and it counts neither for nor against the update), with who
 * dropped it and why as its error, so `status` and `logs` say so.
 */

/** Characters that make an argument a glob (select.ts: picomatch) rather than a server name. */
const GLOB = /[*?[\]{}()!]/;

export interface Dropped {
  /** the server's name */
  name: string;
  /** the update it is in: NAME, or a batch of NAME's split (`NAME.2`) */
  update: string;
  /** our lock may still be on it (agent.prepare took it and its release was not recorded) */
  lockHeld: boolean;
}

export interface DropResult {
  update: string;
  dropped: Dropped[];
  /** servers a glob matched that are not pending, so were left as they are */
  notPending: Array<{ name: string; update: string; status: string }>;
  /** what each dropped server's error says: `dropped by user@host` and the reason given */
  error: string;
  by: string;
}

/**
 * The updates of `name`'s split (the one it was split from, itself and every batch), oldest
 * first: a server named may have been moved to a batch by `split`.
 */
async function splitGroup(store: EngineStore, u: UpdateRecord): Promise<UpdateRecord[]> {
  let root = u;
  for (let hops = 0; root.batchOf !== null && hops < 100; hops++) {
    const up = await store.findUpdate(root.batchOf);
    if (!up) break;
    root = up;
  }
  const out = [root];
  for (let i = 0; i < out.length && out.length < 10_000; i++) out.push(...(await store.batchesOf(out[i]!.name)));
  return out;
}

/**
 * Drop `args` (server names, or glob patterns on them) from update `name`, all or nothing, in
 * one transaction: every problem is found before anything is written, and the whole command is
 * refused (exit 2) when there is one. The update must be `pending` or `paused` (not `planning`:
 * its probes are still writing); a server named must be `pending` in it or in a batch of its
 * split (then that batch must be pending or paused too). A glob drops the pending servers it
 * matches and reports the others; one that matches no pending server is refused.
 */
export async function dropServers(store: EngineStore, name: string, args: readonly string[], opts: { reason?: string; by?: string; now: Date }): Promise<DropResult> {
  if (args.length === 0) throw new UsageError('drop needs at least one server name');
  const reason = opts.reason?.trim();
  if (opts.reason !== undefined && !reason) throw new UsageError('--reason must not be empty');
  // eslint-disable-next-line no-control-regex -- a reason is shown in status tables: one line, no terminal controls
  if (reason !== undefined && /[\x00-\x1f\x7f]/.test(reason)) throw new UsageError('--reason must be one line of text, without control characters');
  const by = opts.by ?? actor();
  const error = `dropped by ${by}${reason ? `: ${reason}` : ''}`;
  return store.tx(async (t) => {
    const u = await t.getUpdate(name);
    if (!allows(u.status, 'drop')) {
      throw new TransitionError(`cannot drop servers of update ${name}: ${itIs(u.status)}, and only a pending or paused update's servers can be dropped. ${whatYouCanDo(name, u.status)}`);
    }
    const group = await splitGroup(t, u);
    const updates = new Map(group.map((g) => [g.name, g]));
    // NAME's own servers first, then those of the other updates of its split, in order.
    const candidates: ServerRecord[] = [];
    for (const g of [u, ...group.filter((g) => g.name !== name)]) candidates.push(...(await t.getServers(g.name)));
    const problems: string[] = [];
    const chosen = new Map<number, ServerRecord>();
    const notPending: DropResult['notPending'] = [];
    const where = (s: ServerRecord) => (s.updateName === name ? `update ${name}` : `batch ${s.updateName} of ${name}'s split`);
    /** Why `s` cannot be dropped, or null. */
    const refusal = (s: ServerRecord): string | null => {
      const its = updates.get(s.updateName)!;
      if (s.updateName !== name && !allows(its.status, 'drop')) {
        return `server ${s.name} is in batch ${s.updateName} of ${name}'s split, which ${itIs(its.status).replace(/^it /, '')}: only a pending or paused update's servers can be dropped`;
      }
      if (s.status === 'excluded') return `server ${s.name} of ${where(s)} is already excluded (${s.error ?? 'no reason recorded'})`;
      if (s.status !== 'pending') return `server ${s.name} of ${where(s)} is ${s.status}${s.step ? ` (${s.step})` : ''}: only a pending server can be dropped`;
      return null;
    };
    for (const arg of args) {
      if (arg.trim() === '') {
        problems.push('a server name must not be empty');
        continue;
      }
      const exact = candidates.find((s) => s.name === arg);
      if (exact) {
        const no = refusal(exact);
        if (no) problems.push(no);
        else chosen.set(exact.id, exact);
        continue;
      }
      if (GLOB.test(arg)) {
        const bad = patternProblem(arg);
        if (bad) {
          problems.push(`server pattern ${bad}`);
          continue;
        }
        const match = globMatcher(arg);
        const matched = candidates.filter((s) => match(s.name));
        const pending = matched.filter((s) => refusal(s) === null);
        if (pending.length === 0) {
          problems.push(
            matched.length === 0
              ? `no server of update ${name} matches ${JSON.stringify(arg)}`
              : `${JSON.stringify(arg)} matches no pending server of update ${name} (it matches ${matched.map((s) => `${s.name} ${s.status}`).join(', ')})`,
          );
          continue;
        }
        for (const s of pending) chosen.set(s.id, s);
        for (const s of matched) if (!pending.includes(s) && !notPending.some((n) => n.name === s.name)) notPending.push({ name: s.name, update: s.updateName, status: s.status });
        continue;
      }
      problems.push(`update ${name} has no server named ${JSON.stringify(arg)}${didYouMean(arg, candidates.map((s) => s.name))}`);
    }
    if (problems.length > 0) {
      throw new UsageError(problems.length === 1 ? `${problems[0]}; nothing was dropped` : `nothing was dropped:\n${problems.map((p) => `  ${p}`).join('\n')}`);
    }
    const at = opts.now.toISOString();
    const dropped: Dropped[] = [];
    // In the update's order, whatever the order of the arguments.
    for (const s of candidates.filter((c) => chosen.has(c.id))) {
      await t.dropServer(s.id, error, at, by);
      dropped.push({ name: s.name, update: s.updateName, lockHeld: s.lockHeld });
    }
    for (const g of group) {
      const these = dropped.filter((d) => d.update === g.name).map((d) => d.name);
      if (these.length > 0) await t.addEvent(g.name, null, 'drop', `dropped ${these.join(', ')} (${error})`, by);
    }
    return { update: name, dropped, notPending: notPending.filter((n) => !dropped.some((d) => d.name === n.name)), error, by };
  });
}
