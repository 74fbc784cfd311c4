/**
 * The fence every command of an executor's claim runs behind (issue 20), in POSIX sh: on the
 * server, in the same round trip as the command, it runs only if the server's agent-update lock
 * (`~/.agent-update.lock`, rollout/remote-lock.ts) still holds the executor's fencing token, and
 * only if no command of an earlier run is in flight there.
 *
 * The record of a command in flight is `~/.agent-update.run.PID`, PID being the shell that runs
 * the command (the command loop of channel.ts, the supervisor of remote-run.ts): `token=`,
 * `start=` (PID's start time, so a reused pid is not it) and `seconds=` (the command's timeout)
 * while a command runs, empty while that shell waits for the next one, gone with the shell.
 * It is written (one write) before the token is checked; whoever takes the lock writes the lock,
 * then reads the records: of two racing parties, one is fenced or sees the other's record (the
 * order of one host's file-system writes, as in Dekker's algorithm). A live record keeps any
 * other command from starting: the executor's own re-run after a lost connection too.
 *
 * The fence is part of the command loop and of the supervisor (a field of the command's frame,
 * an argument), so it costs no process of its own: the check is shell builtins. `fenced()` is
 * the same fence as one command of its own, for a transport that has neither (the tests' fakes).
 */
import { shellQuote } from '../util/shell.js';

/** The server's agent-update lock, in the account's home (rollout/remote-lock.ts takes and releases it). */
export const LOCK_FILE = '.agent-update.lock';
/** What every line of the lock scripts and of the fence starts with. */
export const LOCK_PREFIX = 'agent-update-lock: ';
/** The record of a command in flight: `RUN_FILE` + the pid of the shell that runs it. */
export const RUN_FILE = '.agent-update.run.';
/** exit status of a fenced command that was not run: the lock no longer holds its token */
export const FENCED_EXIT = 76;
/** exit status of a fence (or a lock script) that found a command of an earlier run still in flight */
export const INFLIGHT_EXIT = 77;

/** A fencing token is placed unquoted in frames and arguments: letters, digits and dashes only. */
export function checkToken(token: string): string {
  if (!/^[A-Za-z0-9-]{1,100}$/.test(token)) throw new Error(`a fencing token must be letters, digits and dashes: ${JSON.stringify(token)}`);
  return token;
}

/**
 * POSIX sh functions for the records, with no process forked for a look (names of our own,
 * underscored, so that no variable the environment exports is assigned):
 * - `st PID`: `_s` = the start time of PID (field 22 of /proc/PID/stat, clock ticks since boot;
 *   empty where there is no /proc), `_z` = its state;
 * - `up PID START`: PID is alive, not a zombie, and started at START (any, when START is empty);
 * - `busy MINE`: an `inflight` line for every record but MINE whose shell is alive and has a
 *   command running (a non-empty record); records of shells that are gone are removed. Returns 1
 *   when one is in flight.
 */
export const INFLIGHT_SH = [
  `st() { _s=; _z=; [ -r "/proc/$1/stat" ] || return 0; read -r _s 2>/dev/null <"/proc/$1/stat" || { _s=; return 0; }; _s=\${_s##*") "}; set -f; set -- $_s; set +f; _z=$1; if [ $# -ge 20 ]; then shift 19; _s=$1; else _s=; fi; }`,
  'up() { kill -0 "$1" 2>/dev/null && st "$1" && [ "$_z" != Z ] && { [ -z "$2" ] || [ "$_s" = "$2" ]; }; }',
  'busy() {',
  '  _b=0',
  `  for _f in "$HOME"/${RUN_FILE}*; do`,
  '    [ -f "$_f" ] && [ "$_f" != "$1" ] || continue',
  '    _p=${_f##*.}',
  "    case $_p in ''|*[!0-9]*) continue ;; esac",
  '    _t=; _o=; _q=',
  '    while IFS== read -r _x _y; do case $_x in token) _t=$_y ;; start) _o=$_y ;; seconds) _q=$_y ;; esac; done 2>/dev/null <"$_f"',
  '    if up "$_p" "$_o"; then',
  // an empty record: its shell waits for a command (or is writing one: then it is fenced, see above)
  '      [ -n "$_t" ] || continue',
  `      echo "${LOCK_PREFIX}inflight pid=$_p start=$_o seconds=$_q token=$_t"; _b=1`,
  '    else rm -f "$_f"; fi',
  '  done',
  '  return $_b',
  '}',
];

/**
 * sh: `fence TOKEN SECONDS` writes this shell's record, then returns 0 when the command may run;
 * else it prints why (`not-run TOKEN fenced|inflight|error …`, notRunOf) and returns
 * FENCED_EXIT or INFLIGHT_EXIT with the record emptied again. `_r` is the record (`unfence`
 * empties it once the command has ended). Needs INFLIGHT_SH.
 */
export const FENCE_SH = [
  `_L="$HOME/${LOCK_FILE}"`,
  `_r="$HOME/${RUN_FILE}$$"`,
  'fence() {',
  '  st $$',
  // the record first, then the token: see the header for why this order
  `  printf 'token=%s\\nstart=%s\\nseconds=%s\\n' "$1" "$_s" "$2" >"$_r" || { echo "${LOCK_PREFIX}not-run $1 error cannot write $_r"; return ${FENCED_EXIT}; }`,
  '  _ok=',
  '  if [ -f "$_L" ]; then while IFS= read -r _l; do [ "$_l" = "token=$1" ] && _ok=1; done 2>/dev/null <"$_L"; fi',
  `  if [ -z "$_ok" ]; then : >"$_r"; echo "${LOCK_PREFIX}not-run $1 fenced"; sed 's/^/${LOCK_PREFIX}by /' "$_L" 2>/dev/null; return ${FENCED_EXIT}; fi`,
  `  busy "$_r" || { : >"$_r"; echo "${LOCK_PREFIX}not-run $1 inflight"; return ${INFLIGHT_EXIT}; }`,
  '}',
  "unfence() { : >\"$_r\" 2>/dev/null; }",
];


/**
 * `command` behind the fence as one command of its own (`sh -c FENCE agent-update-fence TOKEN
 * SECONDS COMMAND`), its record removed when it ends; for a transport with no command loop or
 * supervisor of ours.
 */
export function fenced(command: string, token: string, seconds: number): string {
  const body = [
    ...INFLIGHT_SH,
    ...FENCE_SH,
    'fence "$1" "$2" || exit $?',
    '"${SHELL:-/bin/sh}" -c "$3"',
    '_e=$?',
    'rm -f "$_r"',
    'exit $_e',
  ].join('\n');
  return `exec sh -c ${shellQuote(body)} agent-update-fence ${checkToken(token)} ${Math.max(0, Math.floor(seconds))} ${shellQuote(command)}`;
}
