/**
 * How we authenticate: the identity files (parsed with the passphrase from the environment,
 * each parse kept) and the ssh-agent. A problem here is ours, not the server's: a TransportError
 * without key material.
 */
import { readFileSync } from 'node:fs';
import type { ParsedKey } from 'ssh2';
import type { SshConfig } from '../config/types.js';
import { TransportError } from './transport.js';
import { errorCode, errorMessage, type Ssh2 } from './ssh2-lib.js';

/**
 * Identity files that parsed, with the passphrase they parsed with. Parsing an encrypted key
 * costs about 0.3 s of CPU (its bcrypt KDF), and every connection (and each preflight) loads the
 * identity again; the same bytes with the same passphrase need not be parsed twice. Kept in
 * memory only, like the passphrase itself in the environment.
 */
const parsedIdentities = new Map<string, { key: Buffer; passphrase: string | undefined; parsed: ParsedKey }>();

/** Load an identity file, turning every problem into a TransportError without key material. */
export function loadIdentity(utils: Ssh2['utils'], file: string, envName: string): { file: string; parsed: ParsedKey } {
  let key: Buffer;
  try {
    key = readFileSync(file);
  } catch (err) {
    const code = errorCode(err);
    const why = code === 'ENOENT' ? 'it does not exist' : code === 'EACCES' ? 'permission denied' : errorMessage(err);
    throw new TransportError('config', `cannot read identity file ${file}: ${why}`);
  }
  const fromEnv = envName ? process.env[envName] : undefined;
  const passphrase = fromEnv === undefined || fromEnv === '' ? undefined : fromEnv;
  const known = parsedIdentities.get(file);
  if (known && known.passphrase === passphrase && known.key.equals(key)) return { file, parsed: known.parsed };
  const parsed = utils.parseKey(key, passphrase);
  if (parsed instanceof Error) {
    const msg = parsed.message;
    if (/no passphrase given/i.test(msg)) {
      throw new TransportError(
        'auth',
        `identity file ${file} is encrypted and no passphrase was given: put the passphrase in the environment ` +
          `variable ${envName || '(ssh.passphrase_env is not set)'}, or load the key into ssh-agent`,
      );
    }
    if (passphrase !== undefined && /passphrase|decrypt|integrity/i.test(msg)) {
      throw new TransportError(
        'auth',
        `cannot decrypt identity file ${file} with the passphrase from the environment variable ${envName}: ` +
          `wrong passphrase?`,
      );
    }
    // ssh2's parse messages carry no key material; strip the passphrase anyway, to be sure.
    const safe = passphrase ? msg.split(passphrase).join('***') : msg;
    throw new TransportError('config', `identity file ${file} is not a usable private key (${safe})`);
  }
  const first = (Array.isArray(parsed) ? parsed[0] : parsed) as ParsedKey | undefined;
  if (!first || !first.isPrivateKey()) {
    throw new TransportError('config', `identity file ${file} does not contain a private key (is it the .pub file?)`);
  }
  parsedIdentities.set(file, { key, passphrase, parsed: first });
  return { file, parsed: first };
}

/** The ssh-agent socket a connection uses: `$SSH_AUTH_SOCK` when `ssh.agent` is on and it is set. */
export function agentSocket(sshCfg: Pick<SshConfig, 'agent'>, env: NodeJS.ProcessEnv = process.env): string | undefined {
  return sshCfg.agent ? env.SSH_AUTH_SOCK || undefined : undefined;
}

export function noWayToAuthenticate(sshCfg: SshConfig): TransportError {
  return new TransportError(
    'config',
    sshCfg.agent
      ? 'no way to authenticate: no identity file is configured and SSH_AUTH_SOCK is not set'
      : 'no way to authenticate: no identity file is configured and ssh-agent is disabled',
  );
}
