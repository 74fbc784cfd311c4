import assert from 'node:assert/strict';
import { execa, type ResultPromise } from 'execa';
import { existsSync, rmSync, symlinkSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { statusDocument, type UpdateJson } from '../../src/output/status-json.js';
import { requireSshd, startFleet, type Fleet, type FleetOptions } from '../fleet/fleet.js';
import { after, type TestContext } from 'node:test';
import { makeTempDir, tempDirFor } from './tmp.js';
import { openStore } from './db.js';

/** The repository root, from dist/test/helpers/cli.js. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = `${ROOT}bin/agent-update.js`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real CLI in its own process, as an operator would. Never throws on a non-zero exit. */
export async function cli(args: string[], opts: { db?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await spawnCli(args, opts);
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function spawnCli(
  args: string[],
  opts: { db?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): ResultPromise<{ reject: false; stdin: 'ignore'; timeout: number; env: Record<string, string | undefined>; cwd?: string }> {
  const full = opts.db ? ['--db', opts.db, ...args] : args;
  const child = execa('node', [BIN, ...full], {
    reject: false,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? 120_000,
    // A command run without --db must not find (or write) the database of whoever runs the
    // tests: the default database is in a state folder of this test process, and an
    // $AGENT_UPDATE_DB of the environment is not passed on. A test that wants either sets it.
    // And `agent-update` is on the PATH, as for an operator who ran `npm link`: the commands it
    // suggests then start with `agent-update` (util/invocation.ts; its own test covers npx and node).
    // Nor may it read the site defaults of whoever runs the tests (~/.config/agent-update/defaults.yml,
    // or theirs in $AGENT_UPDATE_DEFAULTS): an empty AGENT_UPDATE_DEFAULTS means none. A test of the
    // defaults passes its own.
    env: {
      NO_COLOR: '1',
      XDG_STATE_HOME: testStateHome(),
      AGENT_UPDATE_DB: undefined,
      AGENT_UPDATE_DEFAULTS: '',
      PATH: `${shimDir()}${delimiter}${process.env.PATH ?? ''}`,
      ...opts.env,
    },
    cwd: opts.cwd,
  });
  running.add(child);
  void child.finally(() => running.delete(child));
  return child;
}

let stateHome: string | undefined;

/** The XDG_STATE_HOME the CLI processes of this test process get by default: one new folder, removed at exit. */
export function testStateHome(): string {
  if (stateHome === undefined) {
    const dir = makeTempDir('agent-update-state-');
    process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
    stateHome = dir;
  }
  return stateHome;
}

let shim: string | undefined;
/** A folder with `agent-update` in it (a link to bin/agent-update.js), made once per test process. */
function shimDir(): string {
  if (shim === undefined) {
    shim = makeTempDir('agent-update-bin-');
    symlinkSync(BIN, join(shim, 'agent-update'));
    const dir = shim;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return shim;
}

/** CLI processes started by spawnCli() or cli() that have not ended yet. */
const running = new Set<ReturnType<typeof execa>>();

/** Kill (SIGKILL) every CLI process this test process started and that is still running. */
export function killStrayClis(): void {
  for (const child of running) child.kill('SIGKILL');
}

/**
 * Resolves once `child` has written output matching `re` on `stream` (all it wrote so far, so a
 * match split across chunks counts); rejects, with what it wrote, if it exits first.
 */
export function printed(child: ReturnType<typeof spawnCli>, stream: 'stdout' | 'stderr', re: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    child[stream]?.on('data', (d: Buffer) => {
      text += d.toString();
      if (re.test(text)) resolve(text);
    });
    void child.then((r) => reject(new Error(`exited ${r.exitCode} before printing ${re} on ${stream}:\n${text}`)));
  });
}

/**
 * The document `status NAME --json` prints, read in this process: a second connection to the
 * plan database, as `status` opens one, and the same updateJson(), without starting a node
 * process for it (~0.25 s each). Throws where `status` exits 2 (no database, no such update).
 * A test about the `status` command itself uses cliStatusJson().
 */
export async function statusJson(db: string, name: string): Promise<StatusDoc> {
  if (!existsSync(db)) throw new Error(`status ${name}: no plan database at ${db}`);
  const store = openStore(db);
  try {
    // Through JSON, as the CLI prints it.
    return JSON.parse(JSON.stringify(await statusDocument(store, name))) as StatusDoc;
  } finally {
    await store.close();
  }
}

/** `status NAME --json` run by the real CLI in its own process, parsed. */
export async function cliStatusJson(db: string, name: string): Promise<StatusDoc> {
  const r = await cli(['status', name, '--json'], { db });
  if (r.code !== 0) throw new Error(`status ${name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusDoc;
}

/** The document `status NAME --json` prints (SPEC.md). */
export type StatusDoc = UpdateJson;

export function byName(doc: StatusDoc): Record<string, StatusDoc['servers'][number]> {
  return Object.fromEntries(doc.servers.map((s) => [s.name, s]));
}

/** A fresh real-sshd fleet for one test, stopped after it; null (test skipped) without sshd. */
export async function fleetFor(t: TestContext, opts: Parameters<typeof startFleet>[0] = {}): Promise<Fleet | null> {
  if (!requireSshd(t)) return null;
  const fleet = await startFleet(opts);
  t.after(() => fleet.stop());
  return fleet;
}

/**
 * fleetFor() for the tests of one file, sharing one fleet of `size` (started by the first test
 * that asks, stopped after the file's last test) instead of starting an sshd fleet per test. Each
 * test gets the fleet seen as the one it asked for (Fleet.view: only its first N servers, its own
 * empty `root` for configs and databases), with those servers reset first (Fleet.reset: sessions
 * killed, fresh homes, agents at base): what it sees is what a fresh fleet shows. A test asking
 * for more servers than `size` has, or for other upstream options, gets a fleet of its own.
 * Call it once at the top of a test file:
 *
 *     const fleetFor = sharedFleet({ servers: 4, unreachable: 1 });
 *     test('…', async (t) => { const fleet = await fleetFor(t, { servers: 2 }); if (!fleet) return; … });
 *
 * A test that changes the upstream (upstream.addCommit) gets it back for the next test: the
 * shared fleet is then started again.
 */
export function sharedFleet(size: FleetOptions): (t: TestContext, opts?: FleetOptions) => Promise<Fleet | null> {
  let shared: Promise<Fleet> | null = null;
  let upstreamChanged = false;
  after(async () => {
    const fleet = await shared?.catch(() => null);
    await fleet?.stop();
  });
  const fits = (opts: FleetOptions) =>
    (opts.servers ?? 3) <= (size.servers ?? 3) &&
    (opts.unreachable ?? 0) <= (size.unreachable ?? 0) &&
    (opts.hanging ?? 0) <= (size.hanging ?? 0) &&
    JSON.stringify(opts.upstream ?? {}) === JSON.stringify(size.upstream ?? {});
  return async (t, opts = {}) => {
    if (!requireSshd(t)) return null;
    if (!fits(opts)) return fleetFor(t, opts);
    if (upstreamChanged) {
      upstreamChanged = false;
      const old = await shared!.catch(() => null);
      shared = null;
      await old?.stop();
    }
    shared ??= startFleet(size);
    const fleet = await shared;
    // A command a failed test left running must not land on the next test's servers.
    t.after(() => killStrayClis());
    const view = fleet.view(opts, tempDirFor(t, 'agent-update-test-'));
    await view.reset();
    const { upstream } = view;
    return {
      ...view,
      upstream: {
        ...upstream,
        addCommit: (...args) => {
          upstreamChanged = true;
          return upstream.addCommit(...args);
        },
      },
    };
  };
}

/**
 * `plan -c` of a config written for `fleet` (its defaults, then `overrides`), into `plan.db` in the
 * fleet's folder unless `db` is given; asserts it succeeded.
 */
export async function planned(fleet: Fleet, overrides: Record<string, unknown> = {}, name = 'u1', db = join(fleet.root, 'plan.db')): Promise<{ db: string; name: string }> {
  const r = await cli(['plan', '-c', fleet.writeConfig({ name, ...overrides })], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return { db, name };
}
