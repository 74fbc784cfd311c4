import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Processes as the engine sees them, beside the Clock: who this executor is (its pid, its host,
 * its process's start time), whether a process of this host is still alive, and the timer that
 * beats while it works. The engine, `unlock` and `auto` take it as an argument; tests pass a fake
 * (a holder judged gone, a heartbeat fired by hand) instead of forging lease rows.
 */
export interface Liveness {
  readonly pid: number;
  readonly host: string;
  /** this process's start time (processStartTime), so a reused pid is never taken for it; null where unknown */
  readonly pidStart: string | null;
  /** Whether process `pid` of this host lives, and, when `startTime` is known, is the one that started then. */
  isAlive(pid: number, startTime: string | null): boolean;
  /** Call `beat` every `ms` until the returned function is called; the timer never keeps the process alive. */
  heartbeat(ms: number, beat: () => void): () => void;
}

/**
 * The start time of a process in clock ticks since boot (Linux /proc), so a pid reused by an
 * unrelated process after a crash is not mistaken for the executor. null where /proc is absent.
 */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22; the command name (field 2) may contain spaces and parentheses, so count from the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether `pid` exists (ours to signal or not) and, when `startTime` is given, started then. */
export function processAlive(pid: number, startTime: string | null): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  if (startTime === null) return true;
  const now = processStartTime(pid);
  return now === null || now === startTime;
}

let ownStart: string | null | undefined;

/** This process, this host's processes, and a real interval timer. */
export const systemLiveness: Liveness = {
  pid: process.pid,
  get host() {
    return hostname();
  },
  // read when first asked: commands that never take a lease do not read /proc
  get pidStart() {
    if (ownStart === undefined) ownStart = processStartTime(process.pid);
    return ownStart;
  },
  isAlive: processAlive,
  heartbeat(ms, beat) {
    const timer = setInterval(beat, ms);
    timer.unref();
    return () => clearInterval(timer);
  },
};
