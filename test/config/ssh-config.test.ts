/**
 * ssh.config, ssh.jump and the per-server keys: what each server resolves to, and what is refused.
 * Pure: the ssh config files live in a map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { parseHopSpec } from '../../src/config/ssh-config.js';
import { ctx, DIR, EXISTING, HOME, ok, problems, variant } from './helpers.js';

const SSH_DIR = `${HOME}/.ssh`;

/** A context whose file system holds `files` (and the usual EXISTING ones). */
function withFiles(files: Record<string, string>) {
  const has = (p: string) => EXISTING.has(p) || p in files;
  return ctx({
    exists: has,
    readFile: (p) => (p in files ? { text: files[p]! } : { error: 'no such file' }),
    listDir: (d) => Object.keys(files).filter((f) => f.startsWith(`${d}/`) && !f.slice(d.length + 1).includes('/')).map((f) => f.slice(d.length + 1)),
    env: { FLEET: 'prod' },
  });
}

const CONFIG = [
  'Host bastion',
  '  HostName 192.0.2.1',
  '  User jumper',
  '  IdentityFile ~/.ssh/id_bastion',
  'Host app-*',
  '  HostName %h.internal',
  '  User deploy',
  '  Port 2200',
  '  ProxyJump bastion',
  '  IdentityFile ~/.ssh/missing_%r',
  '  IdentityFile ~/.ssh/id_${FLEET}_%r',
  '  UserKnownHostsFile ~/.ssh/nope ~/.ssh/kh_%n',
  'Host direct',
  '  HostName 198.51.100.7',
  '  ProxyJump none',
  'Host *',
  '  User everyone',
  '  Port 2222',
  '',
].join('\n');
const FILES = {
  [`${SSH_DIR}/config`]: CONFIG,
  [`${SSH_DIR}/id_bastion`]: 'k',
  [`${SSH_DIR}/id_prod_deploy`]: 'k',
  [`${SSH_DIR}/kh_app-1`]: '',
  [`${SSH_DIR}/kh_app-2`]: '',
  [`${DIR}/keys/own`]: 'k',
};

function servers(list: unknown[], ssh: Record<string, unknown> = {}, files: Record<string, string> = FILES) {
  return ok(
    variant((c) => {
      c.servers = list;
      c.ssh = { config: true, ...ssh };
    }),
    withFiles(files),
  ).servers;
}

test('an alias: HostName (with %h), User, Port, IdentityFile (missing ones passed over, tokens and ${VAR}), UserKnownHostsFile, ProxyJump resolved in turn', () => {
  const [s] = servers([{ name: 'app-1' }]);
  assert.deepEqual(s, {
    name: 'app-1',
    host: 'app-1.internal',
    port: 2200,
    user: 'deploy',
    type: 'default',
    types: ['default'],
    identityFiles: [`${SSH_DIR}/id_prod_deploy`],
    knownHosts: `${SSH_DIR}/kh_app-1`,
    // the jump host's alias is looked up too; `Host *` gives it Port 2222
    jump: [{ host: '192.0.2.1', port: 2222, user: 'jumper', identityFiles: [`${SSH_DIR}/id_bastion`] }],
  });
});

test('precedence: per-server keys > the ssh config > the ssh block', () => {
  const [own, fromConfig, block] = servers(
    [
      { name: 'a', host: 'app-2', user: 'me', port: 22, identity_file: 'keys/own', jump: 'none' },
      { name: 'b', host: 'app-2' },
      { name: 'c', host: '10.0.0.9' },
    ],
    { user: 'frappe', port: 2201, identity_file: '~/.ssh/id_ed25519', jump: 'ops@gw.example:2022' },
  );
  assert.deepEqual([own!.host, own!.user, own!.port, own!.identityFiles, own!.jump], ['app-2.internal', 'me', 22, [`${DIR}/keys/own`], undefined]);
  assert.deepEqual([fromConfig!.user, fromConfig!.port, fromConfig!.jump?.map((h) => h.host)], ['deploy', 2200, ['192.0.2.1']], "the config's ProxyJump beats ssh.jump");
  // `Host *` of the config (User, Port) beats the ssh block; ssh.jump applies (no ProxyJump for it)
  assert.deepEqual([block!.user, block!.port, block!.identityFiles], ['everyone', 2222, undefined]);
  assert.deepEqual(block!.jump, [{ host: 'gw.example', port: 2022, user: 'ops' }]);
});

test('without ssh.config nothing is looked up; ssh.jump and per-server jump, as a string or a list', () => {
  const c = ok(
    variant((c) => {
      c.ssh = { user: 'frappe', jump: ['a@h1', 'h2:23'] };
      c.servers = [
        { name: 'x', host: 'app-1' },
        { name: 'y', host: '10.0.0.2', jump: null },
        { name: 'z', host: '10.0.0.3', jump: '[2001:db8::1]:2200' },
      ];
    }),
  );
  assert.deepEqual(c.servers[0], {
    name: 'x', host: 'app-1', port: 22, user: 'frappe', type: 'default', types: ['default'],
    jump: [{ host: 'h1', port: 22, user: 'a' }, { host: 'h2', port: 23, user: 'frappe' }],
  });
  assert.equal(c.servers[1]!.jump, undefined, 'jump: null turns ssh.jump off');
  assert.deepEqual(c.servers[2]!.jump, [{ host: '2001:db8::1', port: 2200, user: 'frappe' }]);
  assert.equal(c.ssh.configFile, null);
});

test('a server named by its alias alone (host left out) when ssh.config is set; required otherwise', () => {
  assert.equal(servers([{ name: 'direct' }])[0]!.host, '198.51.100.7');
  assert.equal(servers([{ name: 'direct' }])[0]!.jump, undefined, 'ProxyJump none');
  const p = problems(variant((c) => void (c.servers = [{ name: 'direct' }])));
  assert.deepEqual(p.map((x) => x.path), ['servers[0].host']);
});

test('a jump host\'s own ProxyJump comes first; a loop is a problem', () => {
  const files = {
    ...FILES,
    [`${SSH_DIR}/config`]: ['Host inner', '  ProxyJump outer', 'Host outer', '  HostName 203.0.113.5', 'Host loop1', '  ProxyJump loop2', 'Host loop2', '  ProxyJump loop1', ''].join('\n'),
  };
  const [s] = servers([{ name: 's', host: '10.0.0.1', jump: 'inner' }], {}, files);
  assert.deepEqual(s!.jump?.map((h) => h.host), ['203.0.113.5', 'inner']);
  const p = problems(variant((c) => void ((c.ssh = { config: true }), (c.servers = [{ name: 's', host: '10.0.0.1', jump: 'loop1' }]))), withFiles(files));
  assert.match(p.map((x) => x.message).join('\n'), /ProxyJump loops through loop1 → loop2 → loop1/);
});

test('Include: spliced in place, relative to ~/.ssh, with a * pattern; inside a Host block it joins the block', () => {
  const files = {
    ...FILES,
    [`${SSH_DIR}/config`]: ['Include conf.d/*', 'Host web', '  Include web.conf', 'Host *', '  User last', ''].join('\n'),
    [`${SSH_DIR}/conf.d/10-db`]: 'Host db\n  HostName 10.9.9.9\n  User dba\n',
    [`${SSH_DIR}/conf.d/20-all`]: 'Port 2345\n',
    [`${SSH_DIR}/web.conf`]: 'HostName 10.8.8.8\n',
  };
  const [db, web] = servers([{ name: 'db' }, { name: 'web' }], {}, files);
  assert.deepEqual([db!.host, db!.user, db!.port], ['10.9.9.9', 'dba', 2345]);
  assert.deepEqual([web!.host, web!.user, web!.port], ['10.8.8.8', 'last', 2345]);
});

test('refused, never ignored: ProxyCommand, HostKeyAlias, Match exec setting what we read, CanonicalizeHostName; Match exec is never run', () => {
  const files = (text: string) => ({ ...FILES, [`${SSH_DIR}/config`]: text });
  const messages = (text: string, list: unknown[] = [{ name: 'x', host: 'x' }]) =>
    problems(variant((c) => void ((c.ssh = { config: true }), (c.servers = list))), withFiles(files(text))).map((p) => `${p.path}: ${p.message}`);
  assert.match(messages('Host x\n  ProxyCommand nc %h %p\n').join('\n'), /^servers\[0\]\.host: the ssh config .* \(for "x"\): ProxyCommand is not supported/);
  assert.match(messages('Host x\n  HostKeyAlias other\n').join('\n'), /HostKeyAlias is not supported/);
  const marker = `/tmp/au-match-exec-ran-${process.pid}`;
  assert.match(messages(`Match exec "touch ${marker}"\n  User evil\n`).join('\n'), /^ssh.config: "Match exec touch .*" sets User, and whether it applies cannot be told here/);
  assert.equal(existsSync(marker), false, 'the Match exec command was not run');
  assert.match(messages('CanonicalizeHostName yes\n').join('\n'), /CanonicalizeHostName yes is not supported/);
  // a ProxyCommand for a host no server uses, a Match exec that sets nothing we read: fine
  assert.equal(servers([{ name: 'y', host: 'y' }], {}, files('Host x\n  ProxyCommand nc %h %p\nMatch exec "false"\n  ForwardAgent yes\n'))[0]!.host, 'y');
  // ProxyCommand none is no proxy
  assert.equal(servers([{ name: 'x', host: 'x' }], {}, files('Host x\n  ProxyCommand none\n  HostName 10.1.1.1\n'))[0]!.host, '10.1.1.1');
});

test('other problems: a missing ssh.config, a bad Port, an unknown %token, no UserKnownHostsFile that exists, a bad jump', () => {
  const all = (ssh: Record<string, unknown>, list: unknown[], text = CONFIG) =>
    problems(variant((c) => void ((c.ssh = ssh), (c.servers = list))), withFiles({ ...FILES, [`${SSH_DIR}/config`]: text })).map((p) => `${p.path}: ${p.message}`).join('\n');
  assert.match(all({ config: 'nowhere/ssh_config' }, [{ name: 'a', host: 'a' }]), new RegExp(`ssh.config: file not found: ${DIR}/nowhere/ssh_config`));
  assert.match(all({ config: true }, [{ name: 'a', host: 'a' }], 'Host a\n  Port 99999\n'), /Port "99999" is not a port number/);
  assert.match(all({ config: true }, [{ name: 'a', host: 'a' }], 'Host a\n  IdentityFile ~/.ssh/%C\n'), /unsupported token %C/);
  assert.match(all({ config: true }, [{ name: 'a', host: 'a' }], 'Host a\n  UserKnownHostsFile ~/.ssh/none1 ~/.ssh/none2\n'), /none of its UserKnownHostsFile exists/);
  assert.match(all({ jump: 'a@' }, [{ name: 'a', host: 'a' }]), /ssh.jump: bad jump host "a@": no host/);
  assert.match(all({}, [{ name: 'a', host: 'a', jump: ['h:0'] }]), /servers\[0\]\.jump\[0\]: bad jump host "h:0": "0" is not a port/);
  assert.match(all({}, [{ name: 'a', host: 'a', identity_file: 'keys/nope' }]), /servers\[0\]\.identity_file: file not found/);
  assert.match(all({ max_handshakes: 0 }, [{ name: 'a', host: 'a' }]), /ssh.max_handshakes: must be a whole number 1 to 1000/);
});

test('two aliases for the same account are one server, and refused as listed twice', () => {
  const p = problems(
    variant((c) => void ((c.ssh = { config: true }), (c.servers = [{ name: 'one', host: 'one' }, { name: 'two', host: 'two', user: 'u', port: 2200 }]))),
    withFiles({ ...FILES, [`${SSH_DIR}/config`]: 'Host one two\n  HostName 10.1.1.1\nHost one\n  User u\n  Port 2200\n' }),
  );
  assert.match(p.map((x) => x.message).join('\n'), /same host, port and user \(u@10\.1\.1\.1:2200\)/);
});

test('parseHopSpec', () => {
  assert.deepEqual(parseHopSpec('ops@gw:2222'), { user: 'ops', host: 'gw', port: 2222 });
  assert.deepEqual(parseHopSpec('ssh://gw'), { host: 'gw' });
  assert.deepEqual(parseHopSpec('[::1]:22'), { host: '::1', port: 22 });
  assert.ok('error' in parseHopSpec('::1'));
  assert.ok('error' in parseHopSpec('gw:x'));
  assert.ok('error' in parseHopSpec('-oProxyCommand=x'));
});
