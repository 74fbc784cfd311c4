/**
 * ssh.config, ssh.jump and the per-server keys: what each server resolves to, and what is refused.
 * Pure: the ssh config files live in a map.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
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
  assert.match(messages('Host x\n  ProxyCommand nc %h %p\n').join('\n'), /^servers\[0\]\.host: the ssh config .* \(for "x"\): ProxyCommand \(\/home\/op\/\.ssh\/config line 2\) is not supported/);
  assert.match(messages('Host x\n  HostKeyAlias other\n').join('\n'), /HostKeyAlias \(.* line 2\) is not supported/);
  const marker = `/tmp/au-match-exec-ran-${process.pid}`;
  assert.match(messages(`Match exec "touch ${marker}"\n  User evil\n`).join('\n'), /^servers\[0\]\.host: .*: Match exec "touch .*" \(.* line 1\) may apply to it \(exec "touch .*" is never run\), and it sets User \(.* line 2\): whether it applies cannot be told here/);
  assert.equal(existsSync(marker), false, 'the Match exec command was not run');
  assert.match(messages('CanonicalizeHostName yes\n').join('\n'), /CanonicalizeHostName yes \(.* line 1\) is not supported: ssh would look the name up in DNS/);
  // a ProxyCommand for a host no server uses, a Match exec that sets nothing we read: fine
  assert.equal(servers([{ name: 'y', host: 'y' }], {}, files('Host x\n  ProxyCommand nc %h %p\nMatch exec "false"\n  ForwardAgent yes\n'))[0]!.host, 'y');
  // ProxyCommand none is no proxy
  assert.equal(servers([{ name: 'x', host: 'x' }], {}, files('Host x\n  ProxyCommand none\n  HostName 10.1.1.1\n'))[0]!.host, '10.1.1.1');
});

test('other problems: a missing ssh.config, a bad Port, an unknown %token, no UserKnownHostsFile that exists, a bad jump', () => {
  const all = (ssh: Record<string, unknown>, list: unknown[], text = CONFIG) =>
    problems(variant((c) => void ((c.ssh = ssh), (c.servers = list))), withFiles({ ...FILES, [`${SSH_DIR}/config`]: text })).map((p) => `${p.path}: ${p.message}`).join('\n');
  assert.match(all({ config: 'nowhere/ssh_config' }, [{ name: 'a', host: 'a' }]), new RegExp(`ssh.config: file not found: ${DIR}/nowhere/ssh_config`));
  assert.match(all({ config: true }, [{ name: 'a', host: 'a' }], 'Host a\n  Port 99999\n'), /Port "99999" \(.* line 2\) is not a port number/);
  assert.match(all({ config: true }, [{ name: 'a', host: 'a' }], 'Host a\n  IdentityFile ~/.ssh/%C\n'), /IdentityFile \(.* line 2\): unsupported token %C/);
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

// Issue 21: each case below is what `ssh -G` prints for the same config (OpenSSH 9.2);
// test/config/ssh-config-openssh.test.ts checks the corpus against ssh itself.
const withConfig = (text: string, extra: Record<string, string> = {}) => ({ ...FILES, [`${SSH_DIR}/config`]: text, ...extra });
const refusals = (text: string, list: unknown[], ssh: Record<string, unknown> = {}, extra: Record<string, string> = {}) =>
  problems(variant((c) => void ((c.ssh = { config: true, ...ssh }), (c.servers = list))), withFiles(withConfig(text, extra))).map((p) => `${p.path}: ${p.message}`).join('\n');

test('Host patterns match the name as given, case-sensitively; the host connected to is lower-cased (ssh -G)', () => {
  const text = 'Host Bastion-EU\n  HostName 198.51.100.20\nHost target\n  ProxyJump ops@Bastion-EU\nHost github.com\n  User git\n';
  const [t, g, upper, exact] = servers(
    [{ name: 't', host: 'target' }, { name: 'g', host: 'GitHub.com' }, { name: 'u', host: 'BASTION-EU' }, { name: 'e', host: 'Bastion-EU' }],
    {},
    withConfig(text),
  );
  // (no IdentityFile and no ssh.identity_file: ssh offers its default keys that exist)
  assert.deepEqual(t!.jump, [{ host: '198.51.100.20', port: 22, user: 'ops', identityFiles: [`${SSH_DIR}/id_ed25519`] }], 'the jump spec names the alias as written: it matches');
  assert.deepEqual([g!.host, g!.user], ['github.com', 'op'], '"GitHub.com" does not match Host github.com');
  assert.equal(upper!.host, 'bastion-eu', '"BASTION-EU" does not match Host Bastion-EU');
  assert.equal(exact!.host, '198.51.100.20');
});

test('`?` is exactly one character; a comma is part of a Host pattern', () => {
  const text = 'Host db?\n  User q\nHost github.com,gitlab.com\n  User commas\n';
  const [db, db1, gh] = servers([{ name: 'db', host: 'db' }, { name: 'db1', host: 'db1' }, { name: 'gh', host: 'github.com' }], {}, withConfig(text));
  assert.deepEqual([db!.user, db1!.user, gh!.user], ['op', 'q', 'op']);
});

test('keywords in any case; Match host sees the HostName obtained so far, Match user the User', () => {
  const text = 'Host d\n  Hostname 10.0.0.6\nMatch host 10.0.*\n  USER tenner\nHost e\n  user deploy\nMatch user deploy\n  identityfile ~/.ssh/deploykey\n';
  const [d, e] = servers([{ name: 'd', host: 'd' }, { name: 'e', host: 'e' }], {}, withConfig(text, { [`${SSH_DIR}/deploykey`]: 'k' }));
  assert.deepEqual([d!.host, d!.user], ['10.0.0.6', 'tenner']);
  assert.deepEqual([e!.user, e!.identityFiles], ['deploy', [`${SSH_DIR}/deploykey`]]);
});

test('IdentitiesOnly, IdentityAgent, CertificateFile: honoured where the transport does the same, refused with file and line otherwise', () => {
  const text = 'Host only\n  IdentitiesOnly yes\nHost sock\n  IdentityAgent /run/agent.sock\nHost noagent\n  IdentityAgent none\nHost cert\n  CertificateFile ~/.ssh/id_prod_deploy-cert.pub\n';
  const cert = { [`${SSH_DIR}/id_prod_deploy-cert.pub`]: 'c' };
  const all = refusals(text, [{ name: 'o', host: 'only' }, { name: 's', host: 'sock' }, { name: 'n', host: 'noagent' }, { name: 'c', host: 'cert' }], {}, cert);
  assert.match(all, /servers\[0\]\.host: .*IdentitiesOnly yes \(.*config line 2\): ssh would offer only the identity files/);
  assert.match(all, /servers\[1\]\.host: .*IdentityAgent \/run\/agent\.sock \(.*config line 4\): ssh would use that agent socket/);
  assert.match(all, /servers\[2\]\.host: .*IdentityAgent none \(.*config line 6\): ssh would use no agent for this host/);
  assert.match(all, /servers\[3\]\.host: .*CertificateFile \(.*config line 8\): ssh would offer the certificate/);
  // with ssh.agent: false, IdentitiesOnly yes and IdentityAgent none are what the transport does
  const [o, n] = servers([{ name: 'o', host: 'only' }, { name: 'n', host: 'noagent' }], { agent: false, identity_file: '~/.ssh/id_ed25519' }, withConfig(text));
  assert.equal(o!.identitiesOnly, true);
  assert.equal(n!.identityAgent, 'none');
});

test('CanonicalizeHostName never runs nslookup (nor anything else) while reading the config', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'au-nslookup-'));
  const marker = path.join(dir, 'ran');
  writeFileSync(path.join(dir, 'nslookup'), `#!/bin/sh\necho "$@" >> ${marker}\n`, { mode: 0o755 });
  writeFileSync(path.join(dir, 'host'), `#!/bin/sh\necho "$@" >> ${marker}\n`, { mode: 0o755 });
  const oldPath = process.env.PATH;
  process.env.PATH = `${dir}:${oldPath ?? ''}`;
  try {
    const text = 'Host *\n  CanonicalizeHostName yes\n  CanonicalDomains example.com example.net\n';
    const all = refusals(text, [{ name: 'a', host: 'a' }, { name: 'b', host: 'b' }]);
    assert.match(all, /servers\[0\]\.host: .*CanonicalizeHostName yes \(.*config line 2\) is not supported: ssh would look the name up in DNS/);
  } finally {
    process.env.PATH = oldPath;
  }
  assert.equal(existsSync(marker), false, 'nslookup was run');
  rmSync(dir, { recursive: true, force: true });
});

test('UserKnownHostsFile /dev/null: refused, saying host keys are always verified and which file would be', () => {
  const all = refusals('Host a\n  UserKnownHostsFile /dev/null\n', [{ name: 'a', host: 'a' }]);
  assert.match(all, /UserKnownHostsFile \/dev\/null \(.*config line 2\): with it ssh keeps no host keys for this host; agent-update always verifies host keys against a known_hosts file, and without that line would use \/home\/op\/\.ssh\/known_hosts/);
  assert.doesNotMatch(all, /exist/);
});

test('ProxyJump then ProxyCommand in one block: the first obtained wins (ProxyJump), as in ssh', () => {
  const [a] = servers([{ name: 'a', host: 'a' }], {}, withConfig('Host a\n  ProxyJump gw.example\n  ProxyCommand nc %h %p\n'));
  assert.deepEqual(a!.jump?.map((h) => h.host), ['gw.example']);
  // and the other way round: ProxyCommand first wins, so it is refused
  assert.match(refusals('Host a\n  ProxyCommand nc %h %p\n  ProxyJump gw.example\n', [{ name: 'a', host: 'a' }]), /ProxyCommand \(.*line 2\) is not supported/);
});

test('a missing Include file is skipped, as ssh does', () => {
  const [a] = servers([{ name: 'a', host: 'a' }], {}, withConfig('Include nothere.conf conf.d/*.conf\nHost a\n  HostName 10.3.3.3\n'));
  assert.equal(a!.host, '10.3.3.3');
});

test('Match with criteria that cannot be evaluated: only servers for which the rest of the criteria hold are refused', () => {
  const text = 'Match host foo exec "false"\n  User fromexec\nMatch !host bar,foo\n  Port 2345\nMatch host baz canonical\n  User canon\n';
  const [bar, baz] = servers([{ name: 'bar', host: 'bar' }, { name: 'baz', host: 'baz' }], {}, withConfig(text));
  assert.deepEqual([bar!.user, bar!.port], ['op', 22], 'host foo is false for bar: the exec does not matter; !host bar,foo is false');
  assert.deepEqual([baz!.user, baz!.port], ['op', 2345], '!host matches baz; canonical is false without canonicalization or Match final');
  assert.match(refusals(text, [{ name: 'foo', host: 'foo' }]), /servers\[0\]\.host: .*Match host foo exec "false" \(.*line 1\) may apply to it \(exec "false" is never run\), and it sets User/);
});

test('a Host block inside an Include inside a Host block applies as ssh reads it', () => {
  const text = 'Host web\n  Include web.conf\n';
  const [web, other] = servers([{ name: 'web', host: 'web' }, { name: 'other', host: 'other' }], {}, withConfig(text, { [`${SSH_DIR}/web.conf`]: 'User u1\nHost other web\n  Port 2201\n' }));
  assert.deepEqual([web!.user, web!.port], ['u1', 2201]);
  assert.deepEqual([other!.user, other!.port], ['op', 22], 'an Include inside a block that does not apply: nothing in it applies');
});
