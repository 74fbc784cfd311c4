import { hostname, userInfo } from 'node:os';

/**
 * Who is doing this, for the audit trail: `user@host`. The OS user, from the password database
 * when there is one (a container may run as a uid with no entry: then $USER, then the uid).
 */
export function actor(): string {
  let user: string;
  try {
    user = userInfo().username;
  } catch {
    user = process.env.USER ?? process.env.LOGNAME ?? `uid ${process.getuid?.() ?? '?'}`;
  }
  return `${user}@${hostname()}`;
}
