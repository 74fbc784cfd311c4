/**
 * `agent.diagnose` (docs/guide/lifecycle.md "Diagnostics"): commands run on a server whose update or verify
 * failed, before its rollback (or before it is left `failed` when rollback is disabled), so the
 * operator sees why it did not come back (the agent's last log lines, its service status)
 * without logging in. Diagnose is informational only:
 *
 * - each command is journalled on its own row in phase `diagnose` (the server in step
 *   `diagnose`), with its own timeout (`agent.diagnose.timeout`): a hung command is killed at
 *   it like any other (ssh/channel.ts), its row says so, and the next one runs;
 * - whatever a command does (fails, times out, prints nothing), the server's outcome is decided
 *   exactly as without diagnose: the rollback runs next;
 * - a lost connection is not waited for (ServerRun.exec does not retry phase `diagnose`, one
 *   connection attempt at most): once the server does not answer, the commands left are not
 *   sent, an event says so, and the rollback (which does wait, ssh.reconnect_for) goes on;
 * - a takeover (recoverServer) that finds the server in step `diagnose` does not diagnose
 *   again: it goes on with the rollback decision, the reason kept in the server's error.
 *
 * Each command is reported as a `diagnose` event (output/reporter.ts shows the last lines in
 * the end-of-run summary; output/ndjson.ts streams it).
 */
import type { RolloutSettings } from '../config/types.js';
import { connectionGone, type ExecResult } from '../ssh/transport.js';
import type { EngineStore } from '../store/port.js';
import type { ServerRecord } from '../model/records.js';
import { expandCommand, type PlaceholderValues } from '../util/shell.js';
import { plural } from '../util/plural.js';
import type { EventSink } from './events.js';
import { phaseValues } from './phases.js';
import { type Hop } from '../model/hops.js';
import type { ServerStep } from '../model/lifecycle.js';

/** Lines of a command's output a `diagnose` event carries: its tail, what the summary shows. */
export const DIAGNOSE_TAIL_LINES = 20;
/** And at most this many characters of them (the end kept): under NDJSON's MAX_FIELD, so never cut there. */
export const DIAGNOSE_TAIL_CHARS = 1800;

/** What diagnose needs of one server's run (rollout/server-run.ts ServerRun has it all). */
export interface DiagnoseRun {
  readonly server: ServerRecord;
  readonly settings: RolloutSettings;
  /** the hop that failed (a server without a path: its one hop, fromCommit → its target) */
  readonly hop: Pick<Hop, 'from' | 'to'>;
  readonly ctx: { readonly deps: { readonly store: EngineStore; readonly emit: EventSink } };
  setStep(step: ServerStep, change?: { error?: string | null }): Promise<void>;
  execTemplate(phase: string, template: string, values: PlaceholderValues, timeoutMs?: number): Promise<ExecResult>;
}

/**
 * Run agent.diagnose on a server that failed (`reason`: why, kept as its error meanwhile, for a
 * takeover), each command journalled. Never decides anything: returns once they have run, or
 * the server stopped answering. Throws only what any command throws (the lease lost, a hard stop).
 */
export async function diagnoseServer(run: DiagnoseRun, reason: string): Promise<void> {
  const d = run.settings.agent.diagnose;
  if (!d || d.commands.length === 0) return;
  const { store, emit } = run.ctx.deps;
  const { updateName: update, name: server } = run.server;
  await run.setStep('diagnose', { error: reason });
  // the values of the hop that failed, as its update commands had them (and plan --show-commands shows them)
  const values = phaseValues(run.settings, 'diagnose', { target: run.hop.to, from: run.hop.from })!;
  for (let i = 0; i < d.commands.length; i++) {
    const template = d.commands[i]!;
    const r = await run.execTemplate('diagnose', template, values, d.timeoutMs);
    const command = shownCommand(template, values);
    emit({ type: 'diagnose', update, server, command, ran: wasSent(r), code: r.code, timedOut: r.timedOut, error: r.error, durationMs: r.durationMs, output: outputTail(r) });
    if (!answers(r)) {
      const left = d.commands.slice(i + 1);
      const why = `the server does not answer (${r.error ?? 'connection lost'})`;
      await store.addEvent(update, server, 'diagnose', `diagnose stopped: ${why}${left.length ? `; ${plural(left.length, 'command')} not run` : ''}`);
      for (const rest of left) {
        emit({ type: 'diagnose', update, server, command: shownCommand(rest, values), ran: false, code: null, timedOut: false, error: `not run: ${why}`, durationMs: 0, output: '' });
      }
      return;
    }
  }
}

/**
 * False when the command could not reach the server: the connection could not be opened, was
 * lost, or stopped answering.
 */
export function answers(r: Pick<ExecResult, 'ended'>): boolean {
  return !connectionGone(r);
}

/** False for a command that never ran: not sent (no connection) or refused before it started (placeholders that cannot be expanded, the fence). */
function wasSent(r: Pick<ExecResult, 'ended'>): boolean {
  return r.ended !== 'not-sent' && r.ended !== 'refused';
}

/** The command as journalled: expanded, or the template when it could not be (then it was not run). */
function shownCommand(template: string, values: PlaceholderValues): string {
  try {
    return expandCommand(template, values);
  } catch {
    return template;
  }
}

/**
 * The last DIAGNOSE_TAIL_LINES lines of stdout then stderr, at most DIAGNOSE_TAIL_CHARS (the end
 * kept, a `…` where it was cut). Remote text as it came: whoever shows it makes it visible.
 */
export function outputTail(r: Pick<ExecResult, 'stdout' | 'stderr'>, lines = DIAGNOSE_TAIL_LINES, chars = DIAGNOSE_TAIL_CHARS): string {
  const all = [r.stdout, r.stderr]
    .map((s) => s.replace(/\s+$/, ''))
    .filter((s) => s !== '')
    .join('\n')
    .split('\n');
  let tail = all.slice(-lines).join('\n');
  if (all.length > lines) tail = `…\n${tail}`;
  if (tail.length > chars) tail = `…${tail.slice(-(chars - 1))}`;
  return tail;
}
