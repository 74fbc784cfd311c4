/**
 * Schema migrations, applied in order by `PRAGMA user_version`. Never edit a migration that has
 * shipped: append a new one.
 */
export const MIGRATIONS: readonly string[] = [
  // 1: updates, their servers, the step journal and the event log.
  `
  CREATE TABLE updates (
    name               TEXT PRIMARY KEY,
    status             TEXT NOT NULL,
    created_at         TEXT NOT NULL,
    started_at         TEXT,
    ended_at           TEXT,
    repo               TEXT NOT NULL,
    branch             TEXT NOT NULL,
    commit_sha         TEXT NOT NULL,
    batch_of           TEXT,
    config_file        TEXT,
    settings_json      TEXT NOT NULL,
    test_stop_after    INTEGER NOT NULL DEFAULT 0,
    pause_at_worked    INTEGER,
    pause_requested_at TEXT,
    reason             TEXT,
    lease_token        TEXT,
    lease_pid          INTEGER,
    lease_host         TEXT,
    lease_pid_start    TEXT,
    lease_since        TEXT,
    lease_heartbeat    TEXT
  );
  CREATE TABLE servers (
    id          INTEGER PRIMARY KEY,
    update_name TEXT NOT NULL REFERENCES updates(name),
    position    INTEGER NOT NULL,
    name        TEXT NOT NULL,
    host        TEXT NOT NULL,
    port        INTEGER NOT NULL,
    user        TEXT NOT NULL,
    type        TEXT NOT NULL,
    status      TEXT NOT NULL,
    step        TEXT,
    from_commit TEXT,
    to_commit   TEXT,
    error       TEXT,
    started_at  TEXT,
    ended_at    TEXT,
    UNIQUE (update_name, name)
  );
  CREATE INDEX servers_by_update ON servers (update_name, position);
  CREATE TABLE steps (
    id          INTEGER PRIMARY KEY,
    update_name TEXT NOT NULL,
    server_id   INTEGER NOT NULL REFERENCES servers(id),
    phase       TEXT NOT NULL,
    command     TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    exit_code   INTEGER,
    stdout      TEXT,
    stderr      TEXT,
    error       TEXT
  );
  CREATE INDEX steps_by_server ON steps (server_id, id);
  CREATE TABLE events (
    id          INTEGER PRIMARY KEY,
    update_name TEXT NOT NULL,
    server_name TEXT,
    at          TEXT NOT NULL,
    kind        TEXT NOT NULL,
    message     TEXT NOT NULL
  );
  CREATE INDEX events_by_update ON events (update_name, id);
  `,
  // 2: the database's identity (named in the locks it puts on servers), and whether a server may
  // still carry our lock (set before the command that takes it, cleared once it is released).
  `
  CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
  );
  INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
  ALTER TABLE servers ADD COLUMN lock_held INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX servers_by_status ON servers (status, port);
  CREATE INDEX events_by_server ON events (update_name, server_name);
  `,
  // 3: every type of a server (a JSON list, `type` first), for servers in several groups of an
  // inventory; NULL in rows written before it, which have just `type`.
  `
  ALTER TABLE servers ADD COLUMN types TEXT;
  `,
  // 4: how each server is reached when it differs from the update's ssh settings (per-server
  // identity files, known_hosts, jump hosts), as JSON: paths and host names, never key material.
  // NULL: as the update's ssh settings say (every server planned before it existed).
  `
  ALTER TABLE servers ADD COLUMN ssh_json TEXT;
  `,
  // 5: the audit trail: who did what (events.actor, `user@host`; NULL for the engine's own
  // events and rows written before it), who asked for the pending pause, and from which count
  // of finished servers a test-mode limit (--stop-after) was counted, so the pause says
  // "1 server finished" for `resume --stop-after 1`, not the running total.
  `
  ALTER TABLE events ADD COLUMN actor TEXT;
  ALTER TABLE updates ADD COLUMN pause_requested_by TEXT;
  ALTER TABLE updates ADD COLUMN pause_base INTEGER;
  `,
  // 6: indexes for big fleets and long histories: an update's journal (`logs`) without scanning
  // every update's steps, and the batches split from an update (the failure budget's group).
  `
  CREATE INDEX steps_by_update ON steps (update_name, server_id, id);
  CREATE INDEX updates_by_batch ON updates (batch_of);
  `,
  // 7: each server's agent version as the plan's probe read it (agent.semver_command, in normal
  // semver form) and its class against the target (required, recommended, current); NULL when
  // not read (no semver_command, unreachable, unreadable) or not classed (no source.version).
  `
  ALTER TABLE servers ADD COLUMN agent_version TEXT;
  ALTER TABLE servers ADD COLUMN version_class TEXT;
  `,
  // 8: per-server targets and the links between updates. servers.path_json: the hops a server
  // walks, as JSON [{commit, version}] in order, its own target last (stepping stones; undo's
  // one commit per server); NULL = one hop to the update's commit. servers.hop: the index in that
  // path being worked on, committed before the hop's first command (NULL: none begun).
  // updates.retry_of / undo_of: the update a `retry` / `undo` was made from; created_by: who
  // planned it (`user@host`).
  `
  ALTER TABLE servers ADD COLUMN path_json TEXT;
  ALTER TABLE servers ADD COLUMN hop INTEGER;
  ALTER TABLE updates ADD COLUMN retry_of TEXT;
  ALTER TABLE updates ADD COLUMN undo_of TEXT;
  ALTER TABLE updates ADD COLUMN created_by TEXT;
  `,
  // 9: `auto` (plan/auto.ts). auto_runs: one row per `auto` that planned: while it runs (ended_at
  // NULL) it is the claim that keeps a second `auto` of the same config from planning too (its
  // pid, host, pid start and heartbeat judged like a lease), then the audit record of what it
  // found (outcome: nothing-to-do, started, refused) and the update it made, if any. An `auto`
  // that finds the config's update running or paused writes nothing. Indexes: the updates of a
  // config (auto's identity of "this config's update") and the retries of an update.
  `
  CREATE TABLE auto_runs (
    id          INTEGER PRIMARY KEY,
    config_file TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT,
    actor       TEXT NOT NULL,
    pid         INTEGER NOT NULL,
    host        TEXT NOT NULL,
    pid_start   TEXT,
    heartbeat   TEXT NOT NULL,
    commit_sha  TEXT,
    update_name TEXT,
    outcome     TEXT,
    message     TEXT
  );
  CREATE INDEX auto_runs_by_config ON auto_runs (config_file, id);
  CREATE INDEX updates_by_config ON updates (config_file, created_at);
  CREATE INDEX updates_by_retry ON updates (retry_of);
  `,
  // 10: progressive delivery (execution.steps, bake, guard). steps_promoted: how many of the
  // update's steps are done and let go (0: in its first step); bake_step / bake_left_ms: the step
  // (1-based) whose servers are baking and the bake time left at its last check, so a takeover or
  // a resume goes on from there (NULL: not baking); guard_checked_at / guard_summary: the guard's
  // last round over the servers that passed.
  `
  ALTER TABLE updates ADD COLUMN steps_promoted INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE updates ADD COLUMN bake_step INTEGER;
  ALTER TABLE updates ADD COLUMN bake_left_ms INTEGER;
  ALTER TABLE updates ADD COLUMN guard_checked_at TEXT;
  ALTER TABLE updates ADD COLUMN guard_summary TEXT;
  `,
  // 11: deploy freezes (issue 25; model/freeze.ts). freezes: one row per freeze of a source repo
  // (repo_key: the repo as model/freeze.ts repoKey writes it; repo as the config wrote it; the
  // config it was frozen with), who froze it, when and why; active while unfrozen_at is NULL,
  // then the audit record with who lifted it and when. At most one active freeze per repo (the
  // partial unique index); the other index: a repo's freezes in order (history).
  `
  CREATE TABLE freezes (
    id          INTEGER PRIMARY KEY,
    repo_key    TEXT NOT NULL,
    repo        TEXT NOT NULL,
    config_file TEXT,
    reason      TEXT NOT NULL,
    frozen_by   TEXT NOT NULL,
    frozen_at   TEXT NOT NULL,
    unfrozen_by TEXT,
    unfrozen_at TEXT
  );
  CREATE UNIQUE INDEX freezes_active ON freezes (repo_key) WHERE unfrozen_at IS NULL;
  CREATE INDEX freezes_by_repo ON freezes (repo_key, id);
  `,
];
