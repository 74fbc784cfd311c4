/**
 * `agent-update unlock SERVER... --yes`: clear a lock left on a server by an executor that died
 * (see remote-lock.ts), after checking that nobody this tool can see is still working on it.
 * Each clearing is journalled on the server's row (a step and an event).
 */
import { userInfo } from 'node:os';
import { UsageError } from '../errors.js';
import type { Liveness } from '../liveness.js';
import type { Transport } from '../ssh/transport.js';
import type { EngineStore, ReportStore } from '../store/port.js';
import { specOf, type ServerRecord } from '../model/records.js';
import { suggest } from '../util/suggest.js';
import { describeHolder, holderIsDead } from './lease.js';
import { clearScript, describeOwner, inflightIn, parseOwner, readScript, splitLockOutput, waitScript } from './remote-lock.js';

export interface UnlockResult {
  server: string;
  account: string;
  /** none: there was no lock; shown: found, not cleared (no --yes); cleared; refused: someone is working on it; failed: could not look */
  outcome: 'none' | 'shown' | 'cleared' | 'refused' | 'failed';
  /** the lock's content as found, when there was one */
  lock: string | null;
  message: string;
}

function accountOf(s: ServerRecord): string {
  return `${s.user}@${s.host}:${s.port}`;
}

/** The server each name means (its newest record, or the one in `update`); a UsageError before anything runs when one is unknown. */
export async function resolveServers(store: ReportStore, names: string[], update?: string): Promise<ServerRecord[]> {
  if (update !== undefined) await store.getUpdate(update);
  const out: ServerRecord[] = [];
  for (const name of names) {
    const found = (await store.findServers(name)).filter((s) => update === undefined || s.updateName === update);
    if (found.length === 0) {
      throw new UsageError(
        `no server named ${JSON.stringify(name)} in ${update !== undefined ? `update ${update}` : `any update of ${store.location}`}; ` +
          'name it as in the plan, or as user@host:port',
      );
    }
    out.push(found[0]!);
  }
  return out;
}

/**
 * How long unlock waits for a command in flight on the server to end before it refuses: after a
 * kill -9 the server's sshd and the command loop must notice the connection is gone, then kill
 * what it ran (a second more); on a loaded machine that took more than 5 s once in CI.
 */
const UNLOCK_WAIT_S = 15;

/** Why clearing this lock now would be wrong, or null when nothing this tool can see is using it. */
async function stillInUse(store: ReportStore, s: ServerRecord, lock: string, now: Date, live: Liveness): Promise<string | null> {
  // Anything of this database in flight on the account, whoever's lock it is.
  for (const r of await store.findServers(accountOf(s))) {
    if (r.status !== 'running') continue;
    const u = await store.getUpdate(r.updateName);
    if (u.lease && !holderIsDead(u.lease, now, live)) {
      return `update ${u.name} is working on it now (${describeHolder(u.lease)}); wait for it, or \`${suggest(`pause ${u.name}`)}\``;
    }
    return (
      `update ${u.name} left it in flight (step ${r.step ?? '?'}) when its executor died: \`${suggest(`start ${u.name}`)}\` takes it over ` +
      `(and releases the lock), or \`${suggest(`cancel ${u.name}`)}\` ends it`
    );
  }
  const owner = parseOwner(lock);
  if (owner.host === live.host && owner.pid !== undefined && owner.pid !== live.pid && live.isAlive(owner.pid, owner.pidStart ?? null)) {
    return `the process that took it, pid ${owner.pid} on this host, is still running`;
  }
  return null;
}

export async function unlockServers(
  deps: { store: EngineStore; transport: Transport; now: () => Date; liveness: Liveness },
  servers: ServerRecord[],
  opts: { yes: boolean },
): Promise<UnlockResult[]> {
  const { store, transport } = deps;
  const out: UnlockResult[] = [];
  const me = `${userInfo().username}@${deps.liveness.host} (pid ${deps.liveness.pid})`;
  for (const s of servers) {
    const account = accountOf(s);
    const base = { server: s.name, account };
    const settings = (await store.getUpdate(s.updateName)).settings;
    const spec = specOf(s);
    let session;
    try {
      session = await transport.connect(spec, settings.ssh);
    } catch (e) {
      out.push({ ...base, outcome: 'failed', lock: null, message: `cannot connect to look at its lock: ${(e as Error).message}` });
      continue;
    }
    try {
      // Reading changes nothing: journalled only when the lock is then cleared.
      const read = await session.exec(readScript({ inflight: true }), { timeoutMs: settings.ssh.connectTimeoutMs + 30_000 });
      const { verdict } = splitLockOutput(read.stdout);
      if (verdict?.kind === 'none') {
        out.push({ ...base, outcome: 'none', lock: null, message: 'there is no agent-update lock on it' });
        continue;
      }
      if (verdict?.kind !== 'present') {
        out.push({ ...base, outcome: 'failed', lock: null, message: `could not read its lock: ${read.error ?? (read.stderr.trim() || `exit ${read.code}`)}` });
        continue;
      }
      const lock = verdict.owner;
      const who = describeOwner(parseOwner(lock));
      let busy = await stillInUse(store, s, lock, deps.now(), deps.liveness);
      const running = inflightIn(read.stdout);
      if (busy === null && running.length > 0) {
        // a command of an executor that just died is still being killed (its supervisor takes a
        // second or so after the connection ends): give it a few seconds, never kill it from here
        const waited = await session.exec(waitScript(running, UNLOCK_WAIT_S, { kill: false }), { timeoutMs: settings.ssh.connectTimeoutMs + 30_000 });
        if (splitLockOutput(waited.stdout).verdict?.kind !== 'ended') {
          busy = `a command sent under a lock is running on it now (pid ${running.map((f) => f.pid).join(', ')}); wait for it to end`;
        }
      }
      if (busy) {
        out.push({ ...base, outcome: 'refused', lock, message: `locked by ${who}, and not stale: ${busy}` });
        continue;
      }
      if (!opts.yes) {
        out.push({ ...base, outcome: 'shown', lock, message: `locked by ${who}; nothing this database knows of is working on it` });
        continue;
      }
      const step = await store.beginCommand(s, 'unlock', `(clear the agent-update lock of ${who})`);
      const cleared = await session.exec(clearScript(lock), { timeoutMs: settings.ssh.connectTimeoutMs + 30_000 });
      await store.endCommand(step, cleared);
      const result = splitLockOutput(cleared.stdout).verdict;
      if (result?.kind === 'cleared' || result?.kind === 'none') {
        await store.addEvent(s.updateName, s.name, 'unlock', `${me} cleared the lock of ${who} on ${account}`);
        if (s.lockHeld) await store.setLockHeld(s.id, false);
        out.push({ ...base, outcome: 'cleared', lock, message: `cleared the lock of ${who}` });
      } else if (result?.kind === 'changed') {
        out.push({ ...base, outcome: 'refused', lock, message: 'the lock changed while it was being checked (someone took it again); look again' });
      } else {
        out.push({ ...base, outcome: 'failed', lock, message: `could not clear it: ${cleared.error ?? (cleared.stderr.trim() || `exit ${cleared.code}`)}` });
      }
    } finally {
      session.close();
    }
  }
  return out;
}
