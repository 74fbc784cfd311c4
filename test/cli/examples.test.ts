/**
 * `config -c FILE` is a read-only view (issue 25 §4): every example config shipped in plans/
 * prints (exit 0) on a machine that has none of the keys, known_hosts or ssh config it names,
 * each missing file a warning on stderr (and in `warnings` with --json), while a real mistake in
 * a config is still exit 2 with nothing on stdout. The examples are found by listing plans/, so a
 * new one is covered without touching this file; a site defaults file (`defaults.yml`) is not a
 * config: it is merged under the configs of its folder, as its comments say to try them.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { configCommand } from '../../src/cli/config.js';
import { CliContext, type GlobalOptions } from '../../src/cli/context.js';
import { failureOf } from '../../src/main.js';
import { cli, ROOT, type CliResult } from '../helpers/cli.js';
import { tempDirFor } from '../helpers/tmp.js';

const PLANS = join(ROOT, 'plans');

/** Every .yaml/.yml under plans/ that is a config (not site defaults), with the defaults of its folder when it has some. */
function examples(dir = PLANS): Array<{ file: string; defaults: string | null }> {
  const out: Array<{ file: string; defaults: string | null }> = [];
  const names = readdirSync(dir).sort();
  const defaults = names.includes('defaults.yml') ? join(dir, 'defaults.yml') : null;
  for (const n of names) {
    const p = join(dir, n);
    if (statSync(p).isDirectory()) out.push(...examples(p));
    else if (/\.ya?ml$/.test(n) && n !== 'defaults.yml') out.push({ file: p, defaults });
  }
  return out;
}

/**
 * `config -c FILE [--json]` run in this process (a process per example and form would take
 * seconds): its output and exit code as main() would give them, with `env` set meanwhile.
 */
function runConfig(file: string, json: boolean, env: Record<string, string>): CliResult {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  let stdout = '';
  let stderr = '';
  const stream = (write: (s: string) => void) => ({ write: (s: string) => (write(s), true), isTTY: false }) as unknown as NodeJS.WriteStream;
  const ctx = new CliContext({ json } as GlobalOptions, stream((s) => (stdout += s)), stream((s) => (stderr += s)));
  try {
    return { code: configCommand(ctx, { config: file }), stdout, stderr };
  } catch (e) {
    const f = failureOf(e);
    return { code: f.code, stdout, stderr: stderr + f.text };
  } finally {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

test('config -c prints every shipped example (exit 0), each file this machine lacks a warning, not a refusal', async (t) => {
  const list = examples();
  assert.ok(list.length >= 7, `examples found: ${list.map((e) => relative(ROOT, e.file)).join(', ')}`);
  // a home with no ~/.ssh: every key and known_hosts the examples name is missing here
  const home = tempDirFor(t, 'agent-update-examples-');
  const runs = list.map((e) => {
    const env = { HOME: home, AGENT_UPDATE_DEFAULTS: e.defaults ?? '' };
    return { e, text: runConfig(e.file, false, env), json: runConfig(e.file, true, env) };
  });
  // and one through the real CLI, as an operator runs it
  const real = await cli(['config', '-c', list[0]!.file], { env: { HOME: home } });
  const trimmed = (r: CliResult) => ({ ...r, stdout: r.stdout.trimEnd(), stderr: r.stderr.trimEnd() });
  assert.deepEqual(trimmed(real), trimmed(runs[0]!.text));
  for (const { e, text, json } of runs) {
    const name = relative(ROOT, e.file);
    assert.equal(text.code, 0, `${name}:\n${text.stderr}`);
    assert.match(text.stdout, new RegExp(`^# the effective config of ${e.file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`, 'm'), name);
    // the text is YAML: the same document as the JSON's
    assert.equal(json.code, 0, `${name} --json:\n${json.stderr}`);
    const doc = JSON.parse(json.stdout) as { config: unknown; warnings: Array<{ file: string; path: string; message: string }> };
    assert.deepEqual(parse(text.stdout), doc.config, name);
    // each warning on stderr is one of the JSON's, each about a file this machine lacks
    const warned = text.stderr.split('\n').filter((l) => l.startsWith('warning: '));
    assert.equal(warned.length, doc.warnings.length, `${name}:\n${text.stderr}`);
    for (const w of doc.warnings) assert.match(w.message, /file not found|UserKnownHostsFile/, `${name}: ${w.path}: ${w.message}`);
  }
  // the known_hosts every example needs (none names one that exists in this home)
  for (const { e, json } of runs) {
    const doc = JSON.parse(json.stdout) as { warnings: Array<{ path: string }> };
    assert.ok(doc.warnings.some((w) => w.path === 'ssh.known_hosts'), `${relative(ROOT, e.file)}: ${JSON.stringify(doc.warnings)}`);
  }
});

test('config -c: a real mistake is still exit 2 with nothing on stdout, even beside a missing key file', async (t) => {
  const dir = tempDirFor(t, 'agent-update-examples-');
  const file = join(dir, 'bad.yaml');
  writeFileSync(
    file,
    `source: { repo: https://github.com/example/agent, branch: master }
servers: [{ name: app1, host: 10.0.0.11 }]
ssh: { identity_file: no-such-key, conect_timeout: 5s }
agent:
  version_command: git rev-parse HEAD
  update: [git fetch]
  health: { command: 'true' }
`,
  );
  const r = runConfig(file, false, { HOME: dir, AGENT_UPDATE_DEFAULTS: '' });
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /ssh\.conect_timeout: unknown key; did you mean connect_timeout\?/);
  // fixed: the missing key file alone is a warning
  writeFileSync(file, readFileSync(file, 'utf8').replace('conect_timeout', 'connect_timeout'));
  const ok = runConfig(file, false, { HOME: dir, AGENT_UPDATE_DEFAULTS: '' });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stderr, /^warning: .*bad\.yaml:3: ssh\.identity_file: file not found: .*no-such-key/m);
  // plan still refuses it, before any database is made
  const plan = await cli(['plan', '-c', file], { env: { HOME: dir }, db: join(dir, 'plan.db') });
  assert.equal(plan.code, 2);
  assert.match(plan.stderr, /ssh\.identity_file: file not found/);
});
