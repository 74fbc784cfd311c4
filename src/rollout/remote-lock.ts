/**
 * The lock on the server itself: one file, `$HOME/.agent-update.lock`, that says which executor
 * of which update of which plan database is working on this account's agent. It keeps two
 * executors off one agent however they reach it (two databases, two names for one machine, a
 * copy of the database), which the database alone cannot.
 *
 * Taken atomically with a POSIX shell and nothing else: the owner's lines are written to a file
 * of our own, then hard-linked to the lock's name (`ln` fails when the name exists, and the
 * content is complete before the name appears). The acquire script runs in front of
 * `agent.version_command`, in the same remote command: one round trip takes the lock and
 * re-checks the commit, and the version command runs only when the lock is ours.
 *
 * **The fencing token.** The lock holds the token of the executor's claim (its lease token: a
 * random id per executor run, never reused, neither the database id nor a pid). Every command
 * the executor sends afterwards runs behind the fence of ssh/fence.ts: in the same round trip,
 * on the server, the command runs only if the lock still holds *its* token. An executor that
 * lost its claim (frozen and taken over, cut off by a partition, running from a copy of the
 * database) can run nothing more there (Chubby's sequencers; Kleppmann's fencing tokens).
 *
 * **The command in flight.** The fence also keeps a record of the command while it runs,
 * `$HOME/.agent-update.run.PID` (see ssh/fence.ts). The acquire script reads the records after
 * writing the lock, so of two racing executors one is fenced or the other sees its record. A
 * command in flight keeps everyone (its own executor reconnecting too) from starting a command
 * beside it: the scripts stop with `inflight` and the executor waits for it (waitScript), then
 * kills it.
 *
 * Who may take a lock that exists:
 * - the executor whose token it holds (a re-check after a reconnect, a prepare's lock);
 * - anybody, when the caller names the exact content it judged stale (`stale`), which it does
 *   only when the holder is proven gone (rollout/locks.ts judgeLock);
 * - nobody else: the script prints the owner and exits 75 before the version command runs.
 */
import { FENCED_EXIT, INFLIGHT_EXIT, INFLIGHT_SH, LOCK_FILE, LOCK_PREFIX, RUN_FILE } from '../ssh/fence.js';
import { PROCESS_TREE_SH } from '../ssh/remote-run.js';
import { shellQuote } from '../util/shell.js';

export { LOCK_FILE };
/** what every line the lock scripts print starts with, so they are told apart from the version command's output */
/** exit status of the acquire script when the lock is someone else's (EX_TEMPFAIL) */
export const LOCK_HELD_EXIT = 75;

export interface LockOwner {
  update: string;
  /** the plan database's identity (a UUID kept in it) */
  db: string;
  /** the fencing token: the claiming executor's lease token */
  token: string;
  host: string;
  pid: number;
  /** the executor process's start time (lease.ts processStartTime), so a reused pid is not it */
  pidStart: string | null;
  /** ISO 8601, when the lock was taken */
  since: string;
  /** the plan database's path, for a person reading the lock */
  dbPath?: string;
}

/** The lock file's content: `key=value` lines, in this order. */
export function ownerText(o: LockOwner): string {
  const lines = ['agent-update-lock v2', `update=${o.update}`, `db=${o.db}`, `token=${o.token}`, `host=${o.host}`, `pid=${o.pid}`];
  if (o.pidStart) lines.push(`pid_start=${o.pidStart}`);
  lines.push(`since=${o.since}`);
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
    token: fields.token,
    host: fields.host,
    pid,
    pidStart: fields.pid_start ?? null,
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

/** true when the lock file holds `token` (grep -x: whole lines, -F: fixed strings) */
function holds(token: string): string {
  return `grep -qxF ${shellQuote(`token=${token}`)} ${L} 2>/dev/null`;
}

/** true when the lock file names this update of this database, whoever's token it holds */
function ourUpdate(o: LockOwner): string {
  return `grep -qxF ${shellQuote(`update=${o.update}`)} ${L} 2>/dev/null && grep -qxF ${shellQuote(`db=${o.db}`)} ${L} 2>/dev/null`;
}

/**
 * Take the lock for `owner`, or stop (exit 75) printing who holds it. `stale`: the exact content
 * of a lock the caller has judged stale, which may then be replaced. Once the lock is ours, a
 * command of an earlier run still in flight stops it too (exit 77, `inflight` lines), before the
 * command that follows (the version command) runs.
 */
export function acquireScript(owner: LockOwner, stale?: string): string {
  const tmp = `${L}.$$`;
  const lines = [
    `printf '%s\\n' ${shellQuote(ownerText(owner))} > ${tmp} || { ${say('error cannot write the lock file')}; exit ${LOCK_HELD_EXIT}; }`,
    `if ln ${tmp} ${L} 2>/dev/null; then rm -f ${tmp}; ${say('acquired')}`,
    `elif ${holds(owner.token)}; then rm -f ${tmp}; ${say('reentered')}`,
  ];
  if (stale !== undefined) {
    lines.push(`elif [ "$(cat ${L} 2>/dev/null)" = ${shellQuote(stale)} ]; then ${sayFile('was')}; mv -f ${tmp} ${L} && ${say('cleared-stale')}`);
  }
  lines.push(`else rm -f ${tmp}; ${say('held')}; ${sayFile('by')}; exit ${LOCK_HELD_EXIT}; fi`);
  lines.push(...INFLIGHT_SH, `busy '' || exit ${INFLIGHT_EXIT}`, LOCK_SCRIPT_END);
  return lines.join('\n');
}

/**
 * Remove the lock if it holds `owner`'s token; say which. A lock of the same update and
 * database under another token (an earlier executor's, or a copy's) is shown (`foreign`), for
 * the caller to judge and clear with clearScript.
 */
export function releaseScript(owner: LockOwner): string {
  return [
    `if ${holds(owner.token)}; then rm -f ${L} && ${say('released')}; elif ${ourUpdate(owner)}; then ${say('foreign')}; ${sayFile('by')}; else ${say('not-ours')}; fi`,
    LOCK_SCRIPT_END,
  ].join('\n');
}

/** A command in flight on the server, as its record says. */
export interface InFlight {
  pid: number;
  /** its start time (clock ticks since boot), '' when unknown */
  start: string;
  /** its timeout in seconds (0: none) */
  seconds: number;
  token: string;
}

function inflightOf(lines: string[]): InFlight[] {
  const out: InFlight[] = [];
  for (const l of lines) {
    const m = /^inflight pid=(\d+) start=(\d*) seconds=(\d*) token=(.*)$/.exec(l);
    if (m) out.push({ pid: Number(m[1]), start: m[2]!, seconds: Number(m[3] || 0), token: m[4]! });
  }
  return out;
}

/**
 * Why a fenced() command with `token` did not run, or null when it ran (its output is the
 * command's own). An operator's command cannot be mistaken for it: the line carries the token.
 */
export function notRunOf(stdout: string, code: number | null, token: string): { kind: 'fenced'; owner: string } | { kind: 'inflight'; inflight: InFlight[] } | { kind: 'error'; message: string } | null {
  if (code !== FENCED_EXIT && code !== INFLIGHT_EXIT) return null;
  const lines = stdout.split('\n').filter((l) => l.startsWith(LOCK_PREFIX)).map((l) => l.slice(LOCK_PREFIX.length));
  const head = `not-run ${token} `;
  const why = lines.find((l) => l.startsWith(head))?.slice(head.length);
  if (why === undefined) return null;
  if (why === 'fenced') return { kind: 'fenced', owner: lines.filter((l) => l.startsWith('by ')).map((l) => l.slice(3)).join('\n') };
  if (why === 'inflight') return { kind: 'inflight', inflight: inflightOf(lines) };
  return { kind: 'error', message: why.replace(/^error /, '') };
}

/**
 * Wait up to `seconds` for the commands in flight to end (each by its pid and start time: a
 * reused pid is not it), then stop what is left with everything it started (only a process whose
 * start time is known: without /proc a pid may be somebody else's by then); with `kill: false`,
 * only wait. Says `ended`, `killed PIDS`, or `alive PIDS` for what is still there.
 */
export function waitScript(inflight: readonly InFlight[], seconds: number, opts: { kill?: boolean } = {}): string {
  const kill = opts.kill ?? true;
  const list = inflight.map((f) => `${f.pid}:${f.start}`).join(' ');
  return [
    ...INFLIGHT_SH,
    ...PROCESS_TREE_SH,
    // a: the ones alive; k: those of them whose start time is known (only those are killed: a
    // pid without one may be another process's by now)
    // in flight: its shell alive and its record not emptied (the command loop lives on after its command)
    `alive() { a=; _kk=; for e in ${list}; do if up "\${e%%:*}" "\${e#*:}" && [ -s "$HOME/${RUN_FILE}\${e%%:*}" ]; then a="$a \${e%%:*}"; [ -n "\${e#*:}" ] && _kk="$_kk \${e%%:*}"; fi; done; }`,
    'i=0',
    `while alive; [ -n "$a" ] && [ "$i" -lt ${Math.max(0, Math.floor(seconds))} ]; do sleep 1; i=$((i+1)); done`,
    kill
      ? `if [ -z "$a" ]; then ${say('ended')}; else _w=$_kk; for _q in $_w; do stop "$_q"; done; alive; if [ -z "$a" ]; then echo "${LOCK_PREFIX}killed$_w"; else echo "${LOCK_PREFIX}alive$a"; fi; fi`
      : `if [ -z "$a" ]; then ${say('ended')}; else echo "${LOCK_PREFIX}alive$a"; fi`,
    LOCK_SCRIPT_END,
  ].join('\n');
}

/** Print the lock file, or say there is none; `inflight`: and a line for each command running under a lock there (inflightIn). */
export function readScript(opts: { inflight?: boolean } = {}): string {
  const lines = [`if [ -e ${L} ]; then ${sayFile('by')}; ${say('present')}; else ${say('none')}; fi`];
  if (opts.inflight) lines.push(...INFLIGHT_SH, "busy '' || :");
  return [...lines, LOCK_SCRIPT_END].join('\n');
}

/** The commands in flight a script's output names (readScript with `inflight`). */
export function inflightIn(stdout: string): InFlight[] {
  return inflightOf(stdout.split('\n').filter((l) => l.startsWith(LOCK_PREFIX)).map((l) => l.slice(LOCK_PREFIX.length)));
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
  | { kind: 'inflight'; inflight: InFlight[] }
  | { kind: 'foreign'; owner: string }
  | { kind: 'ended' | 'killed' | 'alive'; pids: number[] }
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
  else if (words.some((w) => w.startsWith('inflight '))) verdict = { kind: 'inflight', inflight: inflightOf(words) };
  else if (words.includes('foreign')) verdict = { kind: 'foreign', owner: body('by') };
  else {
    for (const kind of ['acquired', 'reentered', 'cleared-stale'] as const) {
      if (words.includes(kind)) verdict = { kind, previous: kind === 'acquired' ? null : body('was') };
    }
    for (const kind of ['released', 'not-ours', 'none', 'cleared', 'changed'] as const) {
      if (words.includes(kind)) verdict = { kind };
    }
    for (const kind of ['ended', 'killed', 'alive'] as const) {
      const w = words.find((x) => x === kind || x.startsWith(`${kind} `));
      if (w !== undefined) verdict = { kind, pids: w.slice(kind.length).trim().split(/\s+/).filter(Boolean).map(Number) };
    }
  }
  return { verdict, rest: rest.join('\n') };
}
