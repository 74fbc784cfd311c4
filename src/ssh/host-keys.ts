/**
 * Host keys as a connection checks them: the known_hosts files (parsed by known-hosts.ts, each
 * kept while it is unchanged), the key algorithms to offer, and the verdict on the key a server
 * presents, given before any key of ours is offered.
 */
import { statSync } from 'node:fs';
import { blobKeyType, readKnownHosts, verifyHostKey } from './known-hosts.js';
import type { KnownHostsFile } from './known-hosts.js';
import { TransportError } from './transport.js';
import { errorMessage } from './ssh2-lib.js';

/** Host key algorithms ssh2 supports, in its default preference order, by key type. */
const HOST_KEY_ALGOS: Record<string, string[]> = {
  'ssh-ed25519': ['ssh-ed25519'],
  'ecdsa-sha2-nistp256': ['ecdsa-sha2-nistp256'],
  'ecdsa-sha2-nistp384': ['ecdsa-sha2-nistp384'],
  'ecdsa-sha2-nistp521': ['ecdsa-sha2-nistp521'],
  'ssh-rsa': ['rsa-sha2-512', 'rsa-sha2-256', 'ssh-rsa'],
};

const DEFAULT_HOST_KEY_ORDER = [
  'ssh-ed25519',
  'ecdsa-sha2-nistp256',
  'ecdsa-sha2-nistp384',
  'ecdsa-sha2-nistp521',
  'rsa-sha2-512',
  'rsa-sha2-256',
  'ssh-rsa',
];

/**
 * Host key algorithms to offer, those of the key types already known for the host first (as
 * OpenSSH does), so a server with several host keys presents the one we can check.
 */
export function hostKeyAlgorithms(knownTypes: readonly string[]): string[] {
  const first: string[] = [];
  for (const t of knownTypes) for (const a of HOST_KEY_ALGOS[t] ?? []) if (!first.includes(a)) first.push(a);
  return [...first, ...DEFAULT_HOST_KEY_ORDER.filter((a) => !first.includes(a))];
}

/**
 * known_hosts files as parsed, by path, with what identified the file's version: a plan of 1,000
 * servers read and parsed a 1,000-line file once per connection (11 % of its time). A file that
 * changed (size, mtime or inode) is read again, so an operator's edit between servers counts.
 */
const knownCache = new Map<string, { version: string; parsed: KnownHostsFile }>();

export function readKnown(file: string): KnownHostsFile {
  try {
    const st = statSync(file, { throwIfNoEntry: false });
    if (!st) return readKnownHosts(file); // a missing file: every host unknown (read again each time)
    const version = `${st.ino}:${st.size}:${st.mtimeMs}`;
    const hit = knownCache.get(file);
    if (hit && hit.version === version) return hit.parsed;
    const parsed = readKnownHosts(file);
    knownCache.set(file, { version, parsed });
    return parsed;
  } catch (err) {
    throw new TransportError('config', `cannot read known_hosts file ${file}: ${errorMessage(err)}`);
  }
}

/**
 * The verdict on the host key `key` that `ep` presented: null when known_hosts vouches for it,
 * else the TransportError that ends the connection (unknown, changed or revoked).
 */
export function checkHostKey(known: KnownHostsFile, ep: { host: string; port: number; label: string }, key: Buffer, jump: boolean): TransportError | null {
  const type = blobKeyType(key) ?? 'unknown';
  const verdict = verifyHostKey(known.entries, ep.host, ep.port, type, key, known.file);
  if (verdict.ok) return null;
  let message = verdict.message;
  if (jump) message = `jump host ${ep.label}: ${message}`;
  if (verdict.kind === 'unknown' && !known.exists) message += ` (${known.file} does not exist yet)`;
  return new TransportError(verdict.kind === 'unknown' ? 'host-key-unknown' : 'host-key-mismatch', message);
}
