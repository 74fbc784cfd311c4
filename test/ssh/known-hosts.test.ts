import { strict as assert } from 'node:assert';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import {
  entryMatchesHost,
  fingerprintSha256,
  hostLookupName,
  knownKeyTypes,
  matchHostPatterns,
  matchPattern,
  parseKnownHosts,
  readKnownHosts,
  verifyHostKey,
} from '../../src/ssh/known-hosts.js';
import { generateKeyPair } from '../../src/sim/keys.js';
import { hostKeyAlgorithms } from '../../src/ssh/host-keys.js';
import { execFileP, hashKnownHosts, tempDir } from './helpers.js';

function newKey(type: 'ed25519' | 'ecdsa' | 'rsa' = 'ed25519'): { type: string; blob: Buffer; b64: string } {
  const pair = generateKeyPair(type);
  const [t, b64] = pair.public.split(' ') as [string, string];
  return { type: t, blob: Buffer.from(b64, 'base64'), b64 };
}

function hashedName(name: string, salt = randomBytes(20)): string {
  const hash = createHmac('sha1', salt).update(name).digest();
  return `|1|${salt.toString('base64')}|${hash.toString('base64')}`;
}

const A = newKey();
const B = newKey();
const E = newKey('ecdsa');

describe('known_hosts patterns', () => {
  test('matchPattern: * and ?', () => {
    assert.equal(matchPattern('web1.example.com', '*.example.com'), true);
    assert.equal(matchPattern('example.com', '*.example.com'), false);
    assert.equal(matchPattern('web1', 'web?'), true);
    assert.equal(matchPattern('web12', 'web?'), false);
    assert.equal(matchPattern('anything', '*'), true);
    assert.equal(matchPattern('', '*'), true);
    assert.equal(matchPattern('abc', 'a*c*'), true);
    assert.equal(matchPattern('abcbd', 'a*b?'), true);
    assert.equal(matchPattern('10.0.0.11', '10.0.0.1?'), true);
    assert.equal(matchPattern('10.0.0.1', '10.0.0.1?'), false);
  });

  test('negation excludes a host even when another pattern matches', () => {
    assert.equal(matchHostPatterns('web1.example.com', ['*.example.com', '!db*.example.com']), true);
    assert.equal(matchHostPatterns('db1.example.com', ['*.example.com', '!db*.example.com']), false);
    assert.equal(matchHostPatterns('db1.example.com', ['!db*.example.com', '*.example.com']), false);
    // a negation alone never matches
    assert.equal(matchHostPatterns('other', ['!db1']), false);
  });

  test('host names compare case-insensitively', () => {
    const [e] = parseKnownHosts(`Web1.Example.COM ${A.type} ${A.b64}`);
    assert.ok(e);
    assert.equal(entryMatchesHost(e, 'web1.example.com', 22), true);
    assert.equal(entryMatchesHost(e, 'WEB1.example.com', 22), true);
  });

  test('port form: plain host is port 22 only, [host]:port for the others', () => {
    assert.equal(hostLookupName('10.0.0.1', 22), '10.0.0.1');
    assert.equal(hostLookupName('10.0.0.1', 2222), '[10.0.0.1]:2222');
    const entries = parseKnownHosts(
      [`10.0.0.1 ${A.type} ${A.b64}`, `[10.0.0.2]:2222 ${A.type} ${A.b64}`, `[10.0.0.3]:22 ${A.type} ${A.b64}`].join('\n'),
    );
    const [plain, bracket, bracket22] = entries;
    assert.ok(plain && bracket && bracket22);
    assert.equal(entryMatchesHost(plain, '10.0.0.1', 22), true);
    assert.equal(entryMatchesHost(plain, '10.0.0.1', 2222), false);
    assert.equal(entryMatchesHost(bracket, '10.0.0.2', 2222), true);
    assert.equal(entryMatchesHost(bracket, '10.0.0.2', 22), false);
    assert.equal(entryMatchesHost(bracket, '10.0.0.2', 2223), false);
    // OpenSSH looks port 22 up as the bare host, so `[h]:22` never matches
    assert.equal(entryMatchesHost(bracket22, '10.0.0.3', 22), false);
    // wildcards apply to the whole lookup name
    const [wild] = parseKnownHosts(`[10.0.0.*]:2222 ${A.type} ${A.b64}`);
    assert.ok(wild);
    assert.equal(entryMatchesHost(wild, '10.0.0.9', 2222), true);
    assert.equal(entryMatchesHost(wild, '10.0.0.9', 22), false);
  });

  test('hashed entries: HMAC-SHA1 of host or [host]:port keyed by the salt', () => {
    const text = [`${hashedName('10.0.0.5')} ${A.type} ${A.b64}`, `${hashedName('[10.0.0.6]:2200')} ${A.type} ${A.b64}`].join('\n');
    const [h22, hPort] = parseKnownHosts(text);
    assert.ok(h22 && hPort);
    assert.equal(h22.patterns, null);
    assert.equal(entryMatchesHost(h22, '10.0.0.5', 22), true);
    assert.equal(entryMatchesHost(h22, '10.0.0.5', 2200), false);
    assert.equal(entryMatchesHost(h22, '10.0.0.50', 22), false);
    assert.equal(entryMatchesHost(hPort, '10.0.0.6', 2200), true);
    assert.equal(entryMatchesHost(hPort, '10.0.0.6', 22), false);
  });

  test('ssh-keygen -H output is understood', async (t) => {
    const tmp = tempDir();
    after(tmp.remove);
    const file = join(tmp.dir, 'known_hosts');
    writeFileSync(file, `[127.0.0.2]:2222 ${A.type} ${A.b64}\nexample.org,10.1.1.1 ${B.type} ${B.b64}\n`);
    try {
      await hashKnownHosts(file);
    } catch (err) {
      t.skip(`ssh-keygen -H failed: ${String(err)}`);
      return;
    }
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /127\.0\.0\.2|example\.org/);
    const { entries } = readKnownHosts(file);
    assert.equal(entries.length, 3); // a comma list becomes one hashed line per name
    assert.equal(verifyHostKey(entries, '127.0.0.2', 2222, A.type, A.blob).ok, true);
    assert.equal(verifyHostKey(entries, 'example.org', 22, B.type, B.blob).ok, true);
    assert.equal(verifyHostKey(entries, '10.1.1.1', 22, B.type, B.blob).ok, true);
    assert.equal(verifyHostKey(entries, '127.0.0.2', 22, A.type, A.blob).ok, false);
  });
});

describe('known_hosts parsing', () => {
  test('comments, blank lines, markers, malformed lines', () => {
    const text = [
      '# a comment',
      '',
      '   ',
      `host1 ${A.type} ${A.b64} a comment with spaces`,
      `@revoked * ${B.type} ${B.b64}`,
      `@cert-authority *.example.com ${E.type} ${E.b64}`,
      `@bogus host2 ${A.type} ${A.b64}`,
      'host3 ssh-ed25519', // no key
      'host4 1024 35 1234567', // SSH1
      `host5 ssh-rsa ${A.b64}`, // type disagrees with the blob
      '|1|bad|hash ssh-ed25519 AAAA',
      `\thost6,host7 ${A.type} ${A.b64}\r`,
    ].join('\n');
    const entries = parseKnownHosts(text);
    assert.deepEqual(
      entries.map((e) => [e.line, e.marker, e.patterns]),
      [
        [4, null, ['host1']],
        [5, 'revoked', ['*']],
        [6, 'cert-authority', ['*.example.com']],
        [12, null, ['host6', 'host7']],
      ],
    );
  });

  test('a missing file is empty, not an error', () => {
    const r = readKnownHosts('/nonexistent/dir/known_hosts');
    assert.deepEqual(r, { file: '/nonexistent/dir/known_hosts', entries: [], exists: false });
  });

  test('fingerprint matches ssh-keygen -l', async (t) => {
    const tmp = tempDir();
    after(tmp.remove);
    const file = join(tmp.dir, 'k.pub');
    writeFileSync(file, `${A.type} ${A.b64}\n`);
    let out: string;
    try {
      out = (await execFileP('ssh-keygen', ['-l', '-E', 'sha256', '-f', file])).stdout;
    } catch {
      t.skip('ssh-keygen not available');
      return;
    }
    assert.ok(out.includes(fingerprintSha256(A.blob)), out);
    assert.match(fingerprintSha256(A.blob), /^SHA256:[A-Za-z0-9+/]{43}$/);
    assert.equal(
      fingerprintSha256(A.blob),
      `SHA256:${createHash('sha256').update(A.blob).digest('base64').replace(/=+$/, '')}`,
    );
  });
});

describe('verifyHostKey', () => {
  const file = '/home/ops/.ssh/known_hosts';

  test('accepts the recorded key', () => {
    const entries = parseKnownHosts(`[127.0.0.2]:2222 ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, '127.0.0.2', 2222, A.type, A.blob, file);
    assert.deepEqual(r, { ok: true, line: 1 });
  });

  test('accepts when one of several keys of the host matches', () => {
    const entries = parseKnownHosts(`h ${E.type} ${E.b64}\nh ${A.type} ${A.b64}`);
    assert.equal(verifyHostKey(entries, 'h', 22, A.type, A.blob, file).ok, true);
    assert.equal(verifyHostKey(entries, 'h', 22, E.type, E.blob, file).ok, true);
  });

  test('unknown host: says which host, file, fingerprint and what to do', () => {
    const entries = parseKnownHosts(`other ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, '127.0.0.2', 2222, A.type, A.blob, file);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'unknown');
    assert.ok(r.message.includes('[127.0.0.2]:2222'), r.message);
    assert.ok(r.message.includes(file), r.message);
    assert.ok(r.message.includes(fingerprintSha256(A.blob)), r.message);
    assert.ok(r.message.includes(`ssh-keyscan -p 2222 -t ed25519 127.0.0.2 >> ${file}`), r.message);
    assert.ok(!r.message.includes(A.b64), 'no key material');
  });

  test('changed key of the same type: mismatch with the ssh-keygen -R command', () => {
    const entries = parseKnownHosts(`# x\n[127.0.0.2]:2222 ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, '127.0.0.2', 2222, B.type, B.blob, file);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'mismatch');
    assert.ok(r.message.includes(fingerprintSha256(B.blob)), r.message);
    assert.ok(r.message.includes("ssh-keygen -R '[127.0.0.2]:2222' -f /home/ops/.ssh/known_hosts"), r.message);
    assert.ok(r.message.includes('line 2'), r.message);
  });

  test('host known only with other key types: mismatch naming the known types', () => {
    const entries = parseKnownHosts(`h1 ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, 'h1', 22, E.type, E.blob, file);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'mismatch');
    assert.ok(r.message.includes(`only has ${A.type}`), r.message);
    assert.ok(r.message.includes("ssh-keygen -R h1 -f /home/ops/.ssh/known_hosts"), r.message);
  });

  test('@revoked refuses even when the key is also listed as valid', () => {
    const entries = parseKnownHosts(`h1 ${A.type} ${A.b64}\n@revoked * ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, 'h1', 22, A.type, A.blob, file);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'revoked');
    assert.ok(r.message.includes('line 2'), r.message);
    assert.ok(r.message.includes(fingerprintSha256(A.blob)), r.message);
    // the revocation is of that key only
    const entries2 = parseKnownHosts(`h1 ${B.type} ${B.b64}\n@revoked * ${A.type} ${A.b64}`);
    assert.equal(verifyHostKey(entries2, 'h1', 22, B.type, B.blob, file).ok, true);
  });

  test('@cert-authority never accepts and does not make a host known', () => {
    const entries = parseKnownHosts(`@cert-authority * ${A.type} ${A.b64}`);
    const r = verifyHostKey(entries, 'h1', 22, A.type, A.blob, file);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'unknown');
  });

  test('negated host is not covered by a wildcard entry', () => {
    const entries = parseKnownHosts(`*.corp,!db*.corp ${A.type} ${A.b64}`);
    assert.equal(verifyHostKey(entries, 'web.corp', 22, A.type, A.blob).ok, true);
    const r = verifyHostKey(entries, 'db1.corp', 22, A.type, A.blob);
    assert.ok(!r.ok);
    assert.equal(r.kind, 'unknown');
  });

  test('file paths with spaces are shell-quoted in suggestions', () => {
    const r = verifyHostKey([], 'h', 22, A.type, A.blob, '/tmp/my dir/known_hosts');
    assert.ok(!r.ok);
    assert.ok(r.message.includes(">> '/tmp/my dir/known_hosts'"), r.message);
  });
});

describe('host key algorithm order', () => {
  test('types known for the host come first', () => {
    const entries = parseKnownHosts(`h ${E.type} ${E.b64}\nother ${A.type} ${A.b64}`);
    assert.deepEqual(knownKeyTypes(entries, 'h', 22), [E.type]);
    const algos = hostKeyAlgorithms(knownKeyTypes(entries, 'h', 22));
    assert.equal(algos[0], 'ecdsa-sha2-nistp256');
    assert.ok(algos.includes('ssh-ed25519'));
    assert.deepEqual(hostKeyAlgorithms(['ssh-rsa']).slice(0, 3), ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa']);
    assert.equal(hostKeyAlgorithms([])[0], 'ssh-ed25519');
    // revoked keys do not count as known
    const rev = parseKnownHosts(`@revoked h ${E.type} ${E.b64}`);
    assert.deepEqual(knownKeyTypes(rev, 'h', 22), []);
  });
});
