/**
 * The lock on the server itself: one file, `$HOME/.agent-update.lock`, that says which update of
 * which plan database is working on this account's agent. It keeps two executors with different
 * databases (two operators, two machines) off one agent, which the database alone cannot.
 *
 * Taken atomically with a POSIX shell and nothing else: the owner's lines are written to a file
 * of our own, then hard-linked to the lock's name (`ln` fails when the name exists, and the
 * content is complete before the name appears). The acquire script runs in front of
 * `agent.version_command`, in the same remote command: one round trip takes the lock and
 * re-checks the commit, and the version command runs only when the lock is ours.
 *
 * Who may take a lock that exists:
 * - the same update of the same database (`update=` and `db=` lines match): a takeover after a
 *   crash, or a retry; the owner lines are rewritten with the new pid;
 * - anybody, when the caller names the exact content it judged stale (`stale`), which it does
 *   only for a lock of its own database whose update is no longer working on the server;
 * - nobody else: the script prints the owner and exits 75 before the version command runs.
 */
import { shellQuote } from '../util/shell.js';

export const LOCK_FILE = '.agent-update.lock';
/** what every line the lock scripts print starts with, so they are told apart from the version command's output */
export const LOCK_PREFIX = 'agent-update-lock: ';
/** exit status of the acquire script when the lock is someone else's (EX_TEMPFAIL) */
export const LOCK_HELD_EXIT = 75;

export interface LockOwner {
  update: string;
  /** the plan database's identity (a UUID kept in it) */
  db: string;
  host: string;
  pid: number;
  /** ISO 8601, when the lock was taken */
  since: string;
  /** the plan database's path, for a person reading the lock */
  dbPath?: string;
}

/** The lock file's content: `key=value` lines, in this order. */
export function ownerText(o: LockOwner): string {
  const lines = ['agent-update-lock v1', `update=${o.update}`, `db=${o.db}`, `host=${o.host}`, `pid=${o.pid}`, `since=${o.since}`];
  if (o.dbPath) lines.push(`db_path=${o.dbPath}`);
  for (const l of lines) if (/[\n\r\0]/.test(l)) throw new Error(`a lock owner field cannot contain a line break: ${JSON.stringify(l)}`);
  return lines.join('\n');
}

/** Parse a lock file's content; null fields when a line is missing (a lock written by hand, or cut). */
export function parseOwner(text: string): Partial<LockOwner> & { raw: string } {
  const fields: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf('=');
    if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1);
  }
  const pid = fields.pid !== undefined && /^\d+$/.test(fields.pid) ? Number(fields.pid) : undefined;
  return {
    raw: text,
    update: fields.update,
    db: fields.db,
    host: fields.host,
    pid,
    since: fields.since,
    dbPath: fields.db_path,
  };
}

export function describeOwner(o: Partial<LockOwner>): string {
  if (!o.update && !o.db) return 'an unknown owner (the lock file is empty or unreadable)';
  return `update ${o.update ?? '?'} (database ${o.dbPath ?? o.db ?? '?'}), pid ${o.pid ?? '?'} on ${o.host ?? '?'} since ${o.since ?? '?'}`;
}

const L = '"$HOME"/' + LOCK_FILE;
/** the line every lock script ends with; the command that follows it (the version command) runs only when the lock is ours */
export const LOCK_SCRIPT_END = ': agent-update-lock end';

const say = (word: string) => `echo ${shellQuote(LOCK_PREFIX + word)}`;
const sayFile = (word: string) => `sed ${shellQuote(`s/^/${LOCK_PREFIX}${word} /`)} ${L} 2>/dev/null`;

/** true when the lock file names this update of this database (grep -x: whole lines, -F: fixed strings) */
function ours(o: LockOwner): string {
  return `grep -qxF ${shellQuote(`update=${o.update}`)} ${L} 2>/dev/null && grep -qxF ${shellQuote(`db=${o.db}`)} ${L} 2>/dev/null`;
}

/**
 * Take the lock for `owner`, or stop (exit 75) printing who holds it. `stale`: the exact content
 * of a lock the caller has judged stale, which may then be replaced.
 */
export function acquireScript(owner: LockOwner, stale?: string): string {
  const tmp = `${L}.$$`;
  const lines = [
    `printf '%s\\n' ${shellQuote(ownerText(owner))} > ${tmp} || { ${say('error cannot write the lock file')}; exit ${LOCK_HELD_EXIT}; }`,
    `if ln ${tmp} ${L} 2>/dev/null; then rm -f ${tmp}; ${say('acquired')}`,
    `elif ${ours(owner)}; then ${sayFile('was')}; mv -f ${tmp} ${L} && ${say('reentered')}`,
  ];
  if (stale !== undefined) {
    lines.push(`elif [ "$(cat ${L} 2>/dev/null)" = ${shellQuote(stale)} ]; then ${sayFile('was')}; mv -f ${tmp} ${L} && ${say('cleared-stale')}`);
  }
  lines.push(`else rm -f ${tmp}; ${say('held')}; ${sayFile('by')}; exit ${LOCK_HELD_EXIT}; fi`, LOCK_SCRIPT_END);
  return lines.join('\n');
}

/** Remove the lock if it is `owner`'s (this update of this database); say which. */
export function releaseScript(owner: LockOwner): string {
  return [`if ${ours(owner)}; then rm -f ${L} && ${say('released')}; else ${say('not-ours')}; fi`, LOCK_SCRIPT_END].join('\n');
}

/** Print the lock file, or say there is none. */
export function readScript(): string {
  return [`if [ -e ${L} ]; then ${sayFile('by')}; ${say('present')}; else ${say('none')}; fi`, LOCK_SCRIPT_END].join('\n');
}

/** Remove the lock only if its content is still exactly `content` (what the operator was shown). */
export function clearScript(content: string): string {
  return [
    `if [ "$(cat ${L} 2>/dev/null)" = ${shellQuote(content)} ]; then rm -f ${L} && ${say('cleared')}; elif [ -e ${L} ]; then ${say('changed')}; else ${say('none')}; fi`,
    LOCK_SCRIPT_END,
  ].join('\n');
}

export type LockVerdict =
  | { kind: 'acquired' | 'reentered' | 'cleared-stale'; previous: string | null }
  | { kind: 'held'; owner: string }
  | { kind: 'released' | 'not-ours' | 'none' | 'cleared' | 'changed' }
  | { kind: 'present'; owner: string }
  | { kind: 'error'; message: string };

/**
 * Split a lock script's output from what follows it: the verdict, and the rest of stdout (the
 * version command's), so its last line is still the commit.
 */
export function splitLockOutput(stdout: string): { verdict: LockVerdict | null; rest: string } {
  const lock: string[] = [];
  const rest: string[] = [];
  for (const line of stdout.split('\n')) (line.startsWith(LOCK_PREFIX) ? lock : rest).push(line);
  const body = (word: string) =>
    lock
      .filter((l) => l.startsWith(`${LOCK_PREFIX}${word} `))
      .map((l) => l.slice(LOCK_PREFIX.length + word.length + 1))
      .join('\n');
  const words = lock.map((l) => l.slice(LOCK_PREFIX.length));
  let verdict: LockVerdict | null = null;
  const err = words.find((w) => w.startsWith('error '));
  if (err !== undefined) verdict = { kind: 'error', message: err.slice('error '.length) };
  else if (words.includes('held')) verdict = { kind: 'held', owner: body('by') };
  else if (words.includes('present')) verdict = { kind: 'present', owner: body('by') };
  else {
    for (const kind of ['acquired', 'reentered', 'cleared-stale'] as const) {
      if (words.includes(kind)) verdict = { kind, previous: kind === 'acquired' ? null : body('was') };
    }
    for (const kind of ['released', 'not-ours', 'none', 'cleared', 'changed'] as const) {
      if (words.includes(kind)) verdict = { kind };
    }
  }
  return { verdict, rest: rest.join('\n') };
}
