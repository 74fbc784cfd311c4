import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chooseDb, dbDisplay, dbRetryOf } from '../../src/cli/context.js';
import { isPostgresUrl, parsePgUrl, redactUrl, scrub } from '../../src/store/postgres/url.js';
import { UsageError } from '../../src/errors.js';

test('--db and $AGENT_UPDATE_DB: a postgres:// or postgresql:// URL is PostgreSQL, anything else a SQLite file', () => {
  assert.equal(chooseDb('postgres://u@h/db', {}).kind, 'postgres');
  assert.equal(chooseDb(undefined, { AGENT_UPDATE_DB: 'postgresql://u@h/db' }).kind, 'postgres');
  assert.equal(chooseDb(undefined, { AGENT_UPDATE_DB: 'POSTGRES://u@h/db' }).kind, 'postgres');
  const file = chooseDb('plans/postgres.db', {});
  assert.equal(file.kind, 'sqlite');
  assert.ok(file.kind === 'sqlite' && file.path.endsWith('/plans/postgres.db'));
  // --db wins over the environment
  assert.equal(chooseDb('x.db', { AGENT_UPDATE_DB: 'postgres://u@h/db' }).kind, 'sqlite');
});

test('the schema is the URL option `schema` (default agent_update), taken out of the URL the client library sees', () => {
  const t = parsePgUrl('postgres://ops@db.example:5433/fleet?schema=team_a&sslmode=require');
  assert.equal(t.schema, 'team_a');
  assert.ok(!t.url.includes('schema='), t.url);
  assert.ok(t.url.includes('sslmode=require'), t.url);
  assert.equal(parsePgUrl('postgres://ops@db.example/fleet').schema, 'agent_update');
  assert.throws(() => parsePgUrl('postgres://ops@db/fleet?schema=Team-A'), UsageError);
  assert.throws(() => parsePgUrl('postgres://ops@db/fleet?schema=a;drop'), UsageError);
});

test('a password is never shown: not in the location, not in the command lines suggested, not in a message', () => {
  const db = 'postgres://ops:s3cr%40t@db.example/fleet?schema=team_a&password=other';
  const t = parsePgUrl(db);
  for (const shown of [t.location, t.shown, dbDisplay(chooseDb(db, {})), redactUrl(db)]) {
    assert.ok(!shown.includes('s3cr') && !shown.includes('other'), shown);
  }
  assert.ok(t.shown.includes('schema=team_a'), 'a pasted command line keeps the schema');
  assert.equal(t.location, 'postgres://ops@db.example/fleet (schema team_a)');
  assert.equal(scrub('password authentication failed: s3cr@t other', db), 'password authentication failed: *** ***');
  // an unparsable URL is refused without repeating its password
  try {
    parsePgUrl('postgres://ops:pw9@[bad/x');
    assert.fail('accepted');
  } catch (e) {
    assert.ok(e instanceof UsageError);
    assert.ok(!e.message.includes('pw9'), e.message);
  }
  assert.ok(isPostgresUrl('postgresql://x') && !isPostgresUrl('./postgres://x'));
});

test('$AGENT_UPDATE_DB_RETRY: how long a PostgreSQL plan database is waited for, a duration or seconds; anything else is exit 2', () => {
  assert.equal(dbRetryOf({}), undefined);
  assert.equal(dbRetryOf({ AGENT_UPDATE_DB_RETRY: '' }), undefined);
  assert.equal(dbRetryOf({ AGENT_UPDATE_DB_RETRY: '90' }), 90_000);
  assert.equal(dbRetryOf({ AGENT_UPDATE_DB_RETRY: '2m' }), 120_000);
  assert.equal(dbRetryOf({ AGENT_UPDATE_DB_RETRY: '1500ms' }), 1_500);
  assert.equal(dbRetryOf({ AGENT_UPDATE_DB_RETRY: '0' }), 0);
  assert.throws(() => dbRetryOf({ AGENT_UPDATE_DB_RETRY: 'soon' }), (e: unknown) => e instanceof UsageError && /^\$AGENT_UPDATE_DB_RETRY: /.test(e.message));
  assert.throws(() => dbRetryOf({ AGENT_UPDATE_DB_RETRY: '-5' }), UsageError);
});
