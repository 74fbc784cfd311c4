/** The `ssh2` library, loaded on first use, and the fields of the errors it reports. */

export type Ssh2 = typeof import('ssh2');
let ssh2Module: Promise<Ssh2> | null = null;
/**
 * ssh2 is loaded on the first connection, not at start-up: the commands that never connect
 * (status, pause, a refused second start) answer sooner.
 */
export function loadSsh2(): Promise<Ssh2> {
  // a CommonJS module: its exports are the ESM namespace's default
  ssh2Module ??= import('ssh2').then((m) => (m as unknown as { default: Ssh2 }).default);
  return ssh2Module;
}

export function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

export function errorLevel(err: unknown): string | undefined {
  const level = (err as { level?: unknown } | null)?.level;
  return typeof level === 'string' ? level : undefined;
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
