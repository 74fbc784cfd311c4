/**
 * ServerSpec.sources (for `agent-update servers`): where each way-of-reaching value was decided,
 * in memory only: non-enumerable, so no JSON (the plan database's ssh_json among them) and no
 * copy of a spec carries it. The CLI cases (inventory, ssh config) are in test/cli/servers.e2e.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../src/config/load.js';
import { validateConfig } from '../../src/config/validate.js';
import { base, ctx } from './helpers.js';
import { makeTempDir } from '../helpers/tmp.js';

test('sources name the entry key, or the ssh block, and are not enumerable', () => {
  const raw = { ...base(), ssh: { identity_file: 'keys/deploy', jump: 'bastion.example.com' } };
  const r = validateConfig(raw, ctx());
  assert.ok('config' in r, JSON.stringify(r));
  const [app1, db1] = r.config.servers;
  assert.deepEqual(app1!.sources, {
    host: 'servers[0].host',
    port: 'ssh.port not set: 22',
    user: 'ssh.user not set: the current user',
    identityFiles: 'ssh.identity_file',
    knownHosts: 'ssh.known_hosts not set: ~/.ssh/known_hosts',
    jump: 'ssh.jump',
  });
  assert.equal(db1!.sources?.port, 'servers[1].port');
  assert.equal(db1!.sources?.user, 'servers[1].user');
  assert.ok(!Object.keys(app1!).includes('sources'));
  assert.doesNotMatch(JSON.stringify(r.config), /sources/);
  assert.equal({ ...app1! }.sources, undefined);
});

test('a value from the site defaults is named with the defaults file and line', () => {
  const dir = makeTempDir('agent-update-sources-');
  mkdirSync(join(dir, 'site'));
  writeFileSync(join(dir, 'known_hosts'), '');
  writeFileSync(join(dir, 'site', 'defaults.yml'), 'ssh:\n  user: deploy\n');
  writeFileSync(
    join(dir, 'c.yml'),
    `source: { repo: https://github.com/example/agent, branch: master }
servers: [{ name: app1, host: 10.0.0.11 }]
ssh: { known_hosts: known_hosts }
agent: { version_command: v, update: [u], health: { command: h } }
`,
  );
  const c = loadConfig(join(dir, 'c.yml'), { env: { HOME: dir, USER: 'op' }, defaults: join(dir, 'site', 'defaults.yml') });
  assert.equal(c.servers[0]!.user, 'deploy');
  assert.equal(c.servers[0]!.sources?.user, `ssh.user (${join(dir, 'site', 'defaults.yml')}:2)`);
  assert.equal(c.servers[0]!.sources?.knownHosts, 'ssh.known_hosts');
});
