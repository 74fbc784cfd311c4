/**
 * What a command's result says, in the words the journal and the operator read: why it failed
 * (describeFailure), and the commit `agent.version_command` printed (readCommit), for the plan's
 * probe and the executor's re-checks alike.
 */
import type { ExecResult } from '../ssh/transport.js';
import { isFullCommit } from '../util/commit.js';

/** `exited 3: <the last line of its output>`, or `failed: <why it has no exit status>`. */
export function describeFailure(r: ExecResult): string {
  if (r.code === null) return `failed: ${r.error ?? 'no exit status'}`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? '';
  return `exited ${r.code}${tail ? `: ${tail.slice(0, 200)}` : ''}`;
}

/** The installed commit: the last line version_command printed (40 hex), or why it is not one. */
export function readCommit(r: ExecResult): { ok: true; commit: string } | { ok: false; error: string } {
  if (r.code !== 0) return { ok: false, error: `version_command ${describeFailure(r)}` };
  const lines = r.stdout.trim().split('\n');
  const last = (lines[lines.length - 1] ?? '').trim().toLowerCase();
  if (!isFullCommit(last)) {
    return { ok: false, error: `version_command printed ${JSON.stringify(last.slice(0, 80))}, not a 40-hex commit` };
  }
  return { ok: true, commit: last };
}
