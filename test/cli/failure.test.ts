/** How an error that ends a command is reported: the message, and the exit code scripts see. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BusyError, ConfigError, EXIT, TransitionError } from '../../src/errors.js';
import { failureOf } from '../../src/main.js';

test('errors the user can act on: their own exit code and message, no stack', () => {
  const busy = failureOf(new BusyError('update u is being executed by pid 1'));
  assert.deepEqual(busy, { code: EXIT.busy, text: 'agent-update: update u is being executed by pid 1\n' });
  assert.equal(failureOf(new TransitionError('cannot resume u: it is success')).code, EXIT.usage);
  const two = new ConfigError('f.yaml', [
    { path: 'ssh.port', message: 'must be a number', line: 3 },
    { path: 'agent.update', message: 'is required' },
  ]);
  const t = failureOf(two);
  assert.equal(t.code, EXIT.usage);
  assert.match(t.text, /^agent-update: 2 problems in the config:\n {2}/);
});

test('a database that fails under a command (disk full, I/O error) is exit 1 with the way back, not a bug', () => {
  const full = Object.assign(new Error('database or disk is full'), { name: 'SqliteError', code: 'SQLITE_FULL' });
  const f = failureOf(full);
  assert.equal(f.code, EXIT.failure);
  assert.match(f.text, /the plan database failed: database or disk is full \(SQLITE_FULL\)/);
  assert.match(f.text, /agent-update start NAME` takes over/);
  assert.doesNotMatch(f.text, /internal error|at /);
});

test('anything else is a bug: exit 70 with the stack', () => {
  const f = failureOf(new TypeError('x is undefined'));
  assert.equal(f.code, EXIT.bug);
  assert.match(f.text, /internal error \(a bug, please report it\):\nTypeError: x is undefined\n {4}at /);
  assert.equal(failureOf('thrown string').code, EXIT.bug);
});
