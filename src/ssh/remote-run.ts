/**
 * Every remote command runs under a small POSIX sh supervisor, so a command that times out, or
 * whose executor went away, dies on the server with everything it started. SSH signals cannot
 * do it: OpenSSH refuses them for root logins and under a ForceCommand, and a dropped
 * connection sends none.
 *
 * The supervisor (plain `sh`, `ps`, `awk`, `kill`, `sleep`: nothing to install):
 * - runs the operator's command as sshd would, with the account's login shell
 *   (`$SHELL -c COMMAND`), its stdin from /dev/null as before;
 * - a watchdog kills it at `timeout` seconds (on the server's own clock, so it holds even when
 *   the connection is gone);
 * - a second watchdog reads the channel's stdin, which we keep open while the command runs:
 *   end of file means the executor closed the channel (its own timeout, an interrupt) or the
 *   connection died; the command is killed then too;
 * - killing is of the whole tree: the command's descendants are found with `ps -A -o pid= -o
 *   ppid=`, stopped (no new children), sent TERM, continued, and after a second sent KILL;
 * - it says on stderr what it did, on lines starting with `agent-update-run: `, which the
 *   client removes from the output it records.
 */
import { shellQuote } from '../util/shell.js';

export const RUN_PREFIX = 'agent-update-run: ';

/**
 * The POSIX sh functions every script that kills a command uses (the supervisor, the command
 * loop, the fencing's takeover of a command in flight): `tree PID` prints PID and every
 * descendant of it, from one `ps`; `stop PID` stops that whole tree (frozen first so it cannot
 * fork meanwhile; TERM, then KILL what is left a second later).
 */
export const PROCESS_TREE_SH = [
  // every descendant of pid $1 (and $1), from one ps: children found by walking the parents up
  `tree() { ps -A -o pid= -o ppid= 2>/dev/null | awk -v r="$1" '{ p[$1] = $2 } END { print r; for (x in p) { y = x; n = 0; while (y != r && (y in p) && n++ < 100) y = p[y]; if (y == r && x != r) print x } }'; }`,
  // the whole tree at once, frozen first so it cannot fork meanwhile; TERM, then KILL what is left
  'stop() { k=$(tree "$1"); kill -STOP $k 2>/dev/null; kill -TERM $k 2>/dev/null; kill -CONT $k 2>/dev/null; sleep 1; kill -KILL $k 2>/dev/null; }',
];

/** The supervisor's body (run with `sh -c BODY agent-update-run SECONDS COMMAND`). */
const SUPERVISOR = [
  't=$1; c=$2; why=',
  ...PROCESS_TREE_SH,
  // the watchdogs only tell this shell (a trapped signal ends `wait` at once); it does the killing
  "trap 'why=timeout' USR1",
  "trap 'why=hangup' USR2",
  'exec 3<&0',
  '"${SHELL:-/bin/sh}" -c "$c" </dev/null 3<&- &',
  'p=$!',
  'w1=',
  'if [ "$t" -gt 0 ]; then ( sleep "$t"; kill -USR1 $$ ) </dev/null >/dev/null 2>&1 3<&- & w1=$!; fi',
  '( while read -r _ <&3; do :; done; kill -USR2 $$ ) </dev/null >/dev/null 2>&1 &',
  'w2=$!',
  'exec 3<&-',
  'while :; do',
  '  wait $p; s=$?',
  // kill first, say so after: on a hang-up stderr is gone, and writing to it must not kill us (PIPE)
  `  if [ -n "$why" ]; then trap '' PIPE; stop $p; wait $p; s=$?; echo "${RUN_PREFIX}$why" >&2; break; fi`,
  '  kill -0 $p 2>/dev/null || break',
  'done',
  // the watchdogs and whatever they run (a sleep), not left behind
  'k=$( [ -n "$w1" ] && tree $w1; tree $w2); kill -KILL $k 2>/dev/null',
  // a command killed by a signal is reported as that signal, as sshd would (128 + n is a signal)
  'if [ "$s" -gt 128 ] && [ "$s" -lt 160 ] && n=$(kill -l "$s" 2>/dev/null) && [ -n "$n" ]; then trap - "$n" 2>/dev/null; kill -s "$n" $$; fi',
  'exit $s',
].join('\n');

/** `command`, to be run under the supervisor with a timeout of `timeoutMs` (rounded up to a second). */
export function supervised(command: string, timeoutMs: number): string {
  // 0: no timeout (only the hang-up watchdog)
  const seconds = timeoutMs > 0 ? Math.max(1, Math.ceil(timeoutMs / 1000)) : 0;
  return `exec sh -c ${shellQuote(SUPERVISOR)} agent-update-run ${seconds} ${shellQuote(command)}`;
}

/** Remove the supervisor's lines from stderr; say whether it killed the command for its timeout or a hang-up. */
export function splitRunOutput(stderr: string): { stderr: string; timedOut: boolean; hungUp: boolean } {
  const keep: string[] = [];
  let timedOut = false;
  let hungUp = false;
  for (const line of stderr.split('\n')) {
    if (line === `${RUN_PREFIX}timeout`) timedOut = true;
    else if (line === `${RUN_PREFIX}hangup`) hungUp = true;
    else keep.push(line);
  }
  return { stderr: keep.join('\n'), timedOut, hungUp };
}
