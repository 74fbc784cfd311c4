import type { ServerStatus, ServerStep, UpdateStatus } from '../model/lifecycle.js';
import type { VersionClass } from '../config/types.js';
import type { EVENT_TYPES } from '../config/hook-events.js';

/** `total`, and how many servers of an update are in each status (a key only for statuses that occur). */
export type ServerCounts = Record<string, number>;

/**
 * What the engine reports while it works. The engine never prints: the CLI turns these into
 * lines, a live view, or NDJSON (output/ndjson.ts, which adds `v` and a timestamp `at`).
 * `index`/`total` on server-started count only the servers this update works on (not those
 * skipped or unreachable at plan time), so the count never jumps.
 */
export type RolloutEvent =
  /**
   * pending: servers still to work on; total: all of its servers; counts: by status at this moment;
   * pausesAt: test mode's pause (`--stop-after`), once this many of its servers have finished with work in all; null: none
   */
  | { type: 'update-started'; update: string; takeover: boolean; resumed: boolean; pending: number; total: number; counts: ServerCounts; pausesAt?: number | null }
  | { type: 'server-started'; update: string; server: string; index: number; total: number; host: string; port: number; user: string; fromCommit: string | null; toCommit: string }
  /** hop, hops, hopTo: for a server walking stepping stones, the hop (1-based) of how many, and that hop's version (or commit) */
  | { type: 'server-step'; update: string; server: string; step: ServerStep; hop?: number; hops?: number; hopTo?: string }
  | { type: 'command'; update: string; server: string; phase: string; command: string; code: number | null; error: string | null; durationMs: number }
  /** stableMs / stableForMs: healthy since this long, of the agent.health.stable_for it must stay so */
  | { type: 'health-waiting'; update: string; server: string; attempt: number; elapsedMs: number; output: string; stableMs?: number; stableForMs?: number }
  | {
      type: 'server-finished';
      update: string;
      server: string;
      status: ServerStatus;
      error: string | null;
      durationMs: number;
      /** the commit it had before, and the target it was updated to (as `status --json` records them) */
      fromCommit: string | null;
      toCommit: string | null;
      /**
       * the commit it runs now, verified: the target (success), the rollback commit (rolled-back),
       * its own commit (skipped); null where it is not known (failed, fatal, unreachable)
       */
      atCommit: string | null;
    }
  /**
   * one agent.diagnose command on a server that failed, before its rollback (rollout/diagnose.ts):
   * `command` as sent (as journalled); `output` the last lines of its stdout then stderr
   * (DIAGNOSE_TAIL_LINES, at most DIAGNOSE_TAIL_CHARS); `ran` false when it was not sent (the
   * server stopped answering, or its placeholders could not be expanded: `error` says which)
   */
  | {
      type: 'diagnose';
      update: string;
      server: string;
      command: string;
      ran: boolean;
      code: number | null;
      timedOut: boolean;
      error: string | null;
      durationMs: number;
      output: string;
    }
  | { type: 'takeover'; update: string; server: string | null; message: string }
  /** the connection to a server was lost: trying again (for up to ssh.reconnect_for) */
  | { type: 'reconnecting'; update: string; server: string; attempt: number; lostMs: number; limitMs: number; error: string }
  /** the next server is being worked on by another update (or another database's executor): waiting for it */
  | { type: 'server-waiting'; update: string; server: string; holder: string; waitedMs: number; limitMs: number }
  /**
   * a hook (rollout/hooks.ts) failed on an event (never stops the rollout; a required one asks
   * for a pause): `hook` its index in `hooks:`, `target` what it is (`run: …` or the url's scheme
   * and host), `event` the type of the event it was called on and `hookEvent` that event's hook
   * event name (its type when it has none); `server` the event's
   */
  | {
      type: 'hook-failed';
      update: string;
      server: string | null;
      hook: number;
      target: string;
      event: string;
      hookEvent: string;
      required: boolean;
      error: string;
      durationMs: number;
    }
  | { type: 'update-finished'; update: string; status: UpdateStatus; reason: string; counts: ServerCounts }
  // progressive delivery (execution.steps, bake, guard): `step` is 1-based, `steps` how many
  /** a step begins: its servers are the next ones until `through` of `total` are done */
  | { type: 'step-started'; update: string; step: number; steps: number; through: number; total: number }
  /** the step's servers are done: they bake (re-checked every `intervalMs`) for `leftMs` more */
  | { type: 'bake-started'; update: string; step: number; steps: number; bakeMs: number; leftMs: number; intervalMs: number; servers: string[] }
  /** a round of the bake's re-checks ended, all healthy: `leftMs` to go */
  | { type: 'bake-check'; update: string; step: number; steps: number; leftMs: number }
  /** the bake ended: `healthy` (its whole time), `unhealthy` (a server failed a re-check), `paused` (asked, with `leftMs` kept) */
  | { type: 'bake-ended'; update: string; step: number; steps: number; outcome: 'healthy' | 'unhealthy' | 'paused'; leftMs: number }
  /** the step is let go: the next begins (`by`: its bake passed, a resume after pause_after_step, or no bake) */
  | { type: 'step-promoted'; update: string; step: number; steps: number; by: 'bake' | 'resume' | 'no-bake' }
  /** a server that passed failed a re-check (the guard's, or a bake's); `rollback`: it is rolled back now */
  | { type: 'guard-tripped'; update: string; server: string; source: 'guard' | 'bake'; output: string; rollback: boolean }
  /** a round of the guard's re-checks ended */
  | { type: 'guard-check'; update: string; healthy: number; unhealthy: string[] }
  /**
   * execution.window is closed before the next server: waiting for it to open (`start`/`resume
   * --wait-for-window`); once per wait. `window` as described (`mon-fri 09:00-17:00
   * Europe/Berlin`), `opensAt` ISO 8601 UTC, `waitMs` from now, `message` the line a person reads.
   */
  | { type: 'window-waiting'; update: string; window: string; timezone: string; opensAt: string; waitMs: number; message: string }
  | {
      type: 'probe';
      update: string;
      server: string;
      status: 'pending' | 'skipped' | 'unreachable' | 'excluded';
      commit: string | null;
      error: string | null;
      /** the agent's version (agent.semver_command), when read */
      version?: string;
      /** its class against source.version, when classed */
      versionClass?: VersionClass;
      /** below source.min_version: the versions (or commits) of the hops it will walk, the target last */
      path?: string[];
    };

export type EventSink = (event: RolloutEvent) => void;

export const ignoreEvents: EventSink = () => {};

/**
 * Every event type is one `hooks[].events` can name (config/hook-events.ts EVENT_TYPES): this
 * fails to compile, naming the type, while one is missing there.
 */
type Unnamed = Exclude<RolloutEvent['type'], (typeof EVENT_TYPES)[number]>;
export const EVERY_TYPE_NAMED: [Unnamed] extends [never] ? true : { addToEventTypesInConfigHookEvents: Unnamed } = true;
