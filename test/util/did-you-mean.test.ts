import assert from 'node:assert/strict';
import { test } from 'node:test';
import { closest, CONFIG_WORDS, didYouMean } from '../../src/util/did-you-mean.js';

test('closest: a typo, a swapped pair, a case slip and a typed prefix are found; far names are not', () => {
  const names = ['agent-2026-11', 'agent-2026-11.2', 'agent-2026-12', 'canary', 'main'];
  assert.deepEqual(closest('agnet-2026-11', names).slice(0, 1), ['agent-2026-11'], 'two neighbours swapped');
  assert.deepEqual(closest('agent-2026-1', names), ['agent-2026-11', 'agent-2026-12', 'agent-2026-11.2']);
  assert.deepEqual(closest('Canary', names), ['canary']);
  assert.deepEqual(closest('mian', names), ['main']);
  assert.deepEqual(closest('production', names), []);
  assert.deepEqual(closest('x', names), [], 'a one-letter input is not near every short name');
});

test('didYouMean: quoted, "or" before the last, empty when nothing is close', () => {
  assert.equal(didYouMean('mastr', ['master', 'main']), '; did you mean "master"?');
  assert.equal(didYouMean('u', ['u1', 'u2']), '; did you mean "u1" or "u2"?');
  assert.equal(didYouMean('release', ['master']), '');
});

test('CONFIG_WORDS: the one nearest config word, without case, - and _; a typed prefix when it is the only one', () => {
  const suggest = (word: string, candidates: string[]) => closest(word, candidates, CONFIG_WORDS)[0];
  assert.equal(suggest('servrs', ['servers', 'source']), 'servers');
  assert.equal(suggest('Known-Hosts', ['known_hosts']), 'known_hosts');
  assert.equal(suggest('xyz', ['servers', 'source']), undefined);
  assert.equal(suggest('prot', ['port', 'user']), 'port'); // a swap is one edit
  assert.equal(suggest('prt', ['port', 'user']), 'port');
  assert.equal(suggest('hostname', ['name', 'host', 'port']), 'host');
  assert.equal(suggest('pt', ['port', 'user']), undefined);
  assert.equal(suggest('', ['port']), undefined);
});

test('didYouMean: a config word unquoted, or as the caller writes it', () => {
  assert.equal(didYouMean('servrs', ['servers', 'source'], CONFIG_WORDS, String), '; did you mean servers?');
  assert.equal(didYouMean('comit', ['repo', 'commit'], CONFIG_WORDS, (n) => `{${n}}`), '; did you mean {commit}?');
});
