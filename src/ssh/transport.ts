import type { ServerSpec, SshConfig } from '../config/types.js';
import { UsageError } from '../errors.js';

/** The result of one remote command. A timeout or lost connection is a result, not a throw. */
export interface ExecResult {
  /** exit status; null when the command did not exit (timeout, lost connection, signal) */
  code: number | null;
  /** the last `outputLimitBytes` of stdout / stderr, as UTF-8 */
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** why there is no exit code: "timed out after 10s", "connection lost: …", "killed by signal TERM" */
  error: string | null;
  durationMs: number;
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
