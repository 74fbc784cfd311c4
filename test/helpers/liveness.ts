/**
 * Liveness (src/liveness.ts) for tests: this process as it really is, with any part replaced (a
 * holder judged gone, another host's name, a pid no process has).
 */
import { systemLiveness, type Liveness } from '../../src/liveness.js';

/** This process and its host as they are, but for `over`. */
export function liveness(over: Partial<Liveness> = {}): Liveness {
  return {
    pid: systemLiveness.pid,
    host: systemLiveness.host,
    pidStart: systemLiveness.pidStart,
    isAlive: (pid, start) => systemLiveness.isAlive(pid, start),
    heartbeat: (ms, beat) => systemLiveness.heartbeat(ms, beat),
    ...over,
  };
}

/** A pid no process has (above Linux's pid_max): what a lease of a process killed with -9 names. */
export const GONE_PID = 2_147_483_646;
