/**
 * Reading an ssh config runs no local program and makes no DNS query (issue 21, item 7): with a
 * fake `nslookup` (and `host`, `dig`) first on the PATH, each writing a marker, every command that
 * loads a config reads one whose `Host *` asks for CanonicalizeHostName with CanonicalDomains and
 * has a `Match exec` setting a User; none of the fakes, nor the exec, may run.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { cli } from '../helpers/cli.js';
import { makeTempDir } from '../helpers/tmp.js';

test('no command that loads a config runs nslookup or a Match exec while reading the ssh config', async () => {
  const dir = makeTempDir('agent-update-sshcfg-noexec-');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  const marker = join(dir, 'ran');
  for (const name of ['nslookup', 'host', 'dig']) writeFileSync(join(bin, name), `#!/bin/sh\necho "${name} $*" >> '${marker}'\n`, { mode: 0o755 });
  writeFileSync(join(dir, 'known_hosts'), '');
  writeFileSync(
    join(dir, 'ssh_config'),
    `Match exec "echo exec >> '${marker}'"\n  User fromexec\nHost *\n  CanonicalizeHostName yes\n  CanonicalDomains example.com example.net\n`,
  );
  const config = join(dir, 'fleet.yml');
  writeFileSync(
    config,
    `source: { repo: https://github.com/example/agent, branch: master, commit: ${'a'.repeat(40)} }
servers:
  - { name: app1, host: app1 }
  - { name: app2, host: app2 }
ssh: { user: ops, config: ssh_config, known_hosts: known_hosts }
agent:
  version_command: git -C ~/agent/repo rev-parse HEAD
  update: ['git -C ~/agent/repo reset --hard {commit}']
  health: { command: curl -fsS http://127.0.0.1:25052/version }
`,
  );
  const env = { PATH: `${bin}:${process.env.PATH ?? ''}` };
  const db = join(dir, 'db.sqlite');
  for (const args of [['plan', '-c', config], ['plan', '-c', config, '--show-commands'], ['auto', '-c', config], ['config', '-c', config]]) {
    const r = await cli(args, { db, env });
    assert.notEqual(r.code, 0, `${args.join(' ')}: ${r.stdout}`);
    assert.match(r.stderr + r.stdout, /CanonicalizeHostName yes .* is not supported: ssh would look the name up in DNS/, args.join(' '));
    assert.equal(existsSync(marker), false, `${args.join(' ')} ran a program while reading the ssh config`);
  }
});
