/**
 * Deploy freezes (issue 25): the repo key (model/freeze.ts), the refusal of `start`/`resume`
 * (plan/freeze.ts refuseIfFrozen, exit 3, nothing written), the executor pausing before its next
 * server when a freeze lands mid-rollout (the server in flight finishes; the test-mode limit is
 * kept for the resume), `auto`'s claim refusing a frozen repo (nothing written) and resuming what
 * a freeze since lifted paused. runUpdate runs on a real store with the fake transport.
 */
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { EXIT, FrozenError } from '../../src/errors.js';
import { systemLiveness, type Liveness } from '../../src/liveness.js';
import { freezePauseReason, isFreezePause, repoKey } from '../../src/model/freeze.js';
import { claimAuto, existingWork } from '../../src/plan/auto.js';
import { freezeRepo, refuseIfFrozen, unfreezeRepo } from '../../src/plan/freeze.js';
import { planInput, recordPlan } from '../../src/plan/plan.js';
import type { RolloutEvent } from '../../src/rollout/events.js';
import { testModeLimit } from '../../src/rollout/rules.js';
import { runUpdate } from '../../src/rollout/run.js';
import type { Store } from '../../src/store/port.js';
import { base, ok } from '../config/helpers.js';
import { contents, openStore } from '../helpers/db.js';
import { tempDirFor } from '../helpers/tmp.js';
import { fakeSettings, NEW, OLD } from '../support/fake-settings.js';
import { FakeTransport } from '../support/fake-transport.js';
import { systemClock } from '../../src/clock.js';

test('repoKey: the forms of one repo a team writes are one key; other repos, hosts and paths are not', () => {
  const one = [
    'https://github.com/example/agent',
    'https://github.com/example/agent.git',
    'https://GitHub.com/example/agent/',
    'https://user:token@github.com/example/agent.git',
    'ssh://git@github.com/example/agent.git',
    'ssh://git@github.com:22/example/agent',
    'git@github.com:example/agent.git',
    'github.com:example/agent',
    'git://github.com/example/agent.git',
  ];
  for (const r of one) assert.equal(repoKey(r), 'github.com/example/agent', r);
  assert.notEqual(repoKey('https://github.com/example/Agent'), repoKey('https://github.com/example/agent'), 'the path keeps its case');
  assert.notEqual(repoKey('https://gitlab.com/example/agent'), repoKey('https://github.com/example/agent'));
  assert.notEqual(repoKey('https://github.com/example/agent-2'), repoKey('https://github.com/example/agent'));
  assert.equal(repoKey('/srv/git/agent.git'), '/srv/git/agent');
  assert.equal(repoKey('file:///srv/git/agent.git/'), '/srv/git/agent');
  assert.equal(repoKey('/srv/git/agent/'), '/srv/git/agent');
  assert.equal(repoKey('ssh://git@[::1]:2222/srv/agent.git'), '[::1]/srv/agent');
});

test('the pause reason of a freeze names who, when and why; a resume keeps the test-mode limit it stopped short of', () => {
  const f = { repo: 'https://h/agent', frozenBy: 'alice@laptop', frozenAt: '2026-03-01T10:00:00.000Z', reason: 'incident 42' };
  const reason = freezePauseReason(f);
  assert.equal(reason, 'deploys are frozen (https://h/agent) by alice@laptop at 2026-03-01T10:00:00.000Z: incident 42');
  assert.ok(isFreezePause(reason));
  assert.ok(!isFreezePause('pause requested by op@desk') && !isFreezePause(null));
  const paused = { status: 'paused' as const, stopAtWorked: 3, stopFromWorked: 1, testStopAfter: 2 };
  assert.deepEqual(testModeLimit({ ...paused, reason }, 2), { stopAtWorked: 3, stopFromWorked: 1 });
  assert.deepEqual(testModeLimit({ ...paused, reason: 'pause requested by op@desk' }, 2), { stopAtWorked: null, stopFromWorked: null });
});

async function setup(t: TestContext, names: string[], testStopAfter = 0) {
  const store = openStore(join(tempDirFor(t, 'agent-update-freeze-'), 'p.db'));
  t.after(() => store.close());
  await store.createUpdate({
    name: 'u', repo: 'git@host:org/agent.git', branch: 'master', commit: NEW, configFile: '/etc/rollout.yaml', settings: fakeSettings, testStopAfter,
    servers: names.map((name) => ({ name, host: name, port: 22, user: 'u', type: 'app' })),
  });
  for (const s of await store.getServers('u')) await store.setProbedCommit(s.id, OLD);
  await store.setUpdateStatus('u', 'pending');
  const fake = new FakeTransport();
  for (const n of names) fake.add(n, OLD);
  return { store, fake };
}

function deps(store: Store, fake: FakeTransport, events: RolloutEvent[] = [], live: Liveness = systemLiveness) {
  return { store, transport: fake, clock: systemClock, liveness: live, emit: (e: RolloutEvent) => void events.push(e) };
}

const statuses = async (store: Store) => Object.fromEntries((await store.getServers('u')).map((s) => [s.name, s.status]));
const freeze = (store: Store, reason = 'incident 42') => freezeRepo(store, { repo: 'https://host/org/agent', configFile: '/etc/rollout.yaml', reason, by: 'alice@laptop' });

test('start and resume of an update whose repo is frozen: refused with exit 3 naming who, when and why; nothing written', async (t) => {
  const { store } = await setup(t, ['s1']);
  const u = await store.getUpdate('u');
  await refuseIfFrozen(store, [u], 'start'); // not frozen: nothing to say
  const { freeze: f } = await freeze(store);
  const before = await contents(store);
  await assert.rejects(refuseIfFrozen(store, [u], 'start'), (e: unknown) => {
    assert.ok(e instanceof FrozenError);
    assert.equal(e.exitCode, EXIT.paused);
    assert.equal(
      e.message,
      `cannot start u: deploys of https://host/org/agent are frozen by alice@laptop at ${f.frozenAt}: incident 42; nothing was started or changed. ` +
        'Lift the freeze with `agent-update unfreeze -c /etc/rollout.yaml`',
    );
    return true;
  });
  assert.deepEqual(await contents(store), before, 'nothing written');
  await unfreezeRepo(store, 'git@host:org/agent', 'bob@desk');
  await refuseIfFrozen(store, [u], 'start');
});

test('a freeze that lands while a server is in flight: that server finishes, the update pauses before the next (exit 3); resumed once lifted', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2', 's3'], 2);
  let frozen = false;
  fake.intercept = async (server, command, next) => {
    // from "another machine": the freeze is committed while s1 restarts
    if (server === 's1' && command.includes('restart') && !frozen) {
      frozen = true;
      await freeze(store);
    }
    return next();
  };
  const events: RolloutEvent[] = [];
  const r = await runUpdate(deps(store, fake, events), 'u', { mode: 'start' });
  assert.equal(r.status, 'paused');
  assert.equal(r.exitCode, EXIT.paused);
  assert.match(r.reason, /^deploys are frozen \(https:\/\/host\/org\/agent\) by alice@laptop at \S+: incident 42$/);
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'pending', s3: 'pending' });
  assert.deepEqual(fake.servers.get('s2')!.log, [], 'nothing sent to the next server');
  assert.equal(fake.lockOf('s1'), null, "the finished server's lock released");
  const journalled = (await store.getEvents('u')).find((e) => e.kind === 'frozen');
  assert.deepEqual(journalled && [journalled.message, journalled.actor], [r.reason, 'alice@laptop'], 'the pause journalled for logs, with who froze');
  // and the freeze itself, as the update's event (it was unfinished when frozen)
  const froze = (await store.getEvents('u')).find((e) => e.kind === 'freeze');
  assert.match(froze?.message ?? '', /^deploys of https:\/\/host\/org\/agent frozen by alice@laptop at \S+: incident 42$/);
  assert.equal(froze?.actor, 'alice@laptop');
  assert.deepEqual(events.filter((e) => e.type === 'update-finished').map((e) => e.type === 'update-finished' && e.reason), [r.reason]);
  // the test-mode limit (stop after 2) is kept for the resume
  assert.equal((await store.getUpdate('u')).stopAtWorked, 2);

  // still frozen: a resume refused by the command, and the engine itself pauses again before any server
  await assert.rejects(refuseIfFrozen(store, [await store.getUpdate('u')], 'resume'), FrozenError);
  const again = await runUpdate(deps(store, fake), 'u', { mode: 'resume' });
  assert.equal(again.status, 'paused');
  assert.deepEqual(fake.servers.get('s2')!.log, []);

  // lifted: the resume goes on to the test-mode limit it was started with
  await unfreezeRepo(store, 'https://host/org/agent', 'bob@desk');
  assert.deepEqual((await store.getEvents('u')).filter((e) => e.kind === 'unfreeze').map((e) => e.actor), ['bob@desk']);
  const resumed = await runUpdate(deps(store, fake), 'u', { mode: 'resume' });
  assert.equal(resumed.status, 'paused');
  assert.equal(resumed.reason, 'test mode: 2 servers finished');
  assert.deepEqual(await statuses(store), { s1: 'success', s2: 'success', s3: 'pending' });
});

test('a freeze of another repo changes nothing', async (t) => {
  const { store, fake } = await setup(t, ['s1', 's2']);
  await freezeRepo(store, { repo: 'git@host:org/other', configFile: null, reason: 'x', by: 'alice@laptop' });
  await refuseIfFrozen(store, [await store.getUpdate('u')], 'start');
  const r = await runUpdate(deps(store, fake), 'u', { mode: 'start' });
  assert.equal(r.status, 'success');
});

test('auto: a frozen repo is refused in the claim, nothing written; an update a freeze paused is resumed by auto once the freeze is lifted', async (t) => {
  const store = openStore(join(tempDirFor(t, 'auto-freeze-'), 'plan.db'));
  t.after(() => store.close());
  const config = ok(base());
  const now = new Date();
  const COMMIT = 'a'.repeat(40);
  await freezeRepo(store, { repo: config.source.repo, configFile: config.file, reason: 'release day', by: 'alice@laptop' });
  const before = await contents(store);
  const found = await claimAuto(store, config, COMMIT, null, now, systemLiveness);
  assert.equal(found.kind, 'frozen');
  assert.equal(found.kind === 'frozen' ? found.freeze.reason : null, 'release day');
  assert.deepEqual(await contents(store), before, 'no claim, no plan');

  // an update of the config that a freeze paused: auto's to resume, once lifted
  await recordPlan(store, planInput(config, 'nightly', COMMIT, null));
  await store.setUpdateStatus('nightly', 'pending');
  await store.setUpdateStatus('nightly', 'running');
  const f = (await store.activeFreeze(repoKey(config.source.repo)))!;
  await store.setUpdateStatus('nightly', 'paused', { reason: freezePauseReason(f) });
  assert.equal((await claimAuto(store, config, COMMIT, null, now, systemLiveness)).kind, 'frozen', 'still frozen: refused first');
  await unfreezeRepo(store, config.source.repo, 'bob@desk');
  assert.equal((await existingWork(store, config.file, now, systemLiveness))?.kind, 'window-paused');
  const claim = await claimAuto(store, config, COMMIT, null, now, systemLiveness);
  assert.deepEqual(claim.kind === 'start' ? { names: claim.names, resume: claim.resume } : claim, { names: ['nightly'], resume: true });
});
