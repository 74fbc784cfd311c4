/**
 * Reviewing a plan (issue 12, item 5), on the real sshd fleet: `plan` shows each server's
 * from → to and what the update changes (the commit count and `git log --oneline` from the
 * oldest running commit, read from the source repo); `plan --show-commands` prints every
 * step's commands with the real values filled in and runs nothing; what it showed is what
 * `start` then sends.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { currentCommit, readDeployCount, restartCount } from '../../src/sim/agent.js';
import { openStore, withSqliteFile } from '../helpers/db.js';
import type { PlanChanges } from '../../src/plan/changes.js';
import type { ShownCommands } from '../../src/plan/commands.js';
import type { Fleet } from '../fleet/fleet.js';
import { cli, sharedFleet } from '../helpers/cli.js';

const fleetFor = sharedFleet({ servers: 3, unreachable: 1 });

function git(dir: string, ...args: string[]): string {
  return execFileSync('git', ['-C', dir, ...args], { encoding: 'utf8' }).trim();
}

const short = (c: string) => c.slice(0, 12);
const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Every row of every table: what a command that changes nothing must leave as it was. */
function dump(db: string): string {
  // the file itself (every table, the meta row too): more than the Store reads
  return withSqliteFile(
    db,
    (d) => {
      const tables = d.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all() as string[];
      return JSON.stringify(tables.map((t) => [t, d.prepare(`SELECT * FROM "${t}" ORDER BY rowid`).all()]));
    },
    { readonly: true },
  );
}

/**
 * A TCP relay on a free loopback port to one fleet server, counting the connections made to it:
 * a server reached through it shows whether anything connected at all. Its host key is the
 * fleet's, listed for the relay's address in the known_hosts file returned.
 */
async function countingRelay(t: TestContext, fleet: Fleet, to: string): Promise<{ port: number; knownHosts: string; connections: () => number }> {
  const target = fleet.server(to);
  let count = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    count++;
    const upstream = net.connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => undefined);
      s.on('close', () => sockets.delete(s));
    }
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    for (const s of sockets) s.destroy();
    server.close();
  });
  const port = (server.address() as net.AddressInfo).port;
  const lines = readFileSync(fleet.knownHosts, 'utf8');
  const key = lines.split('\n')[0]!.split(' ').slice(1).join(' ');
  const knownHosts = join(fleet.root, 'known_hosts_relay');
  writeFileSync(knownHosts, `${lines.trimEnd()}\n[127.0.0.1]:${port} ${key}\n`);
  return { port, knownHosts, connections: () => count };
}

test('plan shows from → to per server, and the commit count and git log --oneline from the oldest running commit', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, unreachable: 1 });
  if (!fleet) return;
  const { commits, repo } = fleet.upstream;
  let tip = '';
  for (let i = 1; i <= 12; i++) tip = await fleet.upstream.addCommit('long', { message: `long ${i}: change number ${i}` });
  await fleet.setCommit('s2', commits.good);
  // the agent's checkout has only what master reaches: it fetches the branch first
  assert.equal((await fleet.sh('s3', `git -C ~/agent/repo fetch --quiet ${repo} long`)).code, 0);
  await fleet.setCommit('s3', tip);
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '-c', fleet.writeConfig({ name: 'u1', source: { branch: 'long' } })], { db });
  assert.equal(r.code, 0, r.stderr);
  const expectedCount = Number(git(repo, 'rev-list', '--count', `${commits.base}..${tip}`));
  assert.equal(expectedCount, 13);
  // git log of the fleet's own repo: the newest ten, then how many more
  const expectedLog = git(repo, 'log', '--max-count=10', '--format=%H %s', `${commits.base}..${tip}`).split('\n');
  const text = r.stdout;
  assert.match(text, new RegExp(`^  changes  13 commits from ${short(commits.base)} \\(the oldest running, on s1\\) to ${short(tip)}, newest first:$`, 'm'));
  const shown = [...text.matchAll(/^ {11}([0-9a-f]{7,40}) (.*)$/gm)].map((m) => [m[1]!, m[2]!]);
  assert.equal(shown.length, 10, text);
  shown.forEach(([abbrev, subject], i) => {
    const [full, ...words] = expectedLog[i]!.split(' ');
    assert.ok(full!.startsWith(abbrev!), `${abbrev} is not ${full}`);
    assert.equal(subject, words.join(' '));
  });
  assert.match(text, /^ {11}… and 3 more$/m);
  assert.match(text, new RegExp(`^ {11}also at ${short(commits.good)} \\(s2\\): 12 commits behind the target$`, 'm'));
  assert.match(text, /^ {11}already at the target: s3$/m);
  // each server: its commit → the target; skipped at it; unreachable: nothing known
  assert.match(text, new RegExp(`^s1 .* pending +${short(commits.base)} → ${short(tip)} +13 commits$`, 'm'));
  assert.match(text, new RegExp(`^s2 .* pending +${short(commits.good)} → ${short(tip)} +12 commits$`, 'm'));
  assert.match(text, new RegExp(`^s3 .* skipped +${short(tip)} \\(at the target\\)$`, 'm'));
  assert.match(text, /^u1 .* unreachable +- +cannot connect/m);
  assert.match(text, new RegExp(`the exact commands it will send: agent-update --db ${escape(db)} plan --show-commands u1`));

  // --json: the same as `changes`
  const j = await cli(['plan', '--json', '-c', fleet.writeConfig({ name: 'u2', source: { branch: 'long' } })], { db: join(fleet.root, 'json.db') });
  assert.equal(j.code, 0, j.stderr);
  const changes = (JSON.parse(j.stdout) as { changes: PlanChanges }).changes;
  assert.equal(changes.from, commits.base);
  assert.equal(changes.to, tip);
  assert.equal(changes.commits, expectedCount);
  assert.deepEqual(changes.log.map((e) => `${e.commit} ${e.subject}`), expectedLog);
  assert.equal(changes.more, 3);
  assert.equal(changes.error, null);
  assert.deepEqual(
    changes.running.map((x) => [x.commit, x.servers, x.relation, x.behind]),
    [
      [commits.base, ['s1'], 'behind', 13],
      [commits.good, ['s2'], 'behind', 12],
      [tip, ['s3'], 'target', 0],
    ],
  );
});

test('a plan in which no server could be reached exits 69 (recorded), says why and what to do, and suggests no start; so does a refresh that reaches none', async (t) => {
  const fleet = await fleetFor(t, { servers: 3, unreachable: 1 });
  if (!fleet) return;
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '-c', fleet.writeConfig({ name: 'none', include: ['u*'] })], { db });
  assert.equal(r.code, 69, r.stdout + r.stderr);
  assert.doesNotMatch(r.stdout, /run it with: .*start none/);
  assert.match(r.stderr, /no server of none could be reached \(1 server unreachable\), so there is nothing to start\. The plan is recorded\. Reasons:\n {2}.*cannot connect/);
  assert.match(r.stderr, /then probe them again with `.*plan --refresh none`; or remove the plan with `.*forget none`/);
  const q = await cli(['-q', 'plan', '-c', fleet.writeConfig({ name: 'none-q', include: ['u*'] })], { db });
  assert.equal(q.code, 69);
  assert.equal(q.stdout.trim(), 'none-q', 'with -q the name alone on stdout, as for any plan');
  const refresh = await cli(['plan', '--refresh', 'none'], { db });
  assert.equal(refresh.code, 69, refresh.stdout + refresh.stderr);
  assert.match(refresh.stderr, /no server of none could be reached/);
});

test('a downgrade and a commit the source repo does not have are said plainly, with no count', async (t) => {
  const fleet = await fleetFor(t, { servers: 3 });
  if (!fleet) return;
  const { commits, repo } = fleet.upstream;
  await fleet.setCommit('s1', commits.good2);
  const local = await fleet.sh('s2', 'git -C ~/agent/repo -c user.name=t -c user.email=t@x commit --quiet --allow-empty -m "made on the server" && git -C ~/agent/repo rev-parse HEAD');
  assert.equal(local.code, 0, local.stderr);
  const unknown = local.stdout.trim();
  const db = join(fleet.root, 'plan.db');
  const r = await cli(['plan', '-c', fleet.writeConfig({ name: 'u1' })], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`^  changes  1 commit from ${short(commits.base)} \\(the oldest running, on s3\\) to ${short(commits.good)}, newest first:$`, 'm'));
  assert.match(r.stdout, new RegExp(`^ {11}${short(commits.good2)} \\(s1\\) is not an ancestor of the target: a downgrade, it has 1 commit the target does not$`, 'm'));
  assert.match(r.stdout, new RegExp(`^ {11}${short(unknown)} \\(s2\\) is not on any branch or tag of ${escape(repo)}: no count$`, 'm'));
  assert.match(r.stdout, /^s1 .* pending +\S+ → \S+ +downgrade: drops 1 commit$/m);
  assert.match(r.stdout, /^s2 .* pending +\S+ → \S+ +commit unknown to the source repo$/m);
});

test('a source repo whose history cannot be fetched is a warning: the plan is made, with from → to', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits, repo } = fleet.upstream;
  // its refs without its objects: `git ls-remote` (the target) works, a fetch cannot
  const mirror = join(fleet.root, 'refs-only.git');
  execFileSync('git', ['clone', '--quiet', '--mirror', repo, mirror]);
  rmSync(join(mirror, 'objects'), { recursive: true, force: true });
  execFileSync('git', ['init', '--quiet', '--bare', mirror]);
  assert.match(git(mirror, 'ls-remote', '--heads', mirror), new RegExp(commits.good));
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ name: 'u1', source: { repo: mirror } });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /^warning: cannot read what the update changes \(the commits between the running commits and the target\) from .*refs-only\.git: git fetch failed: .+; the plan is made without it$/m);
  assert.match(r.stdout, /^ {2}changes {2}not read from the source repo: git fetch failed: /m);
  assert.match(r.stdout, new RegExp(`^s1 .* pending +${short(commits.base)} → ${short(commits.good)}`, 'm'));
  assert.match(r.stdout, /planned update u1; run it with/);
  const j = await cli(['plan', '--json', '-c', config, '--name', 'u2'], { db });
  assert.equal(j.code, 0, j.stderr);
  const doc = JSON.parse(j.stdout) as { status: string; changes: PlanChanges; warnings: string[] };
  assert.equal(doc.status, 'pending');
  assert.match(doc.changes.error ?? '', /^git fetch failed: /);
  assert.equal(doc.changes.commits, null);
  assert.deepEqual(doc.changes.running.map((x) => [x.servers, x.relation]), [[['s1', 's2'], null]]);
  assert.ok(doc.warnings.some((w) => w.startsWith('cannot read what the update changes')), doc.warnings.join('\n'));
});

test('plan --show-commands NAME: every step with the real values, nothing run; start then sends exactly those', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits, repo } = fleet.upstream;
  const { base, good, broken } = commits;
  // the values stand bare where they are words of their own
  assert.match(repo, /^[A-Za-z0-9_@%+:,./-]+$/);
  await fleet.setCommit('s2', good);
  // p1 is s1 reached through a relay that counts connections
  const relay = await countingRelay(t, fleet, 's1');
  const config = fleet.writeConfig({
    name: 'u1',
    source: { branch: 'broken' },
    servers: [
      { name: 'p1', host: '127.0.0.1', port: relay.port, type: 'app' },
      { name: 's2', host: fleet.server('s2').host, type: 'db' },
    ],
    ssh: { known_hosts: relay.knownHosts },
    agent: {
      update: [
        'git -C ~/agent/repo fetch --quiet {repo} {branch}',
        'git -C ~/agent/repo reset --hard --quiet {commit}',
        'echo "from {previous_commit} to {commit}" >> ~/agent/transitions.log',
      ],
      health: { timeout: '300ms', interval: '100ms' },
    },
    restart: ['web', 'workers'],
    rollback: { continue_after_rollback: true },
  });
  const db = join(fleet.root, 'plan.db');
  const planned = await cli(['plan', '-c', config], { db });
  assert.equal(planned.code, 0, planned.stderr);
  const probes = relay.connections();
  assert.ok(probes >= 1, 'the plan probed p1 through the relay');
  const before = dump(db);
  const restarts = ['s1', 's2'].map((s) => restartCount(fleet.home(s), 'web'));

  const j = await cli(['plan', '--show-commands', 'u1', '--json'], { db });
  assert.equal(j.code, 0, j.stderr);
  const text = await cli(['plan', '--show-commands', 'u1'], { db });
  assert.equal(text.code, 0, text.stderr);
  // nothing ran: no connection, the database as it was, the servers as they were
  assert.equal(relay.connections(), probes, 'show-commands connected to a server');
  assert.equal(dump(db), before, 'show-commands changed the database');
  for (const [i, [home, at]] of ([['s1', base], ['s2', good]] as const).entries()) {
    assert.equal(currentCommit(fleet.home(home)), at);
    assert.equal(readDeployCount(fleet.home(home)), 0);
    assert.equal(restartCount(fleet.home(home), 'web'), restarts[i]);
    assert.equal(existsSync(join(fleet.home(home), 'agent', 'transitions.log')), false);
  }

  const V = 'git -C ~/agent/repo rev-parse HEAD';
  const expected = (from: string) => [
    { step: 'recheck', kind: 'version', command: V, expect: null },
    { step: 'update', kind: 'update', command: `git -C ~/agent/repo fetch --quiet ${repo} broken` },
    { step: 'update', kind: 'update', command: `git -C ~/agent/repo reset --hard --quiet ${broken}` },
    { step: 'update', kind: 'update', command: `echo "from ${from} to ${broken}" >> ~/agent/transitions.log` },
    { step: 'update', kind: 'version', command: V, expect: broken },
    { step: 'restart', kind: 'restart', name: 'web', command: '~/agent/bin/restart web' },
    { step: 'restart', kind: 'restart', name: 'workers', command: '~/agent/bin/restart workers' },
    { step: 'verify', kind: 'health', command: '~/agent/bin/health', expect: broken },
    { step: 'rollback', kind: 'update', command: `git -C ~/agent/repo fetch --quiet ${repo} broken` },
    { step: 'rollback', kind: 'update', command: `git -C ~/agent/repo reset --hard --quiet ${from}` },
    { step: 'rollback', kind: 'update', command: `echo "from ${broken} to ${from}" >> ~/agent/transitions.log` },
    { step: 'rollback', kind: 'version', command: V, expect: from },
    { step: 'rollback', kind: 'restart', name: 'web', command: '~/agent/bin/restart web' },
    { step: 'rollback', kind: 'restart', name: 'workers', command: '~/agent/bin/restart workers' },
    { step: 'verify-rollback', kind: 'health', command: '~/agent/bin/health', expect: from },
  ];
  const doc = JSON.parse(j.stdout) as ShownCommands;
  assert.equal(doc.update, 'u1');
  assert.deepEqual(doc.source, { repo, branch: 'broken', commit: broken });
  assert.deepEqual(doc.unknown, []);
  assert.deepEqual(doc.groups, [
    { servers: ['p1'], fromCommit: base, commands: expected(base) },
    { servers: ['s2'], fromCommit: good, commands: expected(good) },
  ]);
  // the text: a heading per group, each command on its own line after its step
  assert.match(text.stdout, new RegExp(`^1 server: p1, at ${short(base)}$`, 'm'));
  assert.match(text.stdout, new RegExp(`^1 server: s2, at ${short(good)}$`, 'm'));
  assert.match(text.stdout, new RegExp(`^  update {11}git -C ~/agent/repo fetch --quiet ${escape(repo)} broken$`, 'm'));
  assert.match(text.stdout, new RegExp(`^ {19}echo "from ${base} to ${broken}" >> ~/agent/transitions\\.log$`, 'm'));
  assert.match(text.stdout, new RegExp(`^ {19}${escape(V)} {4}# must print ${base}$`, 'm'));
  assert.match(text.stdout, new RegExp(`^  verify {11}~/agent/bin/health {4}# every 100ms until its output contains "${broken}", for up to 300ms$`, 'm'));
  assert.match(text.stdout, new RegExp(`^  verify-rollback  ~/agent/bin/health {4}# every 100ms until its output contains "${good}"`, 'm'));

  // what start sends, as the journal recorded it, is what was shown (health attempts once each)
  const started = await cli(['start', 'u1'], { db });
  assert.equal(started.code, 1, started.stdout + started.stderr);
  assert.ok(relay.connections() > probes, 'the relay counts the connections start makes');
  const store = openStore(db);
  try {
    for (const s of await store.getServers('u1')) assert.equal(s.status, 'rolled-back', `${s.name}: ${s.error}`);
    for (const g of doc.groups) {
      const sent = (await store.getJournal('u1', g.servers[0]))
        // the plan's probe came before; the lock's release is the executor's own
        .filter((st) => st.phase !== 'probe' && st.phase !== 'unlock')
        .map((st) => `${st.phase}: ${st.command.replace(/^\(take the agent-update lock\) && /, '')}`)
        .filter((line, i, all) => line !== all[i - 1]);
      assert.deepEqual(sent, g.commands.map((c) => `${c.step}: ${c.command}`));
    }
  } finally {
    await store.close();
  }
});

test('plan -c FILE --show-commands: no server contacted, no database made, <previous_commit> where each server\'s goes', async (t) => {
  const fleet = await fleetFor(t, { servers: 2 });
  if (!fleet) return;
  const { commits, repo } = fleet.upstream;
  const relay = await countingRelay(t, fleet, 's1');
  const config = fleet.writeConfig({
    servers: [
      { name: 'p1', host: '127.0.0.1', port: relay.port, type: 'app' },
      { name: 's2', host: fleet.server('s2').host, type: 'db' },
    ],
    ssh: { known_hosts: relay.knownHosts },
  });
  const db = join(fleet.root, 'never.db');
  const j = await cli(['plan', '-c', config, '--show-commands', '--json'], { db });
  assert.equal(j.code, 0, j.stderr);
  const r = await cli(['plan', '-c', config, '--show-commands'], { db });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(relay.connections(), 0, 'a server was contacted');
  assert.equal(existsSync(db), false, 'a database was made');
  const doc = JSON.parse(j.stdout) as ShownCommands;
  assert.equal(doc.update, null);
  assert.equal(doc.source.commit, commits.good, 'the target is resolved from the source repo');
  assert.deepEqual(doc.unknown, ['previous_commit']);
  assert.equal(doc.groups.length, 1);
  assert.deepEqual(doc.groups[0]!.servers, ['p1', 's2']);
  const rollback = doc.groups[0]!.commands.filter((c) => c.step === 'rollback').map((c) => c.command);
  assert.deepEqual(rollback, [
    `git -C ~/agent/repo fetch --quiet ${repo} master`,
    'git -C ~/agent/repo reset --hard --quiet <previous_commit>',
    'echo <previous_commit> >> ~/agent/deploys.log',
    'git -C ~/agent/repo rev-parse HEAD',
    '~/agent/bin/restart web',
  ]);
  assert.match(r.stdout, /^every server the config selects \(2\): p1, s2$/m);
  assert.match(r.stdout, new RegExp(`^ {19}git -C ~/agent/repo reset --hard --quiet ${commits.good}$`, 'm'));
  assert.match(r.stdout, /^ {19}git -C ~\/agent\/repo reset --hard --quiet <previous_commit>$/m);
  assert.match(r.stdout, /<previous_commit> stands for each server's commit/);
  // with a name too, or a refresh: refused
  const both = await cli(['plan', '-c', config, '--show-commands', 'u1'], { db });
  assert.equal(both.code, 2);
  const named = await cli(['plan', '-c', config, '--show-commands', '--name', 'x'], { db });
  assert.equal(named.code, 2);
  assert.equal(existsSync(db), false);
});
