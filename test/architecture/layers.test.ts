/**
 * The arrows between the folders of src/ point down only (ARCHITECTURE.md, "Layers"): every
 * import of every src/ file is read and checked against the order below.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../../src/', import.meta.url));

/**
 * The layers, lowest first: a file may import its own folder, the base vocabulary and any lower
 * layer, never a layer beside or above its own.
 */
const LAYERS: readonly string[][] = [['model'], ['store', 'ssh'], ['rollout'], ['plan'], ['output'], ['sim'], ['demo'], ['cli'], ['main.ts']];
/** Usable by all, and importing no layer: config/, util/ and the files at the top of src/ (clock, errors, liveness). */
const BASE = new Set(['config', 'util']);
/** Base files that import a layer today, each with why it is left (not a licence for more). */
const KNOWN: ReadonlyMap<string, string> = new Map([]);

/** `config`, `store`, `main.ts`, or `base` for a file at the top of src/ other than main.ts. */
function unitOf(file: string): string {
  const [first, ...rest] = file.split('/');
  if (rest.length > 0) return first!;
  return first === 'main.ts' ? 'main.ts' : 'base';
}

function rankOf(unit: string): number | 'base' {
  if (unit === 'base' || BASE.has(unit)) return 'base';
  const i = LAYERS.findIndex((l) => l.includes(unit));
  if (i < 0) throw new Error(`src/${unit} is in no layer: add it to LAYERS or BASE in test/architecture/layers.test.ts (and ARCHITECTURE.md)`);
  return i;
}

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The src/-relative files a source imports (static, re-exports, dynamic), relative specifiers only. */
function importsOf(path: string): string[] {
  const text = readFileSync(path, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\b[^'"]*?\bfrom\s+'(\.[^']+)'|\bimport\(\s*'(\.[^']+)'\s*\)/g)].map((m) => (m[1] ?? m[2])!);
  return specs.map((s) => relative(SRC, resolve(dirname(path), s)).replace(/\.js$/, '.ts'));
}

test('imports between the layers of src/ point down only', () => {
  const wrong: string[] = [];
  const seen = new Set<string>();
  for (const path of sources(SRC)) {
    const file = relative(SRC, path);
    const from = unitOf(file);
    for (const target of importsOf(path)) {
      const to = unitOf(target);
      if (to === from) continue;
      const a = rankOf(from);
      const b = rankOf(to);
      const arrow = `${file} -> ${target}`;
      if (b === 'base') continue;
      if (a !== 'base' && b < a) continue;
      if (KNOWN.has(arrow)) {
        seen.add(arrow);
        continue;
      }
      wrong.push(`${arrow} (${a === 'base' ? 'base vocabulary' : `layer ${LAYERS[a]!.join('/')}`} imports ${a !== 'base' && b === a ? 'a layer beside it' : 'a layer above it'}: ${LAYERS[b]!.join('/')})`);
    }
  }
  assert.deepEqual(wrong, []);
  assert.deepEqual([...KNOWN.keys()].filter((k) => !seen.has(k)), [], 'a known exception that is gone: take it out of KNOWN');
});

test('the store imports nothing of the engine, plan, output or cli', () => {
  const up = sources(join(SRC, 'store')).flatMap((path) =>
    importsOf(path)
      .filter((t) => /^(rollout|plan|output|cli)\//.test(t))
      .map((t) => `${relative(SRC, path)} -> ${t}`),
  );
  assert.deepEqual(up, []);
});
