/**
 * Fake servers and the fence of ssh/fence.ts: every command the engine sends under its token
 * comes with `ExecOptions.fence`. `runFence` runs that fence for real with /bin/sh in a fake
 * server's home (the token checked against its lock file, the record of the command in flight
 * written and removed: fence.ts's fenced()) and says whether it would have run the command,
 * which the fake's model then runs.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fenced } from '../../src/ssh/fence.js';
import type { ExecResult } from '../../src/ssh/transport.js';

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
 * Run the fence of `command` sent with fencing token `fence` for real in `home`: `{ run }` is the
 * operator's command it lets run; `{ notRun }` the result of one it stopped (fenced, or a command
 * in flight); null when no token came with it.
 */
export function runFence(command: string, fence: string | undefined, home: string): { run: string } | { notRun: ExecResult } | null {
  if (fence === undefined) return null;
  const out = join(home, '.fake-command');
  rmSync(out, { force: true });
  const r = spawnSync('/bin/sh', ['-c', fenced(command, fence, 30)], { env: { HOME: home, PATH: process.env.PATH, SHELL: stubShell(), FAKE_COMMAND_OUT: out } });
  if (r.status === 0 && existsSync(out)) {
    const run = readFileSync(out, 'utf8');
    rmSync(out, { force: true });
    return { run };
  }
  return { notRun: { code: r.status, stdout: r.stdout.toString(), stderr: r.stderr.toString(), timedOut: false, ended: 'exit', error: null, durationMs: 1 } };
}
