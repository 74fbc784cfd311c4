/**
 * The names `hooks[].events` accepts, in one place: the hook events (what an operator is told
 * about: an update started, a server failed, the update paused…), each one NDJSON event type or
 * one status of it; `all`; and, for power users, any NDJSON event type by its own name
 * (docs/reference/events.md). rollout/hooks.ts maps each event to its hook event with
 * hookEventOf; rollout/events.ts checks at compile time that every event type is listed here.
 */

/** A hook event: the NDJSON event it stands for (`type`), and which `status` of it, if only some. */
export interface HookEventDef {
  name: string;
  type: string;
  status?: readonly string[];
}

/**
 * The hook events, in the order a rollout meets them (docs/reference/config.md#hooks says what
 * each means); a hook with no `events:` is called on all of them. `update-started` is the one a
 * required hook is awaited on, before any server is touched.
 */
export const HOOK_EVENTS: readonly HookEventDef[] = [
  { name: 'update-started', type: 'update-started' },
  // a step of execution.steps baked and the update moves on to the next
  { name: 'step-baked', type: 'step-promoted' },
  { name: 'server-failed', type: 'server-finished', status: ['failed'] },
  { name: 'server-rolled-back', type: 'server-finished', status: ['rolled-back'] },
  { name: 'server-fatal', type: 'server-finished', status: ['fatal'] },
  // a server that had passed turned unhealthy (execution.guard)
  { name: 'guard-tripped', type: 'guard-tripped' },
  { name: 'paused', type: 'update-finished', status: ['paused'] },
  { name: 'finished', type: 'update-finished', status: ['success', 'partial-success', 'failure'] },
];

/** The names of the hook events: the default of `events:`. */
export const HOOK_EVENT_NAMES: readonly string[] = HOOK_EVENTS.map((e) => e.name);

/** `events: [all]`: every event of the stream (but `hook-failed`). */
export const ALL_EVENTS = 'all';

/**
 * Every event type of the NDJSON stream, which `events:` accepts as it is (`server-finished`,
 * `command`…). rollout/events.ts refuses to compile while an event type of RolloutEvent is
 * missing here; a type listed before its event exists (another part of the work adds it) is
 * simply never met.
 */
export const EVENT_TYPES = [
  'update-started',
  'takeover',
  'server-started',
  'server-step',
  'command',
  'health-waiting',
  'diagnose',
  'reconnecting',
  'server-waiting',
  'server-finished',
  'update-finished',
  'probe',
  'hook-failed',
  // execution.steps, bake and guard (issue 24)
  'step-started',
  'bake-started',
  'bake-check',
  'bake-ended',
  'step-promoted',
  'guard-tripped',
  'guard-check',
  // execution.window (issue 24)
  'window-waiting',
] as const;

/**
 * The one event a hook is never called on: a failing hook would be called about its own failure,
 * and fail again.
 */
export const NOT_FOR_HOOKS = 'hook-failed';

/** The hook event an event is (`server-fatal` for a fatal `server-finished`), or null when it is none. */
export function hookEventOf(e: { type: string; status?: unknown }): string | null {
  for (const h of HOOK_EVENTS) {
    if (h.type !== e.type) continue;
    if (h.status === undefined || (typeof e.status === 'string' && h.status.includes(e.status))) return h.name;
  }
  return null;
}

/** Is a hook listening to `events` (as validated: names of hook events, event types, `all`) called on this event? */
export function hookWants(events: readonly string[], e: { type: string; status?: unknown }): boolean {
  if (e.type === NOT_FOR_HOOKS) return false;
  if (events.includes(ALL_EVENTS) || events.includes(e.type)) return true;
  const name = hookEventOf(e);
  return name !== null && events.includes(name);
}
