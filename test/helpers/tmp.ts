/**
 * Where tests keep their temporary files: /dev/shm (tmpfs) when it exists, is writable and has
 * room, else os.tmpdir().
 *
 * The plan database runs with synchronous=FULL, so every commit is an fsync; on a real disk that
 * fsync is most of what the engine and store tests spend (engine.test: 15 s on /tmp, 6 s on
 * /dev/shm on the CI VM). Fleet homes (git checkouts) and demo folders are cheaper there too.
 * Nothing a test checks depends on the file system being a disk.
 */
import { accessSync, constants, mkdtempSync, rmSync, statSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

// Not about temp folders, but every test helper (cli.ts, fleet.ts) imports this module: a test
// that loads a config in its own process (loadConfig without an `env` of its own) must not read
// the site defaults of whoever runs the tests (~/.config/agent-update/defaults.yml, or an
// exported $AGENT_UPDATE_DEFAULTS; config/defaults.ts). Empty means none; a test of the
// defaults passes its own (spawnCli sets it empty for every CLI it starts, too).
process.env.AGENT_UPDATE_DEFAULTS = '';

const SHM = '/dev/shm';
/** Less free space than this on /dev/shm (a container's default is 64 MB) and the disk is used. */
const MIN_FREE_BYTES = 256 * 1024 * 1024;

let root: string | undefined;

/** The folder test temp folders are made in: /dev/shm when usable, else os.tmpdir(). */
export function testTmpRoot(): string {
  root ??= shmUsable() ? SHM : tmpdir();
  return root;
}

function shmUsable(): boolean {
  try {
    if (!statSync(SHM).isDirectory()) return false;
    accessSync(SHM, constants.W_OK | constants.X_OK);
    const fs = statfsSync(SHM);
    return fs.bavail * fs.bsize >= MIN_FREE_BYTES;
  } catch {
    return false;
  }
}

/** A new empty folder under testTmpRoot(); the caller removes it. */
export function makeTempDir(prefix: string): string {
  return mkdtempSync(join(testTmpRoot(), prefix));
}

/** A new empty folder under testTmpRoot(), removed after the test `t`. */
export function tempDirFor(t: TestContext, prefix: string): string {
  const dir = makeTempDir(prefix);
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}
