import type { ServerSpec, SshConfig } from '../config/types.js';
import { UsageError } from '../errors.js';

/**
 * How a command's try ended (its result's `error` says it in words, for people):
 * - exit: it exited, with `code`;
 * - timeout: killed on the server at its timeout;
 * - lost: the connection (or the command loop's channel) went away while it ran, or the server
 *   stopped answering (nothing came back within its timeout and a grace: `timedOut` too);
 * - signal: ended on the server without an exit status, not at its timeout: killed by a signal,
 *   by the dead-man timer (no beat came from us: a partition that has since healed), failed for a
 *   process it left holding its output, or its channel closed with no status;
 * - aborted: cut on our side: the caller's AbortSignal, or we closed the session meanwhile;
 * - not-sent: it never reached the server: no connection (it could not be opened, or was gone);
 * - refused: not run, stopped before it started: by us (placeholders that cannot be expanded), by
 *   the fence (ssh/fence.ts), or by the server (no session for it; no `ps` to kill it with).
 */
export type CommandEnded = 'exit' | 'timeout' | 'lost' | 'signal' | 'aborted' | 'not-sent' | 'refused';

/** The result of one remote command. A timeout or lost connection is a result, not a throw. */
export interface ExecResult {
  /** exit status; null when the command did not exit (timeout, lost connection, signal) */
  code: number | null;
  /** the last `outputLimitBytes` of stdout / stderr, as UTF-8 */
  stdout: string;
  stderr: string;
  /** our timer or the server's ran out: `ended` timeout, or lost when the server never answered */
  timedOut: boolean;
  ended: CommandEnded;
  /** why there is no exit code: "timed out after 10s", "connection lost: …", "killed by signal TERM" */
  error: string | null;
  durationMs: number;
}

/** The connection is gone (lost while the command ran, or none to send it on): reconnecting is the way on. */
export function connectionGone(r: Pick<ExecResult, 'ended'>): boolean {
  return r.ended === 'lost' || r.ended === 'not-sent';
}

export interface ExecOptions {
  timeoutMs?: number;
  signal?: AbortSignal;
  /**
   * A fencing token (ssh/fence.ts): the command runs only while the server's agent-update lock
   * holds it and no command of an earlier run is in flight there; else the result is
   * FENCED_EXIT or INFLIGHT_EXIT with why on stdout, and nothing ran.
   */
  fence?: string;
}

/** One open connection to a server, reused for all its steps. */
export interface Session {
  exec(command: string, options?: ExecOptions): Promise<ExecResult>;
  /**
   * Optional: get ready to run commands (start the server's command loop, ssh/channel.ts) without
   * running any, so the first exec does not wait for it. Never fails: exec reports problems.
   */
  warm?(signal?: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * Opens sessions. Connecting throws a TransportError (refused, timed out, auth failed, host key
 * unknown or mismatched): no command has run when it throws.
 */
export interface Transport {
  connect(server: ServerSpec, ssh: SshConfig, signal?: AbortSignal): Promise<Session>;
  /**
   * Check what connecting needs on this side (known_hosts, the identity file and its passphrase,
   * a way to authenticate) before any server is touched; throws the TransportError connect would
   * throw for every server alike.
   */
  preflight?(ssh: SshConfig, servers?: readonly ServerSpec[]): Promise<void>;
  /** close every session this transport opened */
  close(): void;
}

export type TransportErrorKind = 'host-key-unknown' | 'host-key-mismatch' | 'auth' | 'timeout' | 'network' | 'config';

export class TransportError extends Error {
  constructor(
    readonly kind: TransportErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'TransportError';
  }
}

/**
 * `transport.preflight` (for `servers`: every distinct identity file and known_hosts they and
 * their jump hosts use, each checked once), with a failure as bad input (exit 2) naming what was refused: the same
 * problem would fail every server, so none is touched (and none is marked unreachable for it).
 */
export async function checkLocalSsh(transport: Transport, ssh: SshConfig, refused: string, servers?: readonly ServerSpec[]): Promise<void> {
  try {
    await transport.preflight?.(ssh, servers);
  } catch (e) {
    if (e instanceof TransportError) throw new UsageError(`${refused}: ${e.message}; nothing was run on any server`);
    throw e;
  }
}
