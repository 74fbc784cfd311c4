/**
 * Every error a user can cause maps to an exit code here, in one place (SPEC.md "Exit codes").
 * Anything that is not an AppError is a bug: main prints its stack and exits 70.
 */
export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  paused: 3,
  busy: 4,
  /**
   * paused, and a server of the run that paused it failed or was rolled back (a canary that
   * failed under rollback.continue_after_rollback or a failure budget; a guard's or bake's trip):
   * not the clean pause of 3, which a CI step may resume
   */
  pausedAfterFailure: 5,
  interrupted: 130,
  bug: 70,
  /** `plan` (and `plan --refresh`): no server of the update could be reached; the plan is recorded (sysexits EX_UNAVAILABLE) */
  unreachable: 69,
} as const;

export class AppError extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad flags, arguments or names: exit 2, nothing changed. */
export class UsageError extends AppError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** One problem in a config file, with where it is. */
export interface ConfigProblem {
  /** dotted key path, e.g. `agent.health.timeout` or `servers[2].host` */
  path: string;
  message: string;
  line?: number;
  /** the file the problem is in, when it is not the config file itself (an inventory) */
  file?: string;
  /**
   * a check that matters only when connecting: a file this machine needs to reach the servers (a
   * key, known_hosts, the ssh config) is missing. `plan`, `start` and `auto` refuse it as any
   * other problem; `config` (a read-only view) and `freeze` show it as a warning.
   */
  local?: true;
}

/** `FILE:LINE: key.path: message`, as every config problem is printed (`file`: the config's). */
export function formatProblem(p: ConfigProblem, file: string): string {
  return `${p.file ?? file}${p.line !== undefined ? `:${p.line}` : ''}: ${p.path ? `${p.path}: ` : ''}${p.message}`;
}

/** The config file is invalid: every problem is listed, exit 2. */
export class ConfigError extends AppError {
  constructor(
    readonly file: string,
    readonly problems: ConfigProblem[],
  ) {
    super(problems.map((p) => formatProblem(p, file)).join('\n'), EXIT.usage);
  }
}

/** A status change the state table does not allow (resume a finished update, …): exit 2. */
export class TransitionError extends AppError {
  constructor(message: string) {
    super(message, EXIT.usage);
  }
}

/** Another live process holds the update's lease: exit 4. */
export class BusyError extends AppError {
  constructor(message: string) {
    super(message, EXIT.busy);
  }
}

/**
 * A deploy freeze of the update's repo (`freeze`, model/freeze.ts): `start`, `resume` and `auto`
 * refuse with exit 3 (as for a paused update: nothing runs until a person acts), nothing written.
 */
export class FrozenError extends AppError {
  constructor(message: string) {
    super(message, EXIT.paused);
  }
}

/** Stopped without finishing: a hard interrupt (second Ctrl-C), or the lease was taken over. */
export class InterruptedError extends AppError {
  constructor(message: string, exitCode: number = EXIT.interrupted) {
    super(message, exitCode);
  }
}

/**
 * The plan database failed under a command, or could not be reached for longer than the command
 * waits for it (exit 1): what was committed before is kept, and nothing was run on a server
 * without being recorded first, so the same command can be run again once it answers.
 */
export class StoreError extends AppError {
  constructor(message: string) {
    super(message, EXIT.failure);
  }
}
