/**
 * One health check of a server that passed its verify (the guard's, a bake's): agent.health's
 * command and expect, with the values of its verify, over a connection of its own (the
 * rollout's is not slowed), read-only. A failed check is tried once more after the health
 * interval before it counts: one lost request does not pause a rollout. A server that cannot
 * be connected to is not judged (reported, tried at the next round): the health command is what
 * says an agent is unhealthy, not a network blip to the machine.
 */
import type { ServerRecord, UpdateRecord } from '../model/records.js';
import { specOf } from '../model/records.js';
import { finalTarget } from '../model/hops.js';
import { healthCheckOf, phaseValues } from './phases.js';
import { describeFailure } from './read-commit.js';
import type { EngineDeps } from './engine.js';
import type { Session } from '../ssh/transport.js';

export type PassedCheck = { kind: 'healthy' } | { kind: 'unhealthy'; output: string } | { kind: 'unreached'; error: string };

/** How many servers the guard re-checks at once (here, not in guard.ts: `plan --show-commands` says it without loading the engine). */
export const GUARD_CONCURRENCY = 4;

/** Longest a single re-check may take (within ssh.command_timeout). */
const CHECK_TIMEOUT_MS = 60_000;

/**
 * Checks of servers that passed, each over a session of its own kept for the checker's life (a
 * bake re-checks the same servers every health interval: one handshake each, not one per check);
 * `close()` ends them. A session that broke is opened again at the next check.
 */
export class PassedChecker {
  private readonly sessions = new Map<number, Session>();

  constructor(
    private readonly deps: Pick<EngineDeps, 'transport' | 'clock'>,
    private readonly signal: AbortSignal,
  ) {}

  async check(update: UpdateRecord, server: ServerRecord): Promise<PassedCheck> {
    const settings = update.settings;
    const { health } = settings.agent;
    const values = phaseValues(settings, 'verify', { target: finalTarget(server, update.commit), from: server.fromCommit })!;
    let command: string;
    let expect: string;
    try {
      ({ command, expect } = healthCheckOf(settings, values));
    } catch (e) {
      return { kind: 'unhealthy', output: `health command not run: ${(e as Error).message}` };
    }
    const timeoutMs = Math.min(settings.ssh.commandTimeoutMs, CHECK_TIMEOUT_MS);
    for (let attempt = 1; ; attempt++) {
      let session = this.sessions.get(server.id);
      if (!session) {
        try {
          session = await this.deps.transport.connect(specOf(server), settings.ssh, this.signal);
        } catch (e) {
          return { kind: 'unreached', error: (e as Error).message };
        }
        this.sessions.set(server.id, session);
      }
      const r = await session.exec(command, { timeoutMs, signal: this.signal });
      if (r.code === 0 && r.stdout.includes(expect)) return { kind: 'healthy' };
      if (r.code === null && r.ended !== 'timeout') {
        session.close();
        this.sessions.delete(server.id);
        return { kind: 'unreached', error: describeFailure(r) };
      }
      const output = r.code === 0 ? `output does not contain ${JSON.stringify(expect)}: ${r.stdout.trim().slice(0, 300)}` : describeFailure(r);
      if (attempt >= 2 || this.signal.aborted) return { kind: 'unhealthy', output };
      await this.deps.clock.sleep(health.intervalMs, this.signal);
    }
  }

  /** Forget (and close) the session of a server no longer checked. */
  drop(serverId: number): void {
    this.sessions.get(serverId)?.close();
    this.sessions.delete(serverId);
  }

  close(): void {
    for (const s of this.sessions.values()) s.close();
    this.sessions.clear();
  }
}
