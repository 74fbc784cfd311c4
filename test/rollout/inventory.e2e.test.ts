/**
 * `inventory:` end to end: the real CLI plans from an Ansible INI inventory of a real sshd fleet,
 * connecting with the inventory's ansible_host, ansible_port and ansible_user (the config's own
 * ssh.port and ssh.user are wrong on purpose), and selecting by groups and names.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { byName, cli, fleetFor, statusJson } from '../helpers/cli.js';

test('plan -c CONFIG with an INI inventory: the servers and types the groups give, probed where the inventory says', async (t) => {
  const fleet = await fleetFor(t, { servers: 4 });
  if (!fleet) return;
  const [s1, s2, s3, s4] = fleet.servers as [typeof fleet.servers[0], typeof fleet.servers[0], typeof fleet.servers[0], typeof fleet.servers[0]];
  const inventory = join(fleet.root, 'configs', 'hosts.ini');
  writeFileSync(
    inventory,
    [
      '# the fleet as Ansible would know it',
      '[app]',
      `a1 ansible_host=${s1.host}`,
      `a2 ansible_host=${s2.host} ansible_user=${s2.user}`,
      '',
      '[db]',
      `d1 ansible_host=${s3.host} ansible_port=${s3.port}`,
      'a1',
      '',
      '[workers]',
      `w1 ansible_ssh_host=${s4.host}`,
      '',
      '[backend:children]',
      'db',
      'workers',
      '',
      '[all:vars]',
      `ansible_port=${fleet.port}`,
      `ansible_user=${s1.user}`,
      '',
    ].join('\n'),
  );
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({
    name: 'inv',
    servers: undefined,
    inventory: 'hosts.ini',
    server_types: ['backend'],
    exclude: 'w*',
    // Wrong on purpose: every host gets its port and user from the inventory.
    ssh: { port: 1, user: 'no-such-user' },
  });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 0, r.stdout + r.stderr);

  const doc = await statusJson(db, 'inv');
  assert.deepEqual(
    doc.servers.map((s) => [s.name, s.host, s.type, s.types]),
    [
      ['a1', s1.host, 'app', ['app', 'db', 'backend']],
      ['d1', s3.host, 'db', ['db', 'backend']],
    ],
    'a2 is not in backend, w1 is excluded; a1 is in backend through db',
  );
  const s = byName(doc);
  for (const name of ['a1', 'd1']) {
    assert.equal(s[name]!.status, 'pending', `${name}: ${s[name]!.error}`);
    assert.equal(s[name]!.fromCommit, fleet.upstream.commits.base, `${name} was probed over SSH at the inventory's address, port and user`);
  }
  const text = await cli(['status', 'inv'], { db });
  assert.equal(text.code, 0, text.stderr);
  assert.match(text.stdout, /a1 .* app,db,backend /);
});

test('plan -c CONFIG with a broken inventory: exit 2, the inventory file and line named, no database', async (t) => {
  const fleet = await fleetFor(t, { servers: 1 });
  if (!fleet) return;
  const inventory = join(fleet.root, 'configs', 'hosts.ini');
  writeFileSync(inventory, `[app]\na1 ansible_host=${fleet.servers[0]!.host}\n[app:vars]\nansible_port=twenty-two\n`);
  const db = join(fleet.root, 'plan.db');
  const config = fleet.writeConfig({ servers: undefined, inventory: 'hosts.ini' });
  const r = await cli(['plan', '-c', config], { db });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.ok(
    r.stderr.includes(`${inventory}:4: [app:vars] ansible_port: must be a port number (an integer 1 to 65535), got the string "twenty-two"`),
    r.stderr,
  );
  const missing = fleet.writeConfig({ servers: undefined, inventory: 'nope.ini' });
  const m = await cli(['plan', '-c', missing], { db });
  assert.equal(m.code, 2);
  assert.match(m.stderr, new RegExp(`${missing.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+: inventory: file not found: .*nope\\.ini`));
  const status = await cli(['status'], { db });
  assert.equal(status.code, 2, 'no database was created');
});
