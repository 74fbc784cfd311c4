/**
 * Fake servers and the fencing of remote-lock.ts: every command the engine sends under its
 * token is `exec sh -c FENCE agent-update-fence TOKEN SECONDS COMMAND`. `unfenced` reads the
 * operator's command back out of it (for fakes that answer lock scripts themselves);
 * `runFence` runs the fence for real with /bin/sh in a fake server's home (the token checked
 * against its lock file, the record of the command in flight written and removed) and says
 * whether it would have run the command, which the fake's model then runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FENCE_ARGV0 } from '../../src/rollout/remote-lock.js';
import type { ExecResult } from '../../src/ssh/transport.js';

/** The operator's command inside a fenced one, with its token; null for a command sent as it is. */
export function unfenced(command: string): { token: string; seconds: number; command: string } | null {
  if (!command.startsWith('exec sh -c ')) return null;
  const at = command.indexOf(` ${FENCE_ARGV0} `);
  if (at < 0) return null;
  const m = /^(\S+) (\d+) ([\s\S]*)$/.exec(command.slice(at + FENCE_ARGV0.length + 2));
  if (!m) throw new Error(`a fenced command the tests cannot read: ${command.slice(0, 200)}`);
  const quoted = m[3]!;
  const inner = quoted.startsWith("'") ? quoted.slice(1, -1).replace(/'\\''/g, "'") : quoted;
  return { token: m[1]!, seconds: Number(m[2]), command: inner };
}

let stubDir: string | null = null;
/** A stand-in login shell: `$SHELL -c COMMAND` writes COMMAND to $FAKE_COMMAND_OUT instead of running it. */
function stubShell(): string {
  if (stubDir === null) {
    stubDir = mkdtempSync(join(tmpdir(), 'agent-update-fence-'));
    writeFileSync(join(stubDir, 'shell'), '#!/bin/sh\nprintf %s "$2" > "$FAKE_COMMAND_OUT"\n', { mode: 0o755 });
    process.once('exit', () => rmSync(stubDir!, { recursive: true, force: true }));
  }
  return join(stubDir, 'shell');
}

/**
 * Run a fenced command's fence for real in `home`: `{ run }` is the operator's command it lets
 * run; `{ notRun }` the result of one it stopped (fenced, or a command in flight); null when
 * `command` is not fenced.
 */
export function runFence(command: string, home: string): { run: string } | { notRun: ExecResult } | null {
  if (unfenced(command) === null) return null;
  const out = join(home, '.fake-command');
  rmSync(out, { force: true });
  const r = spawnSync('/bin/sh', ['-c', command], { env: { HOME: home, PATH: process.env.PATH, SHELL: stubShell(), FAKE_COMMAND_OUT: out } });
  if (r.status === 0 && existsSync(out)) {
    const run = readFileSync(out, 'utf8');
    rmSync(out, { force: true });
    return { run };
  }
  return { notRun: { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), timedOut: false, error: null, durationMs: 1 } };
}
