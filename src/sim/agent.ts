/**
 * A simulated agent living in one server's home folder, for tests and `demo`.
 *
 * Layout under `$home/agent/`:
 *
 *     repo/           git clone of the upstream (see upstream.ts), HEAD = installed commit
 *     bin/restart     `restart NAME`: logs "NAME <epoch-ms>" to restarts.log; for `web`, (re)starts
 *                     the agent: records the repo's HEAD, the time, BROKEN and STARTUP_DELAY_MS
 *                     (read from repo/agent.env) in run/web.state
 *     bin/health      exit 7 with a message on stderr when not running, BROKEN=1, still
 *                     starting (now < started + STARTUP_DELAY_MS) or crashed (CRASH_AFTER_MS
 *                     after it came online, a crash loop); else prints
 *                     {"status":"online","commit":"<hex>"} and exits 0
 *     restarts.log    one line per restart
 *     deploys.log     appended to by the update commands of agentCommands()
 *
 * The scripts are POSIX sh and find the agent folder from their own path, not from $HOME.
 */
import { execFileSync } from 'node:child_process';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { execa } from 'execa';

const RESTART_SCRIPT = `#!/bin/sh
# restart NAME: simulated restart of one part of the agent.
set -u
AGENT_DIR=$(cd "$(dirname "$0")/.." && pwd) || exit 1
if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: restart NAME" >&2
  exit 2
fi
name=$1
now=$(date +%s%3N)
echo "$name $now" >> "$AGENT_DIR/restarts.log"
if [ "$name" = web ]; then
  commit=$(git -C "$AGENT_DIR/repo" rev-parse HEAD) || { echo "restart web: no repository" >&2; exit 1; }
  broken=0
  delay=0
  crash=0
  checks=0
  if [ -f "$AGENT_DIR/repo/agent.env" ]; then
    v=$(sed -n 's/^BROKEN=\\([0-9]*\\).*$/\\1/p' "$AGENT_DIR/repo/agent.env" | tail -n 1)
    [ -n "$v" ] && broken=$v
    v=$(sed -n 's/^STARTUP_DELAY_MS=\\([0-9]*\\).*$/\\1/p' "$AGENT_DIR/repo/agent.env" | tail -n 1)
    [ -n "$v" ] && delay=$v
    v=$(sed -n 's/^CRASH_AFTER_MS=\\([0-9]*\\).*$/\\1/p' "$AGENT_DIR/repo/agent.env" | tail -n 1)
    [ -n "$v" ] && crash=$v
    v=$(sed -n 's/^CRASH_AFTER_CHECKS=\\([0-9]*\\).*$/\\1/p' "$AGENT_DIR/repo/agent.env" | tail -n 1)
    [ -n "$v" ] && checks=$v
  fi
  mkdir -p "$AGENT_DIR/run"
  tmp="$AGENT_DIR/run/web.state.$$"
  printf 'COMMIT=%s\\nSTARTED_MS=%s\\nBROKEN=%s\\nSTARTUP_DELAY_MS=%s\\nCRASH_AFTER_MS=%s\\nCRASH_AFTER_CHECKS=%s\\n' "$commit" "$now" "$broken" "$delay" "$crash" "$checks" > "$tmp"
  rm -f "$AGENT_DIR/run/health.count"
  mv -f "$tmp" "$AGENT_DIR/run/web.state"
  echo "web restarted at $commit"
else
  echo "$name restarted"
fi
exit 0
`;

const HEALTH_SCRIPT = `#!/bin/sh
# health: prints the running agent's status; exit 0 only when it is online.
set -u
AGENT_DIR=$(cd "$(dirname "$0")/.." && pwd) || exit 1
state="$AGENT_DIR/run/web.state"
if [ ! -f "$state" ]; then
  echo "health: agent is not running (no $state)" >&2
  exit 7
fi
COMMIT=
STARTED_MS=0
BROKEN=0
STARTUP_DELAY_MS=0
CRASH_AFTER_MS=0
CRASH_AFTER_CHECKS=0
. "$state"
if [ "$BROKEN" = 1 ]; then
  echo "health: connection refused: agent at $COMMIT crashed on startup" >&2
  exit 7
fi
now=$(date +%s%3N)
ready=$((STARTED_MS + STARTUP_DELAY_MS))
if [ "$now" -lt "$ready" ]; then
  echo "health: starting ($((ready - now))ms left)" >&2
  exit 7
fi
if [ "$CRASH_AFTER_CHECKS" -gt 0 ]; then
  n=$(cat "$AGENT_DIR/run/health.count" 2>/dev/null || echo 0)
  echo $((n + 1)) > "$AGENT_DIR/run/health.count"
  if [ "$n" -ge "$CRASH_AFTER_CHECKS" ]; then
    echo "health: connection refused: agent at $COMMIT crashed after $CRASH_AFTER_CHECKS good checks" >&2
    exit 7
  fi
fi
if [ "$CRASH_AFTER_MS" -gt 0 ] && [ "$now" -ge $((ready + CRASH_AFTER_MS)) ]; then
  echo "health: connection refused: agent at $COMMIT crashed $((now - ready - CRASH_AFTER_MS))ms ago" >&2
  exit 7
fi
printf '{"status":"online","commit":"%s"}\\n' "$COMMIT"
exit 0
`;

export interface AgentPaths {
  dir: string;
  repo: string;
  bin: string;
  restartsLog: string;
  deploysLog: string;
  webState: string;
}

export function agentPaths(home: string): AgentPaths {
  const dir = path.join(home, 'agent');
  return {
    dir,
    repo: path.join(dir, 'repo'),
    bin: path.join(dir, 'bin'),
    restartsLog: path.join(dir, 'restarts.log'),
    deploysLog: path.join(dir, 'deploys.log'),
    webState: path.join(dir, 'run', 'web.state'),
  };
}

/**
 * Install the simulated agent into `$home/agent` at `commit` of `upstreamRepo` and start it
 * (runs `restart web` once), so it is online at `commit`.
 */
export async function installAgent(home: string, upstreamRepo: string, commit: string): Promise<void> {
  const p = agentPaths(path.resolve(home));
  await mkdir(p.bin, { recursive: true });
  await mkdir(path.join(p.dir, 'run'), { recursive: true });
  const env = { GIT_TERMINAL_PROMPT: '0' };
  await execa('git', ['clone', '--quiet', '--no-checkout', upstreamRepo, p.repo], { env });
  await execa('git', ['-C', p.repo, '-c', 'advice.detachedHead=false', 'checkout', '--quiet', '--detach', commit], {
    env,
  });
  await writeFile(path.join(p.bin, 'restart'), RESTART_SCRIPT);
  await writeFile(path.join(p.bin, 'health'), HEALTH_SCRIPT);
  await chmod(path.join(p.bin, 'restart'), 0o755);
  await chmod(path.join(p.bin, 'health'), 0o755);
  await execa(path.join(p.bin, 'restart'), ['web']);
}

/**
 * Put an installed agent at `commit` (fetching it from `upstreamRepo` when given) and restart
 * web, as if an update to it had happened outside any rollout. Not counted in deploys.log.
 */
export async function setAgentCommit(home: string, commit: string, upstreamRepo?: string): Promise<void> {
  const p = agentPaths(path.resolve(home));
  if (upstreamRepo !== undefined) await execa('git', ['-C', p.repo, 'fetch', '--quiet', upstreamRepo]);
  await execa('git', ['-C', p.repo, 'reset', '--hard', '--quiet', commit]);
  await execa(path.join(p.bin, 'restart'), ['web']);
}

/** Lines in `$home/agent/deploys.log` (one per update run by agentCommands()); 0 if missing. */
export function readDeployCount(home: string): number {
  return readLines(agentPaths(home).deploysLog).length;
}

/** The commits recorded in deploys.log, in order. */
export function readDeploys(home: string): string[] {
  return readLines(agentPaths(home).deploysLog);
}

/** `git rev-parse HEAD` of the agent's repository: the installed commit. */
export function currentCommit(home: string): string {
  return execFileSync('git', ['-C', agentPaths(home).repo, 'rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
}

/** How many restarts were logged, of `name` only when given. */
export function restartCount(home: string, name?: string): number {
  const lines = readLines(agentPaths(home).restartsLog);
  if (name === undefined) return lines.length;
  return lines.filter((line) => line.split(' ')[0] === name).length;
}

export interface WebState {
  commit: string;
  startedMs: number;
  broken: boolean;
  startupDelayMs: number;
}

/** What the last `restart web` recorded (the running commit), or null when never started. */
export function webState(home: string): WebState | null {
  const file = agentPaths(home).webState;
  if (!existsSync(file)) return null;
  const vars = new Map<string, string>();
  for (const line of readLines(file)) {
    const eq = line.indexOf('=');
    if (eq > 0) vars.set(line.slice(0, eq), line.slice(eq + 1));
  }
  return {
    commit: vars.get('COMMIT') ?? '',
    startedMs: Number(vars.get('STARTED_MS') ?? 0),
    broken: vars.get('BROKEN') === '1',
    startupDelayMs: Number(vars.get('STARTUP_DELAY_MS') ?? 0),
  };
}

function readLines(file: string): string[] {
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line.length > 0);
}

/**
 * `agent.semver_command` for the simulated agent: the VERSION file of its checkout (upstream.ts
 * writes one in every commit; the releases of `UpstreamOptions.versions` hold a semver).
 */
export const SEMVER_COMMAND = 'cat ~/agent/repo/VERSION';

/** The SPEC `agent:` config section (snake_case keys) driving this simulated agent. */
export interface AgentCommands {
  version_command: string;
  update: string[];
  restart: Record<string, string>;
  health: { command: string; expect: string };
}

export function agentCommands(): AgentCommands {
  return {
    version_command: 'git -C ~/agent/repo rev-parse HEAD',
    update: [
      'git -C ~/agent/repo fetch --quiet {repo} {branch}',
      'git -C ~/agent/repo reset --hard --quiet {commit}',
      'echo {commit} >> ~/agent/deploys.log',
    ],
    restart: {
      web: '~/agent/bin/restart web',
      workers: '~/agent/bin/restart workers',
      rq: '~/agent/bin/restart rq',
      redis: '~/agent/bin/restart redis',
    },
    health: { command: '~/agent/bin/health', expect: '{commit}' },
  };
}
