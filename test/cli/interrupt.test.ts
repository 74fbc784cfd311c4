/**
 * A Ctrl-C (or SIGTERM) while `start` is still starting up is not lost (issue 10, 2.5): before
 * any update is handed to the engine it stops the command with nothing written (exit 130); while
 * the engine is still checking SSH, before the update is `running`, it pauses the update before
 * its first server (exit 3). In process, with the signal delivered to the process's own
 * listeners (`process.emit`) at exactly those moments; test/cli/interrupt.e2e.test.ts sends real
 * signals to a real process.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { CliContext } from '../../src/cli/context.js';
import { runCommand } from '../../src/cli/start.js';
import type { RolloutSettings } from '../../src/config/types.js';
import { EXIT, InterruptedError } from '../../src/errors.js';
import type { Transport } from '../../src/ssh/transport.js';
import { OLD, NEW, fakeSettings } from '../support/fake-settings.js';
import { openStore } from '../helpers/db.js';
import { FakeTransport } from '../support/fake-transport.js';


const settings: RolloutSettings = fakeSettings;

/**
 * Servers that answer like a healthy agent (s1 and s2, at OLD); `onPreflight(n)` runs inside the
 * n-th preflight (1-based), between two short waits.
 */
function fakeOf(t: TestContext, onPreflight: (n: number) => void): FakeTransport {
  const fake = new FakeTransport({
    onPreflight: async (n) => {
      await new Promise((r) => setTimeout(r, 5));
      onPreflight(n);
      await new Promise((r) => setTimeout(r, 5));
    },
  });
  for (const name of ['s1', 's2']) fake.add(name, OLD);
  t.after(() => fake.close());
  return fake;
}

class TestContext_ extends CliContext {
  constructor(
    db: string,
    private readonly fake: Transport,
  ) {
    const sink = () => new PassThrough() as unknown as NodeJS.WriteStream;
    super({ db, quiet: true }, sink(), sink());
  }

  override transport(): Promise<Transport> {
    return Promise.resolve(this.fake);
  }
}

async function setup(t: TestContext, status: 'pending' | 'paused' = 'pending'): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-interrupt-'));
  const db = join(dir, 'p.db');
  const store = openStore(db);
  await store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings, testStopAfter: 0,
    servers: ['s1', 's2'].map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of await store.getServers('u')) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus('u', 'pending');
  if (status === 'paused') {
    await store.setUpdateStatus('u', 'running');
    await store.setUpdateStatus('u', 'paused', { reason: 'pause requested' });
  }
  await store.close();
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return db;
}

/** Deliver `signal` to the listeners this process has for it, as a real signal would. */
function deliver(signal: NodeJS.Signals): void {
  process.emit(signal, signal);
}

async function snapshot(db: string) {
  const store = openStore(db);
  try {
    const u = await store.getUpdate('u');
    return { status: u.status, lease: u.lease, reason: u.reason, servers: (await store.getServers('u')).map((s) => s.status), events: (await store.getEvents('u')).length };
  } finally {
    await store.close();
  }
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  test(`${signal} while start checks SSH, before any update is handed over: exit 130, nothing written, no server touched`, async (t) => {
    const db = await setup(t);
    const before = await snapshot(db);
    const fake = fakeOf(t, (n) => n === 1 && deliver(signal));
    const ctx = new TestContext_(db, fake);
    try {
      await assert.rejects(runCommand(ctx, 'start', ['u'], {}), (e: unknown) => {
        assert.ok(e instanceof InterruptedError, String(e));
        assert.equal(e.exitCode, EXIT.interrupted);
        assert.match(e.message, new RegExp(`^${signal}: interrupted before any update started; nothing was changed`));
        return true;
      });
    } finally {
      await ctx.close();
    }
    assert.deepEqual(await snapshot(db), before, 'the update is exactly as it was');
    assert.deepEqual(fake.commands, [], 'nothing ran on any server');
    assert.equal(process.listenerCount(signal), 0, 'its handlers are removed');
  });
}

test('resume: a SIGINT while it checks SSH leaves the update paused, exactly as it was (exit 130)', async (t) => {
  const db = await setup(t, 'paused');
  const before = await snapshot(db);
  const fake = fakeOf(t, (n) => n === 1 && deliver('SIGINT'));
  const ctx = new TestContext_(db, fake);
  try {
    await assert.rejects(runCommand(ctx, 'resume', ['u'], {}), (e: unknown) => e instanceof InterruptedError && e.exitCode === EXIT.interrupted);
  } finally {
    await ctx.close();
  }
  assert.deepEqual(await snapshot(db), before);
  assert.deepEqual(fake.commands, []);
});

test('SIGINT while the engine checks SSH, before the update is running: it pauses before its first server (exit 3)', async (t) => {
  const db = await setup(t);
  const fake = fakeOf(t, (n) => n === 2 && deliver('SIGINT'));
  const ctx = new TestContext_(db, fake);
  let code: number;
  try {
    code = await runCommand(ctx, 'start', ['u'], {});
  } finally {
    await ctx.close();
  }
  assert.equal(code, EXIT.paused);
  const after = await snapshot(db);
  assert.equal(after.status, 'paused');
  // who asked is recorded: the signal, and the user it was sent as
  assert.match(after.reason ?? '', /^pause requested by SIGINT to the executor \([^@\s]+@\S+\)$/);
  assert.equal(after.lease, null);
  assert.deepEqual(after.servers, ['pending', 'pending']);
  assert.deepEqual(fake.commands, [], 'nothing ran on any server');
});

test('without a signal the same start runs to the end (the fake is sound)', async (t) => {
  const db = await setup(t);
  const fake = fakeOf(t, () => {});
  const ctx = new TestContext_(db, fake);
  try {
    assert.equal(await runCommand(ctx, 'start', ['u'], {}), EXIT.ok);
  } finally {
    await ctx.close();
  }
  assert.equal((await snapshot(db)).status, 'success');
  assert.ok(fake.commands.length > 0);
});
