/**
 * The config-key reference (docs/reference/config.md) cannot drift from the code: every key the
 * validator accepts is documented there, and every documented key is accepted; and the "site
 * defaults" column says `no` exactly for the keys the site defaults refuse.
 *
 * The documented keys are the first column of every table in that file whose header is
 * `| key | type | default | site defaults | meaning |`: a full key path in backticks, `[]` for
 * each entry of a list (`servers[].name`).
 *
 * The keys the code knows are found at run time, through the one loader every command uses
 * (loadConfigText), not by reading the validator's source: a probe puts an unknown key into a
 * section and reads the problem it gets back ("unknown key; expected one of: a, b, c"), then
 * does the same inside each key it learnt of, as a mapping and as a list of mappings, so a new
 * section is found without this test knowing of it.
 */
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { NOT_IN_DEFAULTS } from '../../src/config/defaults.js';
import { loadConfigText } from '../../src/config/load.js';
import { ConfigError, type ConfigProblem } from '../../src/errors.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DOC = path.join(ROOT, 'docs', 'reference', 'config.md');
const HEADER = ['key', 'type', 'default', 'site defaults', 'meaning'];

/** A key no config has, far from every real one (so the problem lists the keys, not a "did you mean"). */
const BOGUS = 'zz_not_a_config_key_zz';

/** A key path as the reference writes it: segments, `[]` for "each entry of the list". */
type Segs = string[];

function render(segs: Segs): string {
  return segs.reduce((acc, s) => (s === '[]' ? `${acc}[]` : acc === '' ? s : `${acc}.${s}`), '');
}

/** As the validator writes a key path in a problem: the first entry of each list, `[0]`. */
function problemPath(segs: Segs): string {
  return render(segs).replaceAll('[]', '[0]');
}

/** A config that validates but for what a probe puts into it. */
function baseConfig(): Record<string, unknown> {
  return {
    source: { repo: 'https://example.com/agent.git', branch: 'master' },
    servers: [{ name: 'app1', host: '10.0.0.11' }],
    agent: { version_command: 'cat ~/agent/commit', update: ['true'], health: { command: 'true' } },
  };
}

/** `value` at `segs` of `config` (a list entry: the first one), creating what is missing on the way. */
function setAt(config: Record<string, unknown>, segs: Segs, value: unknown): void {
  let node: Record<string, unknown> | unknown[] = config;
  segs.forEach((seg, i) => {
    const last = i === segs.length - 1;
    const next = segs[i + 1];
    const holder = node as Record<string | number, unknown>;
    const key: string | number = seg === '[]' ? 0 : seg;
    if (last) {
      holder[key] = value;
      return;
    }
    const want = next === '[]' ? 'list' : 'map';
    const cur = holder[key];
    const ok = want === 'list' ? Array.isArray(cur) : typeof cur === 'object' && cur !== null && !Array.isArray(cur);
    if (!ok) holder[key] = want === 'list' ? [{}] : {};
    node = holder[key] as Record<string, unknown> | unknown[];
  });
}

const home = fs.mkdtempSync(path.join(os.tmpdir(), 'agent-update-docs-'));
test.after(() => fs.rmSync(home, { recursive: true, force: true }));

function problemsOf(config: Record<string, unknown>): ConfigProblem[] {
  try {
    // JSON is YAML; no site defaults: only this text is validated
    loadConfigText(JSON.stringify(config), path.join(home, 'probe.yaml'), { defaults: null, env: { HOME: home, USER: 'docs' }, home, cwd: home });
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}

/**
 * The keys of the section at `segs` (`[]` last: each entry of a list), read from the problem an
 * unknown key there gets; null when `segs` is not a section of keys.
 */
function sectionKeys(segs: Segs): string[] | null {
  const config = baseConfig();
  const bogus = { [BOGUS]: 1 };
  if (segs.length === 0) Object.assign(config, bogus);
  else if (segs.at(-1) === '[]') setAt(config, segs.slice(0, -1), [bogus]);
  else setAt(config, segs, bogus);
  const at = problemPath([...segs, BOGUS]);
  const problem = problemsOf(config).find((p) => p.path === at);
  if (problem === undefined || !/unknown key/.test(problem.message)) return null;
  const m = /expected one of: (.+)$/.exec(problem.message);
  assert.ok(m, `the problem of an unknown key at ${at} no longer lists the keys this test reads ("${problem.message}"): update the probe`);
  return m[1]!.split(',').map((k) => k.trim()).filter((k) => k !== '');
}

/** Every key path the validator accepts, found section by section from the top. */
function keysTheCodeKnows(): Map<string, Segs> {
  const found = new Map<string, Segs>();
  const visit = (segs: Segs, depth: number) => {
    assert.ok(depth < 8, `sections nested deeper than expected at ${render(segs)}`);
    for (const section of segs.length === 0 ? [segs] : [segs, [...segs, '[]']]) {
      const keys = sectionKeys(section);
      if (keys === null) continue;
      for (const k of keys) {
        const child = [...section, k];
        if (found.has(render(child))) continue;
        found.set(render(child), child);
        visit(child, depth + 1);
      }
    }
  };
  visit([], 0);
  return found;
}

interface DocRow {
  key: string;
  siteDefaults: string;
  line: number;
}

/** The rows of every key table of the reference. */
function documentedKeys(): DocRow[] {
  const lines = fs.readFileSync(DOC, 'utf8').split('\n');
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
  const rows: DocRow[] = [];
  let inTable = false;
  lines.forEach((line, i) => {
    if (!line.startsWith('|')) {
      inTable = false;
      return;
    }
    const c = cells(line);
    if (c[0] === 'key') {
      assert.deepEqual(c, HEADER, `${DOC}:${i + 1}: a key table's header must be | ${HEADER.join(' | ')} |`);
      inTable = true;
      return;
    }
    if (!inTable || /^-+$/.test(c[0] ?? '')) return;
    const m = /^`([^`]+)`$/.exec(c[0] ?? '');
    assert.ok(m, `${DOC}:${i + 1}: the first cell of a key table's row must be one key path in backticks, got ${JSON.stringify(c[0])}`);
    assert.equal(c.length, HEADER.length, `${DOC}:${i + 1}: ${m[1]}: expected ${HEADER.length} cells, got ${c.length}`);
    rows.push({ key: m[1]!, siteDefaults: c[3]!, line: i + 1 });
  });
  return rows;
}

test('docs/reference/config.md documents exactly the keys the config accepts', () => {
  const code = keysTheCodeKnows();
  // the probe itself works: it finds the sections every config has, and lists inside lists
  for (const k of ['name', 'source.repo', 'servers[].name', 'ssh.known_hosts', 'agent.health.command', 'rollback.commit']) {
    assert.ok(code.has(k), `the probe did not find ${k}; found: ${[...code.keys()].join(', ')}`);
  }

  const rows = documentedKeys();
  assert.ok(rows.length > 0, `no key table found in ${DOC}`);
  const seen = new Map<string, number>();
  for (const r of rows) {
    assert.ok(!seen.has(r.key), `${DOC}:${r.line}: ${r.key} is documented twice (also at line ${seen.get(r.key)})`);
    seen.set(r.key, r.line);
  }

  const undocumented = [...code.keys()].filter((k) => !seen.has(k));
  const unknown = rows.filter((r) => !code.has(r.key)).map((r) => `${r.key} (line ${r.line})`);
  const doc = path.relative(ROOT, DOC);
  assert.deepEqual(
    { undocumented, unknown },
    { undocumented: [], unknown: [] },
    `undocumented: keys the config accepts that ${doc} does not document; unknown: keys ${doc} documents that the config does not accept`,
  );
});

test('the "site defaults" column says no exactly for the keys the site defaults refuse', () => {
  const refused = NOT_IN_DEFAULTS.map((p) => render(p.map(String)));
  const code = keysTheCodeKnows();
  for (const r of refused) assert.ok(code.has(r), `the site defaults refuse ${r}, which the config does not accept`);
  const isRefused = (key: string) => refused.some((r) => key === r || key.startsWith(`${r}.`) || key.startsWith(`${r}[]`));
  for (const row of documentedKeys()) {
    const want = isRefused(row.key) ? 'no' : 'yes';
    assert.equal(row.siteDefaults, want, `${DOC}:${row.line}: ${row.key}: the site defaults ${want === 'no' ? 'refuse' : 'accept'} it, so its "site defaults" cell must be ${want}`);
  }
});
