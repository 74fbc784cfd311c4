/**
 * OpenSSH known_hosts parsing and host key verification (sshd(8) "SSH_KNOWN_HOSTS FILE FORMAT").
 *
 * Supported: plain host pattern lists (comma separated, `*` / `?` wildcards, `!` negation,
 * `[host]:port` for ports other than 22), hashed hosts (`|1|salt|hash`), `@revoked` keys (always a
 * refusal), comments and blank lines. `@cert-authority` lines are parsed but never used to accept a
 * key: certificates are not supported.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';

export type KnownHostMarker = 'revoked' | 'cert-authority' | null;

export interface KnownHostEntry {
  marker: KnownHostMarker;
  /** plain pattern list (lower-cased), or null for a hashed entry */
  patterns: string[] | null;
  /** `|1|salt|hash` entry, or null for a plain one */
  hashed: { salt: Buffer; hash: Buffer } | null;
  /** the key type written on the line, e.g. `ssh-ed25519` */
  keyType: string;
  /** the decoded public key blob (SSH wire format) */
  keyBlob: Buffer;
  /** 1-based line number in the file */
  line: number;
}

export interface KnownHostsFile {
  file: string;
  entries: KnownHostEntry[];
  /** false when the file does not exist (not an error: every host is then unknown) */
  exists: boolean;
}

export type HostKeyVerdict =
  | { ok: true; line: number }
  | { ok: false; kind: 'unknown' | 'mismatch' | 'revoked'; message: string };

/** Parse the text of a known_hosts file. Malformed lines are skipped, as OpenSSH does. */
export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const entry = parseLine(lines[i] ?? '', i + 1);
    if (entry) entries.push(entry);
  }
  return entries;
}

function parseLine(raw: string, line: number): KnownHostEntry | null {
  const text = raw.trim();
  if (text === '' || text.startsWith('#')) return null;
  const fields = text.split(/\s+/);
  let marker: KnownHostMarker = null;
  if (fields[0]?.startsWith('@')) {
    const m = fields.shift();
    if (m === '@revoked') marker = 'revoked';
    else if (m === '@cert-authority') marker = 'cert-authority';
    else return null; // unknown marker: OpenSSH skips the line
  }
  const [hostField, keyType, keyB64] = fields;
  if (!hostField || !keyType || !keyB64) return null;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(keyB64)) return null; // e.g. an SSH1 `bits e n` line
  const keyBlob = Buffer.from(keyB64, 'base64');
  // The blob starts with its own type; a line whose type disagrees with its blob is malformed.
  if (blobKeyType(keyBlob) !== keyType) return null;

  if (hostField.startsWith('|')) {
    const parts = hostField.split('|');
    // ['', '1', salt, hash]
    if (parts.length !== 4 || parts[1] !== '1' || !parts[2] || !parts[3]) return null;
    const salt = Buffer.from(parts[2], 'base64');
    const hash = Buffer.from(parts[3], 'base64');
    if (salt.length !== 20 || hash.length !== 20) return null;
    return { marker, patterns: null, hashed: { salt, hash }, keyType, keyBlob, line };
  }
  const patterns = hostField
    .split(',')
    .map((p) => p.toLowerCase())
    .filter((p) => p !== '');
  if (patterns.length === 0) return null;
  return { marker, patterns, hashed: null, keyType, keyBlob, line };
}

/** Read and parse a known_hosts file; a missing file is an empty one. Other read errors throw. */
export function readKnownHosts(file: string): KnownHostsFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file, entries: [], exists: false };
    throw err;
  }
  return { file, entries: parseKnownHosts(text), exists: true };
}

/** The name OpenSSH looks a host up by: `host` on port 22, `[host]:port` otherwise. */
export function hostLookupName(host: string, port: number): string {
  const h = host.toLowerCase();
  return port === 22 ? h : `[${h}]:${port}`;
}

/** The type string at the start of an SSH public key blob, or null if the blob is malformed. */
export function blobKeyType(blob: Buffer): string | null {
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  if (len === 0 || len > 64 || 4 + len > blob.length) return null;
  return blob.subarray(4, 4 + len).toString('latin1');
}

/** OpenSSH's fingerprint format: `SHA256:` + unpadded base64 of the SHA-256 of the key blob. */
export function fingerprintSha256(blob: Buffer): string {
  return `SHA256:${createHash('sha256').update(blob).digest('base64').replace(/=+$/, '')}`;
}

/** Glob match as OpenSSH's match_pattern(): `*` any run of characters, `?` exactly one. */
export function matchPattern(text: string, pattern: string): boolean {
  // Iterative wildcard matching with backtracking on the last `*`.
  let t = 0;
  let p = 0;
  let starP = -1;
  let starT = 0;
  while (t < text.length) {
    const pc = pattern[p];
    if (pc === '*') {
      starP = p++;
      starT = t;
    } else if (pc !== undefined && (pc === '?' || pc === text[t])) {
      p++;
      t++;
    } else if (starP !== -1) {
      p = starP + 1;
      t = ++starT;
    } else {
      return false;
    }
  }
  while (pattern[p] === '*') p++;
  return p === pattern.length;
}

/**
 * OpenSSH's match_hostname(): true when some positive pattern matches and no negated one does.
 * A matching negated pattern excludes the host from the line, whatever else matches.
 */
export function matchHostPatterns(name: string, patterns: readonly string[]): boolean {
  const lower = name.toLowerCase();
  let matched = false;
  for (const pattern of patterns) {
    const negated = pattern.startsWith('!');
    const body = negated ? pattern.slice(1) : pattern;
    if (matchPattern(lower, body.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function hashedMatches(hashed: { salt: Buffer; hash: Buffer }, name: string): boolean {
  const digest = createHmac('sha1', hashed.salt).update(name).digest();
  return digest.length === hashed.hash.length && timingSafeEqual(digest, hashed.hash);
}

/** Does this entry's host field name `host` on `port`? */
export function entryMatchesHost(entry: KnownHostEntry, host: string, port: number): boolean {
  const name = hostLookupName(host, port);
  if (entry.hashed) return hashedMatches(entry.hashed, name);
  return entry.patterns !== null && matchHostPatterns(name, entry.patterns);
}

/** The key types known (not revoked) for a host, in file order, without duplicates. */
export function knownKeyTypes(entries: readonly KnownHostEntry[], host: string, port: number): string[] {
  const types: string[] = [];
  for (const e of entries) {
    if (e.marker === null && !types.includes(e.keyType) && entryMatchesHost(e, host, port)) types.push(e.keyType);
  }
  return types;
}

/** Quote for a POSIX shell, for the commands we suggest in messages. */
function shq(s: string): string {
  return /^[A-Za-z0-9_./:@%+=-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

function shortType(keyType: string): string {
  if (keyType === 'ssh-ed25519') return 'ed25519';
  if (keyType === 'ssh-rsa') return 'rsa';
  if (keyType.startsWith('ecdsa-')) return 'ecdsa';
  if (keyType === 'ssh-dss') return 'dsa';
  return keyType;
}

/**
 * Check the key a server presented against the known_hosts entries, the way OpenSSH does:
 * revoked → refusal; a matching entry with the same key → ok; entries for the host but none with
 * this key → mismatch; no entry for the host → unknown. `@cert-authority` lines never accept.
 *
 * `file` is only used in messages.
 */
export function verifyHostKey(
  entries: readonly KnownHostEntry[],
  host: string,
  port: number,
  keyType: string,
  keyBlob: Buffer,
  file = 'known_hosts',
): HostKeyVerdict {
  const name = hostLookupName(host, port);
  const fp = fingerprintSha256(keyBlob);
  const presented = `${keyType} key ${fp}`;
  const matching = entries.filter((e) => e.marker !== 'cert-authority' && entryMatchesHost(e, host, port));

  const revoked = matching.find((e) => e.marker === 'revoked' && e.keyBlob.equals(keyBlob));
  if (revoked) {
    return {
      ok: false,
      kind: 'revoked',
      message:
        `host key for ${name} is REVOKED: the server presented ${presented}, which ${file} line ${revoked.line} ` +
        `marks @revoked. Refusing to connect. The server must be given a new host key; verify the new key's ` +
        `fingerprint out of band and add it to ${file}.`,
    };
  }

  const plain = matching.filter((e) => e.marker === null);
  const accepted = plain.find((e) => e.keyBlob.equals(keyBlob));
  if (accepted) return { ok: true, line: accepted.line };

  const removeCmd = `ssh-keygen -R ${shq(name)} -f ${shq(file)}`;
  if (plain.length > 0) {
    const sameType = plain.filter((e) => e.keyType === keyType);
    const where = (list: KnownHostEntry[]) => list.map((e) => e.line).join(', ');
    if (sameType.length > 0) {
      return {
        ok: false,
        kind: 'mismatch',
        message:
          `HOST KEY MISMATCH for ${name}: the server presented ${presented}, which differs from the ` +
          `${keyType} key recorded in ${file} (line ${where(sameType)}). Someone may be intercepting the ` +
          `connection, or the server's host key was changed. Verify the new key out of band, then remove ` +
          `the old entry with \`${removeCmd}\` and add the new one.`,
      };
    }
    const types = [...new Set(plain.map((e) => e.keyType))].join(', ');
    return {
      ok: false,
      kind: 'mismatch',
      message:
        `HOST KEY MISMATCH for ${name}: the server presented ${presented}, but ${file} only has ` +
        `${types} key(s) for this host (line ${where(plain)}) and the server did not offer them. ` +
        `Someone may be intercepting the connection, or the server's host keys were changed. Verify the ` +
        `new key out of band, then remove the old entry with \`${removeCmd}\` and add the new one.`,
    };
  }

  const portFlag = port === 22 ? '' : ` -p ${port}`;
  const scan = `ssh-keyscan${portFlag} -t ${shortType(keyType)} ${shq(host)} >> ${shq(file)}`;
  return {
    ok: false,
    kind: 'unknown',
    message:
      `host key for ${name} is not known: ${file} has no entry for it. The server presented ${presented}. ` +
      `Verify this fingerprint out of band (e.g. \`ssh-keygen -lf /etc/ssh/ssh_host_${shortType(keyType)}_key.pub\` ` +
      `on the server), then add it with \`${scan}\` (check the fingerprint it adds matches).`,
  };
}
