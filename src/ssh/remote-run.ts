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
 *   connection died; the command is killed then too; each line on it is a beat, and when none
 *   came for the dead-man timeout (a silent partition, a frozen executor: no end of file) the
 *   command is killed as well;
 * - nothing runs where `ps` cannot list the process tree (PROCS_WORK_SH): it exits 113 instead;
 * - the command's output goes to the channel through two FIFOs, so a process it left in the
 *   background holding its output is seen (OUTPUT_SH), and the command fails;
 * - killing is of the whole tree: the command's descendants are found with `ps -A -o pid= -o
 *   ppid=`, stopped (no new children), sent TERM, continued, and after a second sent KILL;
 * - it says on stderr what it did, on lines starting with `agent-update-run: `, which the
 *   client removes from the output it records.
 */
import { shellQuote } from '../util/shell.js';
import { checkToken, FENCE_SH, INFLIGHT_SH } from './fence.js';

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


/**
 * sh: `procs_work` is true when `tree` works on this server, checked before anything of the
 * operator's runs: it must find this shell and, under it, the subshell of the command
 * substitution it runs in (ps and awk are there). Without `ps`, or with a busybox `ps` that has
 * no `-o`, `tree` prints its root alone: a command killed at its timeout would leave its children
 * running while we reported it killed "with everything it started".
 */
export const PROCS_WORK_SH = 'procs_work() { set -- $(tree $$); [ "$#" -ge 2 ] && [ "$1" = "$$" ]; }';

/** The exit status of the supervisor that refused to run a command here (PROCS_WORK_SH failed). */
export const NOPROCS_STATUS = 113;

/** The error of every command on a server where PROCS_WORK_SH fails (the loop's `noprocs`, the supervisor's). */
export const NOPROCS_ERROR =
  'refused: this server cannot list its processes (`ps -A -o pid= -o ppid=` does not work: no ps, or a busybox ps without -o), ' +
  'so agent-update could not kill a command with everything it started at its timeout; install procps';

/**
 * The timer of one command (`sh -c TIMER agent-update-timer SECONDS DEAD_MAN PID`), a shell of
 * its own counting whole seconds with `sleep 1`, so killing it (KILL: nothing to trap, nothing to
 * race) leaves at most a `sleep 1` that ends within the second, never a sleep as long as the
 * timeout. It signals PID (the loop or the supervisor):
 * - HUP every second, a tick (OUTPUT_SH counts them after the command's end); it ends when PID
 *   is gone, so a loop killed outright leaves no timer counting forever;
 * - USR1 at SECONDS (0: never): the command's timeout;
 * - ALRM when DEAD_MAN seconds (0: never) went by without a beat: the stdin watchdog sends the
 *   timer URG for each line it reads, and a silent partition or a frozen executor sends none
 *   (no end of file either: the hang-up watchdog cannot see it).
 * Nothing is sent to the timer with a signal whose default is to kill: one that came before its
 * trap was set (a beat at once) would kill it, and the command would go without its timeout.
 */
export const TIMER = [
  'i=0; j=0',
  "trap 'j=0' URG",
  'while :; do',
  '  sleep 1',
  '  kill -HUP "$3" 2>/dev/null || exit 0',
  '  i=$((i+1)); j=$((j+1))',
  '  if [ "$1" -gt 0 ] && [ "$i" -eq "$1" ]; then kill -USR1 "$3" 2>/dev/null; fi',
  '  if [ "$2" -gt 0 ] && [ "$j" -eq "$2" ]; then kill -ALRM "$3" 2>/dev/null; fi',
  'done',
].join('\n');

/**
 * sh for a command's own output. The command writes to two FIFOs in a private folder ($q/o,
 * $q/e), each read by a `cat` ($co, $ce) that passes it on to the channel; a process the command
 * left in the background with its output (`nohup agent &`) keeps a FIFO open, and its cat never
 * sees the end. `outwait` waits for both cats; from the timer's second tick after the command's
 * end (HUP: x=1; at least a second) it looks on each tick for a process other than the cat
 * holding a FIFO (Linux: /proc/PID/fd): found, the output is held (`held=1`, `hp` = `PID NAME`),
 * the cats are killed. Not found, the output may still be on its way through a slow channel: it
 * waits on, up to 11 ticks (a holder this account cannot see, or no /proc), then says held
 * without a name.
 */
export const OUTPUT_SH = [
  // a process other than $1 with FIFO $2 open: `PID NAME`
  'holder() { for h in /proc/[0-9]*/fd/*; do [ "$h" -ef "$2" ] || continue; h=${h#/proc/}; h=${h%%/*}; [ "$h" = "$1" ] && continue; n=; read -r n 2>/dev/null </proc/$h/comm; echo "$h ${n:-?}"; return; done; }',
  'outwait() {',
  '  hp=; held=; k=0',
  '  for w in $co $ce; do',
  '    while :; do',
  // a wait that a trapped signal ended early says > 128 (so does a cat dead of PIPE: the next wait says 127)
  '      x=; wait $w; [ $? -gt 128 ] || break; [ -n "$x" ] || continue',
  '      k=$((k+1)); hp=$(holder $co "$q/o"); [ -n "$hp" ] || hp=$(holder $ce "$q/e")',
  '      [ -n "$hp" ] || [ "$k" -ge 10 ] || continue',
  '      held=1; kill -KILL $co $ce 2>/dev/null; wait $co 2>/dev/null; wait $ce 2>/dev/null; return',
  '    done',
  '  done',
  '}',
];

/** The supervisor's body (run with `sh -c BODY agent-update-run SECONDS COMMAND DEAD_MAN`). */
const SUPERVISOR = [
  't=$1; c=$2; m=${3:-0}; tk=${4:-}; why=; x=; held=',
  ...PROCESS_TREE_SH,
  PROCS_WORK_SH,
  ...OUTPUT_SH,
  ...INFLIGHT_SH,
  ...FENCE_SH,
  // nothing of the command runs where its tree could not be killed
  `procs_work || { echo "${RUN_PREFIX}noprocs" >&2; exit ${NOPROCS_STATUS}; }`,
  // behind the fence (fence.ts) when given a token: not run, it exits here with why
  'if [ -n "$tk" ]; then fence "$tk" "$t" || { _e=$?; rm -f "$_r"; exit $_e; }; fi',
  // the watchdogs only tell this shell (a trapped signal ends `wait` at once); it does the killing
  "trap 'why=timeout' USR1",
  "trap 'why=hangup' USR2",
  "trap 'why=deadman' ALRM",
  "trap 'x=1' HUP",
  'exec 3<&0',
  // its own output (OUTPUT_SH), where FIFOs can be made; else the channel's, as before
  'f=; q=$(mktemp -d 2>/dev/null) && mkfifo "$q/o" "$q/e" 2>/dev/null && f=1',
  'if [ -n "$f" ]; then',
  '  cat "$q/o" </dev/null 3<&- & co=$!',
  '  cat "$q/e" </dev/null >&2 3<&- & ce=$!',
  '  "${SHELL:-/bin/sh}" -c "$c" </dev/null >"$q/o" 2>"$q/e" 3<&- &',
  'else',
  '  "${SHELL:-/bin/sh}" -c "$c" </dev/null 3<&- &',
  'fi',
  'p=$!',
  `sh -c ${shellQuote(TIMER)} agent-update-timer "$t" "$m" $$ </dev/null >/dev/null 2>&1 3<&- &`,
  'w1=$!',
  // the stdin watchdog: each line is a beat (the timer counts the dead-man time from it), the end a hang-up
  '( while read -r _ <&3; do kill -URG $w1 2>/dev/null; done; kill -USR2 $$ ) </dev/null >/dev/null 2>&1 &',
  'w2=$!',
  'exec 3<&-',
  'while :; do',
  '  wait $p; s=$?',
  // kill first, say so after: on a hang-up stderr is gone, and writing to it must not kill us (PIPE)
  `  if [ -n "$why" ]; then trap '' PIPE; stop $p; wait $p; s=$?; break; fi`,
  '  kill -0 $p 2>/dev/null || break',
  'done',
  'kill -KILL $w2 2>/dev/null; wait $w2 2>/dev/null',
  // the executor is gone (hang-up) or silent (dead man): nobody waits for the rest of the output
  'if [ -n "$f" ]; then',
  '  if [ "$why" = hangup ] || [ "$why" = deadman ]; then kill -KILL $co $ce 2>/dev/null; else outwait; fi',
  'fi',
  // the timer and its sleep, not left behind; then what we did, after all of the command's output
  'k=$(tree $w1); kill -KILL $k 2>/dev/null',
  '[ -n "$q" ] && rm -rf "$q"',
  `[ -n "$why" ] && echo "${RUN_PREFIX}$why" >&2`,
  `[ -n "$held" ] && echo "${RUN_PREFIX}held $hp" >&2`,
  '[ -n "$tk" ] && rm -f "$_r"',
  // a command killed by a signal is reported as that signal, as sshd would (128 + n is a signal)
  'if [ "$s" -gt 128 ] && [ "$s" -lt 160 ] && n=$(kill -l "$s" 2>/dev/null) && [ -n "$n" ]; then trap - "$n" 2>/dev/null; kill -s "$n" $$; fi',
  'exit $s',
].join('\n');

/**
 * `command`, to be run under the supervisor with a timeout of `timeoutMs` (rounded up to a
 * second) and a dead-man timeout of `deadManMs` (0: none; the executor sends a beat line on the
 * channel's stdin meanwhile, see deadManOf in command-end.ts); with `fence`, behind that
 * fencing token (fence.ts).
 */
export function supervised(command: string, timeoutMs: number, deadManMs = 0, fence?: string): string {
  // 0: no timeout (only the hang-up watchdog)
  return `exec sh -c ${shellQuote(SUPERVISOR)} agent-update-run ${wholeSeconds(timeoutMs)} ${shellQuote(command)} ${wholeSeconds(deadManMs)}${fence === undefined ? '' : ` ${checkToken(fence)}`}`;
}

/** Milliseconds as the whole seconds the server's timers count (rounded up; 0 stays 0: off). */
export function wholeSeconds(ms: number): number {
  return ms > 0 ? Math.max(1, Math.ceil(ms / 1000)) : 0;
}

/** What the supervisor said on stderr (its own lines removed from it). */
export interface RunReport {
  stderr: string;
  timedOut: boolean;
  hungUp: boolean;
  /** killed because no beat came for the dead-man timeout */
  deadMan: boolean;
  /** it refused to run the command (NOPROCS_ERROR) */
  noProcs: boolean;
  /** the command left a process holding its output: `PID NAME`, or '' when it could not be named; null when not */
  held: string | null;
}

/** Remove the supervisor's lines from stderr; say what it did. */
export function splitRunOutput(stderr: string): RunReport {
  const keep: string[] = [];
  const r: RunReport = { stderr: '', timedOut: false, hungUp: false, deadMan: false, noProcs: false, held: null };
  for (const line of stderr.split('\n')) {
    if (line === `${RUN_PREFIX}timeout`) r.timedOut = true;
    else if (line === `${RUN_PREFIX}hangup`) r.hungUp = true;
    else if (line === `${RUN_PREFIX}deadman`) r.deadMan = true;
    else if (line === `${RUN_PREFIX}noprocs`) r.noProcs = true;
    else if (line.startsWith(`${RUN_PREFIX}held `)) r.held = line.slice(`${RUN_PREFIX}held `.length).trim();
    else keep.push(line);
  }
  r.stderr = keep.join('\n');
  return r;
}

/** The error of a command that left a process holding its output; `holder` is `PID NAME`, or '' when unknown. */
export function heldOutputError(holder: string): string {
  const m = /^(\d+) (.*)$/.exec(holder);
  // a process name is the server's text: shown, never interpreted
  const who = m ? `pid ${m[1]}: ${m[2]!.replace(/[^\x20-\x7e]/g, '?')}` : 'a process it started';
  return (
    `the command ended but left a process holding its output (${who}); it would die of SIGPIPE when this session closes: ` +
    'redirect its output (e.g. `nohup agent >agent.log 2>&1 &`) or give it output of its own'
  );
}
