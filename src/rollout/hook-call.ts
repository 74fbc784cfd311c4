/**
 * One call of one hook (rollout/hooks.ts queues them): a `run:` command run with /bin/sh on
 * this machine, the event's JSON line on its stdin; or a `url:` webhook POSTed that JSON. Each
 * is cut off at the hook's timeout (a command's whole process group killed, a request aborted).
 * The result is null when it succeeded, else why it failed, in words that never hold the
 * webhook's URL beyond its scheme and host (config/hook-url.ts).
 */
import { spawn } from 'node:child_process';
import type { HookConfig } from '../config/types.js';
import { expandUrl, shownUrl } from '../config/hook-url.js';
import { formatDuration } from '../util/duration.js';
import { TailBuffer } from '../ssh/tail-buffer.js';

/** What of a failed command's output is kept for its message: the last lines, at most this many characters. */
export const HOOK_OUTPUT_CHARS = 400;
const HOOK_OUTPUT_LINES = 5;

/** Why a call was stopped when agent-update itself is stopped (a second Ctrl-C). */
export const STOPPED = 'stopped: agent-update is stopping';

/** A call that failed: why, and whether it was cut off at its timeout. */
export interface HookFailure {
  error: string;
  timedOut: boolean;
}

const failure = (error: string, timedOut = false): HookFailure => ({ error, timedOut });

/**
 * Call `hook` with `json` (the event, one line); `env` is the environment of a command, and
 * where a url's `${NAME}`s are read. Null: it succeeded.
 */
export function callHook(hook: HookConfig, json: string, env: NodeJS.ProcessEnv, signal: AbortSignal): Promise<HookFailure | null> {
  if (signal.aborted) return Promise.resolve(failure(STOPPED));
  return hook.run !== undefined ? runCommand(hook.run, json, env, hook.timeoutMs, signal) : postJson(hook.url, json, env, hook.timeoutMs, signal);
}

/** The last lines of a command's output, for its failure message ('' when it printed nothing). */
export function outputTail(text: string): string {
  const lines = text.replace(/\s+$/, '').split('\n').slice(-HOOK_OUTPUT_LINES).join('\n');
  return lines.length > HOOK_OUTPUT_CHARS ? `…${lines.slice(-HOOK_OUTPUT_CHARS)}` : lines;
}

function runCommand(command: string, json: string, env: NodeJS.ProcessEnv, timeoutMs: number, signal: AbortSignal): Promise<HookFailure | null> {
  return new Promise((resolve) => {
    // detached: its own process group, so a timeout kills what it started too
    const child = spawn('/bin/sh', ['-c', command], { detached: true, stdio: ['pipe', 'pipe', 'pipe'], env });
    const output = new TailBuffer(4 * HOOK_OUTPUT_CHARS);
    child.stdout.on('data', (d: Buffer) => output.push(d));
    child.stderr.on('data', (d: Buffer) => output.push(d));
    // a command that does not read its stdin closes it: that is not its failure
    child.stdin.on('error', () => {});
    child.stdin.end(json);
    const said = () => {
      const tail = outputTail(output.toString());
      return tail === '' ? '' : `: ${tail}`;
    };
    /** the command's whole process group; and its pipes, which a process that left the group may hold */
    const kill = () => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
      for (const stream of [child.stdin, child.stdout, child.stderr]) stream.destroy();
    };
    let done = false;
    const finish = (why: HookFailure | null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      resolve(why);
    };
    const timer = setTimeout(() => {
      const why = failure(`timed out after ${formatDuration(timeoutMs)} (its processes were killed)${said()}`, true);
      kill();
      finish(why);
    }, timeoutMs);
    const onAbort = () => {
      kill();
      finish(failure(STOPPED));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    child.on('error', (e) => finish(failure(`could not run /bin/sh: ${e.message}`)));
    // 'close': it exited and its output was read to the end
    child.on('close', (code, sig) => finish(code === 0 ? null : failure(`${code !== null ? `exit ${code}` : `killed by ${sig ?? 'a signal'}`}${said()}`)));
  });
}

async function postJson(template: string, json: string, env: NodeJS.ProcessEnv, timeoutMs: number, signal: AbortSignal): Promise<HookFailure | null> {
  const expanded = expandUrl(template, env);
  if ('missing' in expanded) return failure(`the environment variable ${expanded.missing} (in its url) is not set`);
  const { url } = expanded;
  const shown = shownUrl(template);
  // Nothing that came back may show the URL whole: an error text of fetch may name it, as
  // written or as parsed (`href`: a path added, characters escaped).
  const forms = [url, URL.canParse(url) ? new URL(url).href : url].sort((a, b) => b.length - a.length);
  const scrub = (text: string) => forms.reduce((t, form) => t.split(form).join(shown), text);
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), timeoutMs);
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'user-agent': 'agent-update' },
      body: json,
      // a redirected POST would lose its body (or become a GET): not followed, a failure
      redirect: 'manual',
      signal: AbortSignal.any([signal, timeout.signal]),
    });
    if (res.status >= 200 && res.status < 300) {
      await res.body?.cancel();
      return null;
    }
    const body = (await readSome(res, 300)).trim();
    const where = res.status >= 300 && res.status < 400 ? ' (a redirect: not followed)' : '';
    return failure(scrub(`HTTP ${res.status}${res.statusText ? ` ${res.statusText}` : ''}${where}${body ? `: ${body.replace(/\s+/g, ' ')}` : ''}`));
  } catch (e) {
    if (signal.aborted) return failure(STOPPED);
    if (timeout.signal.aborted) return failure(`timed out after ${formatDuration(timeoutMs)} (the request was aborted)`, true);
    const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
    const detail = cause && typeof cause.message === 'string' ? cause.message : (e as Error).message;
    return failure(scrub(`could not reach ${shown}: ${detail}`));
  } finally {
    clearTimeout(timer);
  }
}

/** The first `max` characters of a response's body (the rest is not read). */
async function readSome(res: Response, max: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  try {
    while (text.length < max) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text.length > max ? `${text.slice(0, max)}…` : text;
}
