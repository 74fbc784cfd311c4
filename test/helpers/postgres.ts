/**
 * A real PostgreSQL server for the tests: initdb in a fresh temporary folder, started on a free
 * port it picks itself (never a fixed one), listening on 127.0.0.1 and a socket in that folder,
 * one database created; `stop()` kills it and removes the folder. `stopServer()` and
 * `startServer()` take it down (a fast shutdown, as a restart does: sessions ended, what was
 * committed kept) and up again on the same port and data. The server refuses to run as root, so
 * under root it runs as the `postgres` user (runuser); otherwise as the current user.
 *
 * `login`: a role of its own that must give its password (scram-sha-256 over TCP, checked by the
 * server; every other login is trusted), allowed to create schemas in the database; its URL is
 * `loginUrl` (the password in it, URL-encoded).
 *
 * Not installed: `postgresSkip()` says why the tests that need it are skipped, unless
 * REQUIRE_POSTGRES=1 (CI), where it throws instead so the run fails.
 */
import { spawnSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before } from 'node:test';
import pg from 'pg';
import { testTmpRoot } from './tmp.js';

export interface PgServer {
  /** postgres://postgres@127.0.0.1:PORT/DB (trust authentication: no password) */
  readonly url: string;
  /** postgres://USER:PASSWORD@127.0.0.1:PORT/DB for the `login` asked for, else undefined */
  readonly loginUrl: string | undefined;
  /** `pg_ctl stop -m fast`: every session ended, nothing committed lost; returns once it is down */
  stopServer(): Promise<void>;
  /** start it again on the same port and data; returns once it accepts connections */
  startServer(): Promise<void>;
  stop(): Promise<void>;
}

/** A role that logs in with a password (see startPostgres). */
export interface PgLogin {
  user: string;
  password: string;
}

/** The folder of initdb, pg_ctl and postgres: $PG_BIN, else the newest /usr/lib/postgresql/N/bin. */
export function postgresBin(): string | null {
  const env = process.env.PG_BIN;
  if (env) return existsSync(join(env, 'pg_ctl')) ? env : null;
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => /^\d+$/.test(v) && existsSync(join(root, v, 'bin', 'pg_ctl')) && existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions.length ? join(root, versions[0]!, 'bin') : null;
}

/**
 * Why the PostgreSQL tests are skipped (a string for `test(..., { skip })`), or false when they
 * run. With REQUIRE_POSTGRES=1 a missing server throws: the run fails instead of passing untested.
 */
export function postgresSkip(): string | false {
  if (postgresBin() !== null) return false;
  if (process.env.REQUIRE_POSTGRES === '1') {
    throw new Error('REQUIRE_POSTGRES=1 but PostgreSQL is not installed (no /usr/lib/postgresql/N/bin/pg_ctl; set PG_BIN)');
  }
  return 'PostgreSQL is not installed (set REQUIRE_POSTGRES=1 to make that a failure)';
}

const isRoot = process.getuid?.() === 0;

/** `cmd args` as the server's user (postgres under root), its output for errors. */
function asServerUser(cmd: string, args: string[]): { status: number | null; output: string } {
  const r = isRoot
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}` };
}

/** A port free now on 127.0.0.1 (the OS picks it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const addr = s.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Poll with the client until the server accepts a connection (or `ms` pass). */
async function waitForConnection(url: string, ms: number): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    const c = new pg.Client({ connectionString: url });
    try {
      await c.connect();
      await c.query('SELECT 1');
      return;
    } catch (e) {
      if (Date.now() > end) throw new Error(`PostgreSQL did not accept connections: ${(e as Error).message}`, { cause: e });
    } finally {
      await c.end().catch(() => undefined);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const running = new Set<string>();
process.once('exit', () => {
  // a test process that ends without stop(): no server left behind
  const bin = postgresBin();
  for (const dir of running) {
    if (bin) asServerUser(join(bin, 'pg_ctl'), ['-D', dir, '-m', 'immediate', 'stop']);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Start a server in a new folder, on a free port, with database `database` (and the role `opts.login`). */
export async function startPostgres(database = 'agent_update_test', opts: { login?: PgLogin } = {}): Promise<PgServer> {
  const { login } = opts;
  if (login && !/^[a-z_][a-z0-9_]*$/.test(login.user)) throw new Error(`a login's name is [a-z_][a-z0-9_]*, got ${JSON.stringify(login.user)}`);
  const bin = postgresBin();
  if (bin === null) throw new Error('PostgreSQL is not installed');
  const dir = mkdtempSync(join(testTmpRoot(), 'agent-update-pg-'));
  if (isRoot) {
    const pw = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
    const gw = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
    chownSync(dir, Number(pw.stdout.trim()), Number(gw.stdout.trim()));
  }
  const data = join(dir, 'data');
  const init = asServerUser(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  if (init.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`initdb failed: ${init.output}`);
  }
  if (login) {
    // first match wins: the role's TCP logins need its password, everyone else stays trusted
    const hba = join(data, 'pg_hba.conf');
    writeFileSync(hba, `host all ${login.user} 127.0.0.1/32 scram-sha-256\n` + readFileSync(hba, 'utf8'));
  }
  running.add(dir);
  const stop = async () => {
    asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', 'stop']);
    running.delete(dir);
    rmSync(dir, { recursive: true, force: true });
  };
  // The port is free when picked; another process may take it before the server binds it, so a
  // start that fails is tried again on another port.
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=100`;
    const started = asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '60', 'start']);
    if (started.status !== 0) {
      if (attempt < 3) continue;
      await stop();
      throw new Error(`PostgreSQL did not start: ${started.output}`);
    }
    const admin = `postgres://postgres@127.0.0.1:${port}/postgres`;
    try {
      await waitForConnection(admin, 30_000);
      const c = new pg.Client({ connectionString: admin });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE ${database}`);
        if (login) {
          await c.query(`SET password_encryption = 'scram-sha-256'`);
          await c.query(`CREATE ROLE ${login.user} LOGIN PASSWORD ${c.escapeLiteral(login.password)}`);
          await c.query(`GRANT CREATE, CONNECT ON DATABASE ${database} TO ${login.user}`);
        }
      } finally {
        await c.end();
      }
    } catch (e) {
      await stop();
      throw e;
    }
    const loginUrl = login && `postgres://${login.user}:${encodeURIComponent(login.password)}@127.0.0.1:${port}/${database}`;
    return {
      url: `postgres://postgres@127.0.0.1:${port}/${database}`,
      loginUrl,
      async stopServer() {
        const r = asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-m', 'fast', '-w', '-t', '60', 'stop']);
        if (r.status !== 0) throw new Error(`pg_ctl stop failed: ${r.output}`);
      },
      async startServer() {
        const r = asServerUser(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', opts, '-w', '-t', '60', 'start']);
        if (r.status !== 0) throw new Error(`PostgreSQL did not start again on port ${port}: ${r.output}`);
        await waitForConnection(admin, 30_000);
      },
      stop,
    };
  }
}

/**
 * One PostgreSQL server for the tests of one file: started before its first test (unless they are
 * skipped: `skip` is postgresSkip()'s), stopped after its last. `postgres()` is the server, inside a test.
 */
export function postgresForFile(): { skip: string | false; postgres: () => PgServer } {
  const skip = postgresSkip();
  let server: PgServer | undefined;
  before(async () => {
    if (!skip) server = await startPostgres();
  });
  after(async () => {
    await server?.stop();
  });
  return {
    skip,
    postgres: () => {
      if (!server) throw new Error('no PostgreSQL server for this test file (it should have been skipped)');
      return server;
    },
  };
}
