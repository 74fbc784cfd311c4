/**
 * A synthetic update of many servers written straight into a plan database (no sshd): what `status`,
 * `status --json` and `logs` of a big rollout read. Used by `npm run bench` (d) and by
 * test/store/scale.test.ts. Deterministic: server i's status is `statusOf(i, n)`.
 *
 * The update is `running` with a lease, a budget (max_failures 5%), and per worked server a
 * realistic journal (a probe, the lock, the update commands, a restart, two health polls) and
 * its status events.
 */
import Database from 'better-sqlite3';
import type { RolloutSettings } from '../src/config/types.js';
import type { ServerStatus } from '../src/model/lifecycle.js';
import type { Store } from '../src/store/port.js';

export const SYNTH_FROM = 'a'.repeat(40);
export const SYNTH_TO = 'b'.repeat(40);

/** The status of server i (0-based) of n: mostly success, a few of every other kind, the tail pending. */
export function statusOf(i: number, n: number): ServerStatus {
  if (i === Math.floor(n * 0.6)) return 'running';
  if (i > n * 0.6) return 'pending';
  if (i % 100 === 7) return 'rolled-back';
  if (i % 250 === 11) return 'failed';
  if (i % 50 === 3) return 'skipped';
  if (i % 125 === 5) return 'unreachable';
  return 'success';
}

const settings: RolloutSettings = {
  source: { repo: 'https://example.invalid/agent.git', branch: 'master', commit: SYNTH_TO },
  ssh: {
    user: 'deploy', port: 22, identityFile: null, passphraseEnv: 'AGENT_UPDATE_SSH_PASSPHRASE', agent: true, knownHosts: '/dev/null',
    connectTimeoutMs: 10_000, commandTimeoutMs: 300_000, keepaliveIntervalMs: 15_000, outputLimitBytes: 65_536,
  },
  agent: {
    versionCommand: 'git -C /opt/agent rev-parse HEAD',
    update: ['git -C /opt/agent fetch origin {commit}', 'git -C /opt/agent checkout --force {commit}'],
    restart: { web: 'systemctl restart agent-web' },
    health: { command: 'curl -fsS localhost:8080/health', expect: '{commit}', timeoutMs: 60_000, intervalMs: 2000 },
  },
  restart: ['web'],
  rollback: { enabled: true, continueAfterRollback: true, commit: null },
  execution: { busyWaitMs: 600_000, maxFailures: { percent: 5 } },
};

/** Writes update `name` with `n` servers through the Store, then their state (and their journal when `journal`) in one transaction of its own. */
export async function writeSyntheticUpdate(store: Store, name: string, n: number, opts: { journal?: boolean } = {}): Promise<void> {
  const journal = opts.journal ?? true;
  const at = (i: number, s = 0) => new Date(Date.UTC(2026, 0, 1) + i * 60_000 + s * 1000).toISOString();
  await store.createUpdate({
    name,
    repo: settings.source.repo,
    branch: settings.source.branch,
    commit: SYNTH_TO,
    configFile: '/etc/agent-update/fleet.yaml',
    settings,
    testStopAfter: 0,
    servers: Array.from({ length: n }, (_, i) => ({
      name: `web-${String(i + 1).padStart(5, '0')}`,
      host: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
      port: 22,
      user: 'deploy',
      type: i % 3 === 0 ? 'db' : 'app',
      types: i % 3 === 0 ? ['db'] : ['app'],
    })),
  });
  // The state a long rollout leaves is written straight into the file, on a connection of its own:
  // no command of the tool writes 70,000 journal rows with made-up times.
  const db = new Database(store.location, { timeout: 10_000 });
  try {
    writeRows(db, name, n, journal, at);
  } finally {
    db.close();
  }
}

function writeRows(db: Database.Database, name: string, n: number, journal: boolean, at: (i: number, s?: number) => string): void {
  const ids = db.prepare('SELECT id FROM servers WHERE update_name = ? ORDER BY position').pluck().all(name) as number[];
  const setServer = db.prepare(
    'UPDATE servers SET status = ?, step = ?, from_commit = ?, to_commit = ?, error = ?, started_at = ?, ended_at = ?, lock_held = ? WHERE id = ?',
  );
  const step = db.prepare(
    'INSERT INTO steps (update_name, server_id, phase, command, started_at, ended_at, exit_code, stdout, stderr, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
  );
  const event = db.prepare("INSERT INTO events (update_name, server_name, at, kind, message) VALUES (?, ?, ?, 'server-status', ?)");
  db.transaction(() => {
    db.prepare(
      `UPDATE updates SET status = 'running', started_at = ?, lease_token = 'synthetic', lease_pid = 1, lease_host = 'bench',
       lease_since = ?, lease_heartbeat = ? WHERE name = ?`,
    ).run(at(0), at(0), new Date().toISOString(), name);
    ids.forEach((id, i) => {
      const status = statusOf(i, n);
      const serverName = `web-${String(i + 1).padStart(5, '0')}`;
      const worked = status === 'success' || status === 'rolled-back' || status === 'failed' || status === 'running';
      const error =
        status === 'rolled-back' ? 'health: timed out after 60s waiting for the target commit; rolled back to the previous commit (verified)'
        : status === 'failed' ? 'update: git checkout exited 128: fatal: reference is not a tree'
        : status === 'unreachable' ? 'connect: connection refused'
        : null;
      setServer.run(
        status,
        status === 'running' ? 'verify' : null,
        status === 'pending' ? SYNTH_FROM : status === 'unreachable' ? null : SYNTH_FROM,
        status === 'success' || status === 'skipped' ? SYNTH_TO : status === 'running' ? SYNTH_TO : null,
        error,
        worked ? at(i) : null,
        worked && status !== 'running' ? at(i, 50) : status === 'skipped' || status === 'unreachable' ? at(0) : null,
        status === 'running' ? 1 : 0,
        id,
      );
      if (!journal) return;
      if (status !== 'pending') step.run(name, id, 'probe', '(read the agent-update lock) && git -C /opt/agent rev-parse HEAD', at(0), at(0), status === 'unreachable' ? null : 0, `${SYNTH_FROM}\n`, '', error);
      if (!worked) return;
      step.run(name, id, 'lock', 'take the agent-update lock', at(i, 1), at(i, 1), 0, 'taken\n', '', null);
      for (const [k, cmd] of settings.agent.update.entries()) {
        step.run(name, id, 'update', cmd.replace('{commit}', SYNTH_TO), at(i, 2 + k), at(i, 3 + k), 0, '', k === 0 ? `From origin\n * branch ${SYNTH_TO} -> FETCH_HEAD\n` : '', null);
      }
      step.run(name, id, 'restart', 'systemctl restart agent-web', at(i, 5), at(i, 6), 0, '', '', null);
      step.run(name, id, 'health', 'curl -fsS localhost:8080/health', at(i, 8), at(i, 8), 7, '', 'curl: (7) Failed to connect to localhost port 8080\n', null);
      if (status !== 'running') step.run(name, id, 'health', 'curl -fsS localhost:8080/health', at(i, 10), at(i, 10), 0, `{"status":"online","commit":"${SYNTH_TO}"}\n`, '', null);
      event.run(name, serverName, at(i), 'running (update)');
      if (status !== 'running') event.run(name, serverName, at(i, 50), error ? `${status}: ${error}` : status);
    });
  })();
}
