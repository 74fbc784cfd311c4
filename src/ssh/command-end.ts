/**
 * How a command sent over a Ssh2Session ended (CommandEnd), and what its ExecResult says for
 * each: the exit code or the error text a person reads. The loop (channel.ts) and the per-exec
 * supervisor (remote-run.ts) report the same ends; session.ts sees them and makes the result here.
 */
import type { SshConfig } from '../config/types.js';
import { defaultDeadManMs } from '../config/dead-man.js';
import { formatDuration } from '../util/duration.js';
import type { DeadMan } from './channel.js';
import { heldOutputError, NOPROCS_ERROR, NOPROCS_STATUS, wholeSeconds, type RunReport } from './remote-run.js';
import type { CommandEnded, ExecResult } from './transport.js';

export type CommandEnd =
  /** it exited with `code` */
  | { how: 'exit'; code: number }
  /** killed on the server at its timeout (the loop's timer or the supervisor's) */
  | { how: 'timeout' }
  /** the server did not report its end in time after its timeout: we closed its channel */
  | { how: 'no-answer' }
  /** killed on the server: no beat came from us for the dead-man timeout */
  | { how: 'deadman' }
  /** it ended, but left a process holding its output (`PID NAME`, or '') */
  | { how: 'held'; holder: string }
  /** killed by `signal` (TERM, KILL, …) */
  | { how: 'signal'; signal: string }
  /** its channel closed without an exit status, the connection up */
  | { how: 'no-status' }
  /** the connection (or the loop's channel) went away while it ran */
  | { how: 'lost'; reason: string }
  /** we closed the session while it ran */
  | { how: 'closed' }
  /** the caller's AbortSignal */
  | { how: 'aborted' }
  /** never sent: the connection was already gone */
  | { how: 'not-connected'; why: string }
  /** the server would not open a session for it */
  | { how: 'not-started'; why: string }
  /** this server cannot list its processes (PROCS_WORK_SH): refused before anything of it ran */
  | { how: 'noprocs' };

/** The code, error, ended and timedOut of a command's result, from how it ended. */
export function describeEnd(end: CommandEnd, timeoutMs: number, sshCfg: SshConfig): Pick<ExecResult, 'code' | 'error' | 'ended' | 'timedOut'> {
  const failed = (ended: CommandEnded, error: string, timedOut = false) => ({ code: null, error, ended, timedOut });
  switch (end.how) {
    case 'exit':
      return { code: end.code, error: null, ended: 'exit', timedOut: false };
    case 'timeout':
      return failed('timeout', `timed out after ${formatDuration(timeoutMs)}; killed on the server, with everything it started`, true);
    case 'no-answer':
      return failed('lost', `timed out after ${formatDuration(timeoutMs)} with no answer from the server; the channel was closed, which kills the command there`, true);
    case 'deadman':
      return failed(
        'signal',
        `killed on the server, with everything it started: no word from this executor for ${formatDuration(deadManOf(sshCfg).seconds * 1000)} ` +
          '(ssh.dead_man_timeout; a network partition, or this process was frozen)',
      );
    case 'held':
      return failed('signal', heldOutputError(end.holder));
    case 'signal':
      return failed('signal', `killed by signal ${end.signal}`);
    case 'no-status':
      return failed('signal', 'the channel closed without an exit status');
    case 'lost':
      return failed('lost', `connection lost: ${end.reason}`);
    case 'closed':
      return failed('aborted', 'session closed');
    case 'aborted':
      return failed('aborted', 'aborted');
    case 'not-connected':
      return failed('not-sent', `not connected: ${end.why}`);
    case 'not-started':
      return failed('refused', `could not start the command: ${end.why}`);
    case 'noprocs':
      return failed('refused', NOPROCS_ERROR);
  }
}

/**
 * The end of a command run under the per-exec supervisor, with what the supervisor said on its
 * stderr (remote-run.ts splitRunOutput): it killed the command at its timeout or for the dead
 * man, refused it (no `ps`), or found its output held.
 */
export function supervisedEnd(end: CommandEnd, run: RunReport): CommandEnd {
  if (run.timedOut && end.how !== 'no-answer') return { how: 'timeout' };
  if (end.how !== 'exit') return end;
  if (run.deadMan) return { how: 'deadman' };
  if (run.noProcs && end.code === NOPROCS_STATUS) return { how: 'noprocs' };
  if (run.held !== null) return { how: 'held', holder: run.held };
  return end;
}

/**
 * The dead-man timer of a command (`ssh.dead_man_timeout`, in whole seconds on the server: 0 =
 * off) and how often we send a beat meanwhile: a quarter of it, at most 5 s, at least 250 ms.
 * Absent (a plan from before it existed): 3 × keepalive_interval, as config/dead-man.ts defaults it.
 */
export function deadManOf(sshCfg: SshConfig): DeadMan {
  const ms = sshCfg.deadManTimeoutMs ?? defaultDeadManMs(sshCfg.keepaliveIntervalMs);
  const seconds = wholeSeconds(ms);
  return { seconds, everyMs: Math.max(250, Math.min(5000, Math.floor((seconds * 1000) / 4))) };
}
