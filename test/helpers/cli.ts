import { execa, type ResultPromise } from 'execa';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/test/helpers/cli.js. */
export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const BIN = `${ROOT}bin/agent-update.js`;

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run the real CLI in its own process, as an operator would. Never throws on a non-zero exit. */
export async function cli(args: string[], opts: { db?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): Promise<CliResult> {
  const r = await spawnCli(args, opts);
  return { code: r.exitCode ?? -1, stdout: String(r.stdout), stderr: String(r.stderr) };
}

export function spawnCli(
  args: string[],
  opts: { db?: string; cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {},
): ResultPromise<{ reject: false; stdin: 'ignore'; timeout: number; env: Record<string, string>; cwd?: string }> {
  const full = opts.db ? ['--db', opts.db, ...args] : args;
  return execa('node', [BIN, ...full], {
    reject: false,
    stdin: 'ignore',
    timeout: opts.timeoutMs ?? 120_000,
    env: { NO_COLOR: '1', ...opts.env },
    cwd: opts.cwd,
  });
}

/** `status NAME --json`, parsed. */
export async function statusJson(db: string, name: string): Promise<StatusDoc> {
  const r = await cli(['status', name, '--json'], { db });
  if (r.code !== 0) throw new Error(`status ${name} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout) as StatusDoc;
}

export interface StatusDoc {
  name: string;
  status: string;
  createdAt: string;
  startedAt: string | null;
  endedAt: string | null;
  source: { repo: string; branch: string; commit: string };
  batchOf: string | null;
  counts: Record<string, number>;
  servers: Array<{
    name: string;
    host: string;
    type: string;
    status: string;
    step: string | null;
    fromCommit: string | null;
    toCommit: string | null;
    error: string | null;
    startedAt: string | null;
    endedAt: string | null;
  }>;
}

export function byName(doc: StatusDoc): Record<string, StatusDoc['servers'][number]> {
  return Object.fromEntries(doc.servers.map((s) => [s.name, s]));
}
