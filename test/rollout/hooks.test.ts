/**
 * The hook runner (rollout/hooks.ts, hook-call.ts) on a real store with real commands and a real
 * local HTTP server: what a command and a webhook receive, the order of the calls, the events
 * filter, failures (a non-zero exit, a 500, a refused connection, a hang cut off at its timeout)
 * journalled and reported, and a required hook on update-started stopping the engine before any
 * server is touched. No sleeps: each test waits on what it checks (drain, a file, a request).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { systemClock } from '../../src/clock.js';
import { systemLiveness } from '../../src/liveness.js';
import { HOOK_EVENT_NAMES } from '../../src/config/hook-events.js';
import type { HookConfig, RolloutSettings } from '../../src/config/types.js';
import { eventObject, ndjsonLine } from '../../src/output/ndjson.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import { GIVE_UP_AFTER, HookRunner } from '../../src/rollout/hooks.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { makeTempDir } from '../helpers/tmp.js';
import { openStore, until } from '../helpers/db.js';
import { FakeTransport } from '../support/fake-transport.js';
import { NEW, OLD, fakeSettings } from '../support/fake-settings.js';

type Failed = Extract<RolloutEvent, { type: 'hook-failed' }>;

async function setup(t: TestContext, hooks: HookConfig[] = [], servers = ['s1']) {
  const dir = makeTempDir('agent-update-hooks-');
  const store = openStore(join(dir, 'p.db'));
  t.after(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const settings: RolloutSettings = { ...fakeSettings, hooks };
  await store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings, testStopAfter: 0,
    servers: servers.map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of await store.getServers('u')) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus('u', 'pending');
  return { dir, store };
}

/** A runner for the hooks of update `u` (every update has `hooks`); what it reported failed. */
function runner(store: Store, hooks: HookConfig[], env: NodeJS.ProcessEnv = process.env) {
  const failed: Failed[] = [];
  const hooksRunner = new HookRunner(() => hooks, {
    store,
    clock: systemClock,
    liveness: systemLiveness,
    emit: (e) => {
      if (e.type === 'hook-failed') failed.push(e);
    },
    encode: (e, at) => ndjsonLine(eventObject(e, at)),
    env,
  });
  return { hooks: hooksRunner, failed };
}

const hook = (over: Partial<HookConfig> & ({ run: string } | { url: string })): HookConfig =>
  ({ timeoutMs: 20_000, required: false, events: ['all'], ...over }) as HookConfig;

const counts = { total: 2, pending: 2 };
const EVENTS: RolloutEvent[] = [
  { type: 'update-started', update: 'u', takeover: false, resumed: false, pending: 2, total: 2, counts },
  { type: 'server-started', update: 'u', server: 's1', index: 1, total: 2, host: 'h', port: 22, user: 'u', fromCommit: OLD, toCommit: NEW },
  { type: 'command', update: 'u', server: 's1', phase: 'update', command: 'git reset --hard x', code: 0, error: null, durationMs: 5 },
  { type: 'server-finished', update: 'u', server: 's1', status: 'rolled-back', error: 'health failed', durationMs: 9, fromCommit: OLD, toCommit: NEW, atCommit: OLD },
  { type: 'server-finished', update: 'u', server: 's2', status: 'success', error: null, durationMs: 9, fromCommit: OLD, toCommit: NEW, atCommit: NEW },
  { type: 'update-finished', update: 'u', status: 'partial-success', reason: 'not at the target: s1 rolled-back', counts: { total: 2, success: 1, 'rolled-back': 1 } },
];

/** Deliver `events` (1 ms apart, so each has its own `at`); returns the lines the stream would write. */
function deliverAll(hooks: HookRunner, events: RolloutEvent[]): string[] {
  const t0 = Date.parse('2026-12-01T10:00:00.000Z');
  return events.map((e, i) => {
    const at = new Date(t0 + i);
    hooks.deliver(e, at);
    return ndjsonLine(eventObject(e, at));
  });
}

test('a command hook gets each event as the stream line on its stdin, in order, with AGENT_UPDATE_ variables', async (t) => {
  const { dir, store } = await setup(t);
  const file = join(dir, 'events.ndjson');
  const vars = join(dir, 'vars');
  const { hooks, failed } = runner(store, [
    hook({ run: `cat >> '${file}'` }),
    hook({ run: `echo "$AGENT_UPDATE_EVENT $AGENT_UPDATE_HOOK_EVENT $AGENT_UPDATE_UPDATE [$AGENT_UPDATE_SERVER] [$AGENT_UPDATE_STATUS]" >> '${vars}'` }),
  ]);
  const lines = deliverAll(hooks, EVENTS);
  await hooks.drain();
  assert.deepEqual(failed, []);
  assert.equal(readFileSync(file, 'utf8'), lines.join(''), 'exactly the lines of the stream, in order');
  assert.deepEqual(readFileSync(vars, 'utf8').trim().split('\n'), [
    'update-started update-started u [] []',
    'server-started server-started u [s1] []',
    'command command u [s1] []',
    'server-finished server-rolled-back u [s1] [rolled-back]',
    'server-finished server-finished u [s2] [success]',
    'update-finished finished u [] [partial-success]',
  ]);
});

test('events: a hook is called only on the events it names; by default the hook events', async (t) => {
  const { dir, store } = await setup(t);
  const log = (name: string) => join(dir, name);
  const { hooks } = runner(store, [
    hook({ run: `cat >> '${log('default')}'`, events: [...HOOK_EVENT_NAMES] }),
    hook({ run: `cat >> '${log('fatal-or-rolled-back')}'`, events: ['server-fatal', 'server-rolled-back'] }),
    hook({ run: `cat >> '${log('every-server')}'`, events: ['server-finished'] }),
    hook({ run: `cat >> '${log('paused')}'`, events: ['paused'] }),
  ]);
  deliverAll(hooks, EVENTS);
  await hooks.drain();
  const types = (name: string) =>
    existsSync(log(name))
      ? readFileSync(log(name), 'utf8').trim().split('\n').map((l) => {
          const o = JSON.parse(l) as { type: string; server?: string; status?: string };
          return `${o.type}${o.server ? ` ${o.server}` : ''}${o.status ? ` ${o.status}` : ''}`;
        })
      : [];
  assert.deepEqual(types('default'), ['update-started', 'server-finished s1 rolled-back', 'update-finished partial-success']);
  assert.deepEqual(types('fatal-or-rolled-back'), ['server-finished s1 rolled-back']);
  assert.deepEqual(types('every-server'), ['server-finished s1 rolled-back', 'server-finished s2 success']);
  assert.deepEqual(types('paused'), []);
});

test('calls of one hook are one at a time, in event order, even when the first is the slowest', async (t) => {
  const { dir, store } = await setup(t);
  const file = join(dir, 'order');
  const gate = join(dir, 'gate');
  // The first call waits until the test opens the gate: a later call made beside it would be written first.
  const { hooks } = runner(store, [
    hook({ run: `t=$(cat | sed 's/.*"type":"\\([a-z-]*\\)".*/\\1/'); if [ "$t" = update-started ]; then until [ -e '${gate}' ]; do sleep 0.02; done; fi; echo "$t" >> '${file}'` }),
  ]);
  deliverAll(hooks, EVENTS.slice(0, 3));
  const drained = hooks.drain();
  assert.equal(existsSync(file), false, 'nothing written while the first call waits');
  writeFileSync(gate, '');
  await drained;
  assert.deepEqual(readFileSync(file, 'utf8').trim().split('\n'), ['update-started', 'server-started', 'command']);
});

test('a failing command is journalled and reported with the end of its output; the rollout is not asked to pause', async (t) => {
  const { store } = await setup(t);
  const { hooks, failed } = runner(store, [hook({ run: 'echo one; echo "two: chat is down" >&2; exit 3', events: ['server-rolled-back'] })]);
  deliverAll(hooks, EVENTS);
  await hooks.drain();
  assert.equal(failed.length, 1);
  assert.deepEqual(
    { ...failed[0], durationMs: 0 },
    {
      type: 'hook-failed', update: 'u', server: 's1', hook: 0, target: 'run: echo one; echo "two: chat is down" >&2; exit 3',
      event: 'server-finished', hookEvent: 'server-rolled-back', required: false, error: 'exit 3: one\ntwo: chat is down', durationMs: 0,
    },
  );
  const journal = (await store.getEvents('u')).filter((e) => e.kind === 'hook');
  assert.deepEqual(journal.map((e) => [e.serverName, e.message]), [['s1', 'hooks[0] (run: echo one; echo "two: chat is down" >&2; exit 3) failed on server-rolled-back of s1: exit 3: one\ntwo: chat is down']]);
  assert.equal((await store.getUpdate('u')).pauseRequestedAt, null);
});

test('a hook that hangs is cut off at its timeout, with what it had printed; its whole process group is killed', async (t) => {
  const { dir, store } = await setup(t);
  const pidFile = join(dir, 'child.pid');
  // a child of the hook's shell that would outlive it, were only the shell killed
  const { hooks, failed } = runner(store, [hook({ run: `sleep 300 & echo $! > '${pidFile}'; echo waiting for the pager; wait`, timeoutMs: 300, events: ['update-started'] })]);
  deliverAll(hooks, EVENTS);
  await hooks.drain();
  assert.equal(failed.length, 1);
  assert.equal(failed[0]!.error, 'timed out after 300ms (its processes were killed): waiting for the pager');
  // the sleep the hook started is killed too: gone, or a zombie left for init to reap
  const child = Number(readFileSync(pidFile, 'utf8'));
  await until(`sleep (pid ${child}) killed`, () => !existsSync(`/proc/${child}/stat`) || /^\d+ \(.*\) Z/.test(readFileSync(`/proc/${child}/stat`, 'utf8')));
  assert.match((await store.getEvents('u')).find((e) => e.kind === 'hook')!.message, /^hooks\[0\] \(run: sleep 300 & .*\) failed on update-started: timed out after 300ms/);
});

test(`a hook that timed out ${GIVE_UP_AFTER} times in a row is not called again in the run`, async (t) => {
  const { dir, store } = await setup(t);
  const calls = join(dir, 'calls');
  const { hooks, failed } = runner(store, [hook({ run: `echo x >> '${calls}'; sleep 300`, timeoutMs: 100 })]);
  deliverAll(hooks, EVENTS);
  await hooks.drain();
  assert.equal(readFileSync(calls, 'utf8').trim().split('\n').length, GIVE_UP_AFTER);
  assert.equal(failed.length, GIVE_UP_AFTER);
  assert.match(failed.at(-1)!.error, new RegExp(`timed out ${GIVE_UP_AFTER} times in a row: not called again in this run$`));
});

/** A local HTTP server on a free port answering each request with `status`; the requests it got. */
async function webhook(t: TestContext, status: (n: number) => number = () => 204) {
  const got: Array<{ method: string; url: string; type: string | undefined; body: string }> = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      got.push({ method: req.method!, url: req.url!, type: req.headers['content-type'], body });
      res.statusCode = status(got.length);
      res.end(res.statusCode >= 400 ? 'the chat service is down for maintenance' : '');
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, got, server };
}

test('a webhook is POSTed the event JSON; ${NAME} in its url is read from the environment', async (t) => {
  const { store } = await setup(t);
  const w = await webhook(t);
  const { hooks, failed } = runner(store, [hook({ url: `${w.base}/hook/\${HOOK_TOKEN}?team=ops`, events: [...HOOK_EVENT_NAMES] })], { HOOK_TOKEN: 's3cret' });
  const lines = deliverAll(hooks, EVENTS);
  await hooks.drain();
  assert.deepEqual(failed, []);
  assert.deepEqual(
    w.got.map((r) => [r.method, r.url, r.type]),
    [0, 1, 2].map(() => ['POST', '/hook/s3cret?team=ops', 'application/json']),
  );
  assert.deepEqual(w.got.map((r) => r.body), [lines[0], lines[3], lines[5]], 'the bodies are the stream lines of the hook events');
  assert.deepEqual(JSON.parse(w.got[1]!.body), { ...eventObject(EVENTS[3]!, new Date(Date.parse('2026-12-01T10:00:00.003Z'))) });
});

test('a webhook that answers 500, one that cannot be reached, one whose variable is not set: failures that never show the url', async (t) => {
  const { store } = await setup(t);
  const w = await webhook(t, () => 500);
  // a port nothing listens on: the server's, once closed
  const closed = await webhook(t);
  await new Promise<void>((resolve) => closed.server.close(() => resolve()));
  const { hooks, failed } = runner(
    store,
    [
      hook({ url: `${w.base}/services/T0/B0/s3cret`, events: ['update-started'] }),
      hook({ url: `${closed.base}/services/\${HOOK_TOKEN}`, events: ['update-started'] }),
      hook({ url: 'https://hooks.example.com/services/${NOT_SET_ANYWHERE}', events: ['update-started'] }),
      // a value that makes it no URL: the error of fetch names it whole
      hook({ url: 'http://${HOOK_HOST}/services/s3cret', events: ['update-started'] }),
    ],
    { HOOK_TOKEN: 's3cret', HOOK_HOST: 'exa mple' },
  );
  deliverAll(hooks, EVENTS);
  await hooks.drain();
  const byHook = Object.fromEntries(failed.map((f) => [f.hook, f]));
  assert.equal(byHook[0]!.error, 'HTTP 500 Internal Server Error: the chat service is down for maintenance');
  assert.equal(byHook[0]!.target, `url: ${w.base}/…`);
  assert.match(byHook[1]!.error, new RegExp(`^could not reach ${closed.base}/…: .*ECONNREFUSED`));
  assert.equal(byHook[2]!.error, 'the environment variable NOT_SET_ANYWHERE (in its url) is not set');
  assert.equal(byHook[3]!.error, 'could not reach http://${HOOK_HOST}/…: Invalid URL');
  const everything = JSON.stringify(failed) + JSON.stringify(await store.getEvents('u'));
  assert.doesNotMatch(everything, /s3cret|services|exa mple/, 'no part of a url after its host is shown or journalled');
});

test('a required hook that fails on update-started pauses the update before any server is touched', async (t) => {
  const { dir, store } = await setup(t, [], ['s1', 's2']);
  const seen = join(dir, 'seen');
  const hooksOfU: HookConfig[] = [
    hook({ run: 'echo "change freeze until Monday" >&2; exit 1', required: true, events: ['update-started'] }),
    hook({ run: `cat >> '${seen}'` }),
  ];
  const events: RolloutEvent[] = [];
  const failed: Failed[] = [];
  const emit = (e: RolloutEvent) => {
    events.push(e);
    if (e.type === 'hook-failed') failed.push(e);
    runnerOf.deliver(e, systemClock.now());
  };
  const runnerOf = new HookRunner(() => hooksOfU, { store, clock: systemClock, liveness: systemLiveness, emit, encode: (e, at) => ndjsonLine(eventObject(e, at)) });
  const fake = new FakeTransport();
  const s1 = fake.add('s1', OLD);
  const s2 = fake.add('s2', OLD);
  const r = await runUpdate({ store, transport: fake, clock: systemClock, liveness: systemLiveness, emit, hooks: runnerOf }, 'u', { mode: 'start' });
  await runnerOf.drain();
  assert.equal(r.status, 'paused');
  assert.equal(r.exitCode, 3);
  assert.match(r.reason, /^pause requested by required hook hooks\[0\] \(run: echo "change freeze until Monday" >&2; exit 1\), which failed on update-started: exit 1: change freeze until Monday \(.+@.+\)$/);
  assert.deepEqual([s1.log, s2.log], [[], []], 'nothing ran on any server');
  assert.deepEqual((await store.getServers('u')).map((s) => s.status), ['pending', 'pending']);
  assert.deepEqual(events.map((e) => e.type), ['update-started', 'hook-failed', 'update-finished']);
  assert.equal(failed[0]!.required, true);
  // the other hook heard the start and the pause
  assert.deepEqual(readFileSync(seen, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { type: string; status?: string }).status ?? 'started'), ['started', 'paused']);
  assert.match((await store.getEvents('u')).find((e) => e.kind === 'hook')!.message, /failed on update-started: exit 1: change freeze until Monday \(required: the update pauses\)$/);

  // Once it passes, resume runs: the hook is asked again, before the servers.
  hooksOfU[0] = hook({ run: 'exit 0', required: true, events: ['update-started'] });
  const again = await runUpdate({ store, transport: fake, clock: systemClock, liveness: systemLiveness, emit, hooks: runnerOf }, 'u', { mode: 'resume' });
  await runnerOf.drain();
  assert.equal(again.status, 'success');
  assert.equal(s1.log.length > 0 && s2.log.length > 0, true);
});

test('a required hook failing on a later event asks for a pause: the update pauses after the server in flight', async (t) => {
  const { store } = await setup(t, [], ['s1', 's2', 's3']);
  const hooksOfU: HookConfig[] = [hook({ run: 'exit 2', required: true, events: ['server-finished'] })];
  const emit = (e: RolloutEvent) => runnerOf.deliver(e, systemClock.now());
  const runnerOf = new HookRunner(() => hooksOfU, { store, clock: systemClock, liveness: systemLiveness, emit, encode: (e, at) => ndjsonLine(eventObject(e, at)) });
  const fake = new FakeTransport();
  const servers = ['s1', 's2', 's3'].map((s) => fake.add(s, OLD));
  // the hook's call on s1's end is made beside the rollout: s2's update waits for it, so the
  // pause is asked while s2 is in flight
  fake.intercept = async (server, command, next) => {
    if (server === 's2' && command.startsWith('reset')) await runnerOf.drain();
    return next();
  };
  const r = await runUpdate({ store, transport: fake, clock: systemClock, liveness: systemLiveness, emit, hooks: runnerOf }, 'u', { mode: 'start' });
  await runnerOf.drain();
  assert.equal(r.status, 'paused');
  assert.match(r.reason, /^pause requested by required hook hooks\[0\] \(run: exit 2\), which failed on server-finished: exit 2/);
  assert.deepEqual((await store.getServers('u')).map((s) => s.status), ['success', 'success', 'pending']);
  assert.deepEqual(servers[2]!.log, []);
});
