/**
 * The simulated fleet's keys: ssh2's own ed25519 generator writes a malformed key about one
 * time in 200 (see src/sim/keys.ts); ours never does. A thousand keys would meet several bad
 * ones without the check.
 */
import { strict as assert } from 'node:assert';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { promisify } from 'node:util';
import ssh2 from 'ssh2';
import { generateKeyPair } from '../../src/sim/keys.js';

const execFileP = promisify(execFile);

test('a thousand generated ed25519 keys all parse, with a 32-byte public key', () => {
  for (let i = 0; i < 1000; i++) {
    const pair = generateKeyPair('ed25519');
    const parsed = ssh2.utils.parseKey(pair.private);
    assert.ok(!(parsed instanceof Error), `key ${i}: ${String(parsed)}`);
    const blob = Buffer.from(pair.public.split(' ')[1] ?? '', 'base64');
    // string "ssh-ed25519" (4 + 11 bytes), then string key (4 + 32 bytes)
    assert.equal(blob.length, 4 + 11 + 4 + 32, `key ${i}: public blob of ${blob.length} bytes`);
  }
});

test('OpenSSH reads the generated keys of every type, and the comment is kept', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'au-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const type of ['ed25519', 'ecdsa', 'rsa'] as const) {
    const pair = generateKeyPair(type, 'agent-update-test');
    const file = join(dir, type);
    writeFileSync(file, pair.private, { mode: 0o600 });
    const { stdout } = await execFileP('ssh-keygen', ['-y', '-f', file]);
    const [kind, b64] = stdout.trim().split(' ');
    const [expectedKind, expectedB64, comment] = pair.public.split(' ');
    assert.equal(kind, expectedKind, type);
    assert.equal(b64, expectedB64, type);
    assert.equal(comment, 'agent-update-test', type);
  }
});
