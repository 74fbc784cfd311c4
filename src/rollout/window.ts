/**
 * The executor loop's rule for `execution.window` (issue 24), pure as rules.ts's: before a new
 * server is claimed, go on, pause the update with the reason, or wait for the window to open
 * (`start`/`resume --wait-for-window`). A server in flight is never stopped by it: the rule is
 * asked only where decide() says `run` (a takeover's server in flight is finished outside it).
 * run.ts carries it out; test/rollout/window.test.ts has its table and the engine's waits.
 */
import type { RolloutWindow } from '../config/types.js';
import { describeOpening, describeWindow, windowPauseReason, windowState } from '../config/window.js';

/**
 * While waiting for the window: how often the update is looked at again (a pause asked with
 * Ctrl-C or from another terminal, the lease), so a wait of hours still pauses within a second.
 */
export const WINDOW_POLL_MS = 1_000;

export type WindowStep =
  /** the window is open (or the update has none): claim the next server */
  | { kind: 'go' }
  /** closed, and not to be waited for: pause the update with `reason` (which starts with WINDOW_PAUSE_PREFIX) */
  | { kind: 'pause'; reason: string }
  /** closed: wait until `opensAt`; `announce`: a wait not announced yet (journal it, emit window-waiting) */
  | { kind: 'wait'; opensAt: Date; waitMs: number; announce: boolean; window: string; message: string };

/**
 * What to do about the window before the next server: `window` the update's (absent: none),
 * `wait` whether the run waits for it, `announced` the opening (ms) of the wait already
 * announced (null: none), `local` the operator's time zone (the machine's by default).
 */
export function windowStep(now: Date, window: RolloutWindow | undefined, wait: boolean, announced: number | null, local?: string): WindowStep {
  if (!window) return { kind: 'go' };
  const s = windowState(now, window);
  if (s.open) return { kind: 'go' };
  if (!wait) return { kind: 'pause', reason: windowPauseReason(window, s.opensAt, local) };
  return {
    kind: 'wait',
    opensAt: s.opensAt,
    waitMs: s.opensAt.getTime() - now.getTime(),
    announce: announced !== s.opensAt.getTime(),
    window: describeWindow(window),
    message: `waiting for the rollout window (${describeWindow(window)}): it opens ${describeOpening(s.opensAt, window, local)}`,
  };
}
