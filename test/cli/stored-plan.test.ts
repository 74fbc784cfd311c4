/**
 * A plan stored by an older agent-update that this version would run wrongly is refused by
 * `start`/`resume` (exit 2, nothing written): a placeholder where its value cannot be quoted
 * (issue 10, 2.1), an abbreviated rollback.commit (2.4).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { CliContext } from '../../src/cli/context.js';
import { runCommand } from '../../src/cli/start.js';
import type { RolloutSettings } from '../../src/config/types.js';
import { EXIT, UsageError } from '../../src/errors.js';
import type { Transport } from '../../src/ssh/transport.js';
import { NEW, fakeSettings } from '../support/fake-settings.js';
import { openStore } from '../helpers/db.js';
import { FakeTransport } from '../support/fake-transport.js';

function settings(change: (s: RolloutSettings) => void): RolloutSettings {
  const s: RolloutSettings = structuredClone(fakeSettings);
  s.agent.update = ['git fetch {repo} {branch}', 'git reset --hard {commit}'];
  s.agent.restart = { web: 'restart web' };
  change(s);
  return s;
}

/** No server may be reached: a refused plan never gets that far. */
const unreachable = new FakeTransport();
unreachable.onConnect = () => {
  throw new Error('no server may be contacted');
};

class Ctx extends CliContext {
  constructor(db: string) {
    super({ db, quiet: true }, new PassThrough() as unknown as NodeJS.WriteStream, new PassThrough() as unknown as NodeJS.WriteStream);
  }

  override transport(): Promise<Transport> {
    return Promise.resolve(unreachable);
  }
}

async function planned(t: TestContext, s: RolloutSettings): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'agent-update-stored-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const db = join(dir, 'p.db');
  const store = openStore(db);
  await store.createUpdate({
    name: 'u', repo: '/r', branch: 'master', commit: NEW, configFile: null, settings: s, testStopAfter: 0,
    servers: [{ name: 's1', host: 's1', port: 22, user: 'u', type: 'app' }],
  });
  await store.setUpdateStatus('u', 'pending');
  await store.close();
  return db;
}

const CASES: Array<[string, (s: RolloutSettings) => void, RegExp]> = [
  ['a placeholder inside $(…) in an update command', (s) => void (s.agent.update[0] = 'git fetch "$(echo {repo})"'), /in agent\.update\[0\] \{repo\} is inside a \$\(…\) command substitution/],
  ['a placeholder inside `…` in a restart', (s) => void (s.agent.restart.web = 'restart `echo {branch}`'), /in agent\.restart\.web \{branch\} is inside a `…` command substitution/],
  ['a placeholder in a comment of the health command', (s) => void (s.agent.health.command = 'health # {commit}'), /in agent\.health\.command \{commit\} is in a comment/],
  ['an abbreviated rollback.commit', (s) => void (s.rollback.commit = 'abc1234'), /keeps rollback\.commit abc1234 abbreviated, so every rollback would end fatal/],
];

for (const [what, change, message] of CASES) {
  test(`start refuses a stored plan with ${what}: exit 2, nothing written`, async (t) => {
    const db = await planned(t, settings(change));
    const events = await (async () => {
      const store = openStore(db);
      try {
        return (await store.getEvents('u')).length;
      } finally {
        await store.close();
      }
    })();
    const ctx = new Ctx(db);
    try {
      await assert.rejects(runCommand(ctx, 'start', ['u'], {}), (e: unknown) => {
        assert.ok(e instanceof UsageError, String(e));
        assert.equal(e.exitCode, EXIT.usage);
        assert.match(e.message, /^cannot start u: its plan was made by an older agent-update and /);
        assert.match(e.message, message);
        assert.match(e.message, /cancel it \(`agent-update cancel u`\) and plan again$/);
        return true;
      });
    } finally {
      await ctx.close();
    }
    const store = openStore(db);
    try {
      assert.equal((await store.getUpdate('u')).status, 'pending');
      assert.equal((await store.getUpdate('u')).lease, null);
      assert.equal((await store.getEvents('u')).length, events, 'no event recorded');
    } finally {
      await store.close();
    }
  });
}
