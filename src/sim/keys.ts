/**
 * Key pairs for the simulated fleet (the demo and the tests).
 *
 * ssh2's `utils.generateKeyPairSync('ed25519')` writes a malformed key about one time in 200:
 * when the public key starts with a zero byte it drops that byte (as if the key were a
 * number), and the result parses neither in ssh2 (`Malformed OpenSSH private key`) nor in
 * OpenSSH (`error in libcrypto`). Keys users bring are not affected; keys we make here are
 * checked and made again until they parse.
 */
import ssh2 from 'ssh2';

const { utils } = ssh2;

export type KeyType = 'ed25519' | 'ecdsa' | 'rsa';

export interface GeneratedKeyPair {
  /** OpenSSH private key (unencrypted) */
  private: string;
  /** `type base64 [comment]`, as in authorized_keys */
  public: string;
}

const MAX_ATTEMPTS = 50;

/** A key pair that ssh2 itself parses back (private and public), so OpenSSH does too. */
export function generateKeyPair(type: KeyType = 'ed25519', comment?: string): GeneratedKeyPair {
  const extra = comment ? { comment } : {};
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const pair =
      type === 'ecdsa'
        ? utils.generateKeyPairSync('ecdsa', { bits: 256, ...extra })
        : type === 'rsa'
          ? utils.generateKeyPairSync('rsa', { bits: 2048, ...extra })
          : utils.generateKeyPairSync('ed25519', extra);
    if (parses(pair.private) && parses(pair.public)) return { private: pair.private, public: pair.public };
  }
  throw new Error(`could not generate a valid ${type} key in ${MAX_ATTEMPTS} attempts`);
}

function parses(key: string): boolean {
  const parsed = utils.parseKey(key);
  return !(parsed instanceof Error) && !(Array.isArray(parsed) && parsed.length === 0);
}
