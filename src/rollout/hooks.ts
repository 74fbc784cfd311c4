/**
 * Hooks (`hooks:` of the plan's settings, config/check-hooks.ts): each rollout event a hook
 * listens to (config/hook-events.ts hookWants) is handed to it as the JSON line of the event
 * stream, through a queue of its own per update: calls are made in event order, one at a time
 * per hook, beside the rollout, never in its way. A failure (rollout/hook-call.ts says why) is
 * journalled (event kind `hook`) and reported as a `hook-failed` event, and never stops the
 * rollout, except for a `required` hook: its failure asks the update to pause (as `pause` does),
 * so that on `update-started`, which the engine waits for (beforeRun), the update pauses before
 * any server is touched, and later on, after the server in flight.
 *
 * The CLI makes one HookRunner per command, feeds it every event it emits (deliver), and waits
 * for the queued calls before it exits (drain): each is bounded by its timeout, and a hook that
 * timed out GIVE_UP_AFTER times in a row is not called again in this run.
 */
import type { Clock } from '../clock.js';
import type { Liveness } from '../liveness.js';
import type { HookConfig } from '../config/types.js';
import { hookEventOf, hookWants } from '../config/hook-events.js';
import { shownUrl } from '../config/hook-url.js';
import { TransitionError } from '../errors.js';
import type { EngineStore } from '../store/port.js';
import { actor } from '../util/actor.js';
import { requestPause } from './control.js';
import type { EventSink, RolloutEvent } from './events.js';
import { callHook } from './hook-call.js';

/** What the engine waits for: the required hooks' answer to the update-started it just emitted. */
export interface HookGate {
  /**
   * Resolves once every required hook called on the last `update-started` of `update` has
   * answered; a failure has then asked for the pause (decide() sees it before any server starts).
   */
  beforeRun(update: string): Promise<void>;
}

/** A hook that timed out this many times in a row is not called again in the run. */
export const GIVE_UP_AFTER = 3;

/** How a failure's reason reads in a pause reason: its first line, at most this many characters. */
const SHORT_WHY = 200;

export interface HookRunnerDeps {
  store: EngineStore;
  clock: Clock;
  liveness: Liveness;
  /** where `hook-failed` is reported: the CLI's sinks (the Reporter, the NDJSON stream) */
  emit: EventSink;
  /** the event as the stream writes it: one JSON line (output/ndjson.ts) */
  encode: (e: RolloutEvent, at: Date) => string;
  /** the environment of a command, where a url's `${NAME}`s are read; default process.env */
  env?: NodeJS.ProcessEnv;
  /** aborted: the command stops at once (a second Ctrl-C); calls in flight are cut off, none is made */
  signal?: AbortSignal;
}

/** `hooks[1] (url: https://hooks.example.com/…)`: a hook as messages name it, never with a url's secrets. */
export function hookLabel(hook: HookConfig, index: number): string {
  return `hooks[${index}] (${hookTarget(hook)})`;
}

/** `run: ./page.sh` (its first line, cut at 60 characters) or `url: https://host/…`. */
export function hookTarget(hook: HookConfig): string {
  if (hook.url !== undefined) return `url: ${shownUrl(hook.url)}`;
  const command = hook.run.trim();
  const first = command.split('\n')[0]!.slice(0, 60);
  return `run: ${first}${first !== command ? '…' : ''}`;
}

/** The variables a command hook gets besides the environment of agent-update. */
export function hookEnv(e: RolloutEvent): Record<string, string> {
  const fields = e as { server?: unknown; status?: unknown };
  return {
    AGENT_UPDATE_EVENT: e.type,
    AGENT_UPDATE_HOOK_EVENT: hookEventOf(e) ?? e.type,
    AGENT_UPDATE_UPDATE: e.update,
    AGENT_UPDATE_SERVER: typeof fields.server === 'string' ? fields.server : '',
    AGENT_UPDATE_STATUS: typeof fields.status === 'string' ? fields.status : '',
  };
}

export class HookRunner implements HookGate {
  /** the last call queued of each hook of each update (`update\0index`): the next one waits for it */
  private readonly queues = new Map<string, Promise<void>>();
  /** every call queued and not yet done */
  private readonly inFlight = new Set<Promise<void>>();
  /** the required hooks' calls on each update's last update-started */
  private readonly before = new Map<string, Promise<void>>();
  /** timeouts in a row, by queue; a queue at GIVE_UP_AFTER is not called again */
  private readonly timeouts = new Map<string, number>();
  private readonly env: NodeJS.ProcessEnv;
  private readonly signal: AbortSignal;

  /** `hooksOf`: the hooks of an update (its plan's settings) */
  constructor(
    private readonly hooksOf: (update: string) => readonly HookConfig[],
    private readonly deps: HookRunnerDeps,
  ) {
    this.env = deps.env ?? process.env;
    this.signal = deps.signal ?? new AbortController().signal;
  }

  /** Queue a call of every hook that listens to `e` (emitted at `at`); returns at once. */
  deliver(e: RolloutEvent, at: Date): void {
    if (e.type === 'hook-failed') return;
    const required: Array<Promise<void>> = [];
    let line: string | undefined;
    this.hooksOf(e.update).forEach((hook, index) => {
      if (!hookWants(hook.events, e)) return;
      line ??= this.deps.encode(e, at);
      const call = this.enqueue(e, line, hook, index);
      if (hook.required) required.push(call);
    });
    if (e.type === 'update-started') this.before.set(e.update, Promise.all(required).then(() => {}));
  }

  beforeRun(update: string): Promise<void> {
    const calls = this.before.get(update);
    this.before.delete(update);
    return calls ?? Promise.resolve();
  }

  /** Resolves once every call queued so far (and any queued meanwhile) is done. */
  async drain(): Promise<void> {
    while (this.inFlight.size > 0) await Promise.all([...this.inFlight]);
  }

  private enqueue(e: RolloutEvent, line: string, hook: HookConfig, index: number): Promise<void> {
    const key = `${e.update}\0${index}`;
    const previous = this.queues.get(key) ?? Promise.resolve();
    const call = previous.then(() => this.call(key, e, line, hook, index));
    this.queues.set(key, call);
    this.inFlight.add(call);
    void call.finally(() => {
      this.inFlight.delete(call);
      if (this.queues.get(key) === call) this.queues.delete(key);
    });
    return call;
  }

  /** One call; never throws (a failure is reported, and a problem reporting it is swallowed). */
  private async call(key: string, e: RolloutEvent, line: string, hook: HookConfig, index: number): Promise<void> {
    if ((this.timeouts.get(key) ?? 0) >= GIVE_UP_AFTER || this.signal.aborted) return;
    const started = this.deps.clock.now().getTime();
    const failed = await callHook(hook, line, { ...this.env, ...hookEnv(e) }, this.signal);
    // a stop of agent-update itself is not the hook's failure (nor a reason to pause the update)
    if (failed === null || this.signal.aborted) {
      this.timeouts.delete(key);
      return;
    }
    const inARow = failed.timedOut ? (this.timeouts.get(key) ?? 0) + 1 : 0;
    this.timeouts.set(key, inARow);
    const error = inARow >= GIVE_UP_AFTER ? `${failed.error}; it timed out ${GIVE_UP_AFTER} times in a row: not called again in this run` : failed.error;
    try {
      await this.failed(e, hook, index, error, this.deps.clock.now().getTime() - started);
    } catch {
      // the journal or the pause could not be written (the store is gone): the event was still shown
    }
  }

  private async failed(e: RolloutEvent, hook: HookConfig, index: number, error: string, durationMs: number): Promise<void> {
    const server = typeof (e as { server?: unknown }).server === 'string' ? (e as { server: string }).server : null;
    const hookEvent = hookEventOf(e) ?? e.type;
    this.deps.emit({ type: 'hook-failed', update: e.update, server, hook: index, target: hookTarget(hook), event: e.type, hookEvent, required: hook.required, error, durationMs });
    const label = hookLabel(hook, index);
    const pausing = hook.required && pausesOn(e.type);
    await this.deps.store.addEvent(e.update, server, 'hook', `${label} failed on ${hookEvent}${server ? ` of ${server}` : ''}: ${error}${pausing ? ' (required: the update pauses)' : ''}`);
    if (!pausing) return;
    const short = error.split('\n')[0]!;
    const by = `required hook ${label}, which failed on ${hookEvent}: ${short.length > SHORT_WHY ? `${short.slice(0, SHORT_WHY)}…` : short} (${actor()})`;
    try {
      await requestPause(this.deps.store, e.update, this.deps.clock.now(), this.deps.liveness, by);
    } catch (err) {
      // it has ended meanwhile: nothing left to pause
      if (!(err instanceof TransitionError)) throw err;
    }
  }
}

/**
 * Does a required hook's failure on an event of this type pause the update? Not on the update's
 * own end or pause: there is nothing left to pause then.
 */
export function pausesOn(eventType: string): boolean {
  return eventType !== 'update-finished';
}
