/** `ssh.dead_man_timeout` (check-ssh.ts), its default and minimum, shared with the transport that applies it. */

/**
 * ssh.dead_man_timeout's default: 3 × keepalive_interval, when ssh2 (keepaliveCountMax 3) gives
 * the connection up, so the server gives up on a silent executor about when we give up on it;
 * 60 s without keepalives; never under the 2 s minimum.
 */
export function defaultDeadManMs(keepaliveIntervalMs: number): number {
  return keepaliveIntervalMs > 0 ? Math.max(DEAD_MAN_MIN_MS, 3 * keepaliveIntervalMs) : 60_000;
}

/** The shortest dead-man timeout: beats every half second at most, and whole seconds on the server. */
export const DEAD_MAN_MIN_MS = 2_000;
