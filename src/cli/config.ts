/**
 * `agent-update config -c FILE [--json]`: the effective config (the site defaults merged under
 * FILE, config/defaults.ts) and, for each key, the file and line it was written at. A read-only
 * view: it loads the config as `plan` does, but what matters only when connecting (a key,
 * known_hosts or ssh config file missing on this machine: ConfigProblem.local) is a warning on
 * stderr (`warnings` in the JSON), so a config written for another machine still prints; any
 * other problem is exit 2, against the file it is in. It reads nothing remote and writes
 * nothing: no database is opened.
 */
import * as path from 'node:path';
import { stringify } from 'yaml';
import { describeDefaultsSource, type Origin } from '../config/defaults.js';
import { loadEffectiveConfig, type EffectiveConfig } from '../config/load.js';
import { formatKeyPath } from '../config/checker.js';
import { formatProblem, UsageError } from '../errors.js';
import type { Config } from '../config/types.js';
import type { CliContext } from './context.js';

export function configCommand(ctx: CliContext, opts: { config?: string }): number {
  if (opts.config === undefined) throw new UsageError('config needs -c FILE (the config to show with the site defaults merged under it)');
  const eff = loadEffectiveConfig(opts.config, { localAsWarnings: true });
  if (ctx.opts.json) ctx.printJson(configJson(eff));
  else {
    ctx.print(configText(eff).trimEnd());
    for (const w of eff.warnings) ctx.err.write(`warning: ${formatProblem(w, eff.file)}\n`);
    if (eff.warnings.length) {
      const one = eff.warnings.length === 1;
      ctx.err.write(`(only connecting needs ${one ? 'it' : 'them'}: plan and auto refuse the config while ${one ? 'it is' : 'they are'} missing on the machine that runs them)\n`);
    }
  }
  return 0;
}

/**
 * `config --json`: `{ file, defaults: { file, source } | null, config, origins, warnings }`, `origins`
 * keyed by dotted key path (`ssh.user`, `agent.update[0]`), each `{ file, line }`, and for a
 * mapping written in both files `also: { file, line }`, where the defaults have it; a path key
 * whose value is relative (or starts with ~) also `resolved`: the absolute path it names;
 * `warnings`, what matters only when connecting (each `{ file, line, path, message }`).
 */
export function configJson(eff: EffectiveConfig): Record<string, unknown> {
  return {
    file: eff.file,
    defaults: eff.defaults,
    config: eff.document,
    origins: Object.fromEntries(withResolved(eff)),
    warnings: eff.warnings.map((w) => ({ file: w.file ?? eff.file, line: w.line ?? null, path: w.path, message: w.message })),
  };
}

/**
 * Keys holding a local path, with where the validated config has it: a relative path is
 * resolved against the folder of the file it was written in (the defaults' folder for a default),
 * so the text shows, and the JSON gives as `resolved`, the file it names.
 */
const PATHS: Array<[string, (c: Config) => string | null]> = [
  ['ssh.identity_file', (c) => c.ssh.identityFile],
  ['ssh.known_hosts', (c) => c.ssh.knownHosts],
  ['ssh.config', (c) => c.ssh.configFile ?? null],
  ['inventory', (c) => c.inventory],
];

/** Each origin, with `resolved` for a path key whose value, as written, is not the file it names. */
function withResolved(eff: EffectiveConfig): Array<[string, Origin & { resolved?: string }]> {
  const doc = isRecord(eff.document) ? eff.document : {};
  return eff.origins.map(([p, o]) => {
    const key = formatKeyPath(p);
    const found = PATHS.find(([k]) => k === key);
    const written = p.reduce<unknown>((node, seg) => (isRecord(node) ? node[seg as string] : undefined), doc);
    const resolved = found ? found[1](eff.config) : null;
    return [key, typeof written === 'string' && resolved && resolved !== written ? { ...o, resolved } : o];
  });
}

/** How an origin is written after its key: `defaults.yml:12`; both files for a mapping in both. */
function originLabel(o: Origin, label: (file: string) => string): string {
  const one = (x: { file: string; line?: number }) => `${label(x.file)}${x.line !== undefined ? `:${x.line}` : ''}`;
  return o.also ? `${one(o)} + ${one(o.also)}` : one(o);
}

/** One scalar as YAML on one line (a string with a newline in double quotes, as JSON writes it). */
function scalar(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (typeof v === 'string') {
    const s = stringify(v, { lineWidth: 0 }).trimEnd();
    return s.includes('\n') ? JSON.stringify(v) : s;
  }
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  return JSON.stringify(v);
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The text form: a header naming the files, then the merged document as YAML (still valid YAML:
 * the origins are comments), each key followed by `# file:line`, the comments in one column.
 */
export function configText(eff: EffectiveConfig): string {
  const files = [eff.file, ...(eff.defaults ? [eff.defaults.file] : [])];
  const bases = files.map((f) => path.basename(f));
  // the file names alone, unless the two have the same name
  const label = (file: string) => (new Set(bases).size === bases.length ? path.basename(file) : file);
  const origins = new Map(withResolved(eff));

  const lines: Array<{ text: string; note?: string }> = [];
  const emitMap = (node: Record<string, unknown>, p: (string | number)[], indent: string, first = indent) => {
    let lead = first;
    for (const [k, v] of Object.entries(node)) {
      const q = [...p, k];
      const o = origins.get(formatKeyPath(q));
      const note = o ? `${originLabel(o, label)}${o.resolved ? ` (${o.resolved})` : ''}` : undefined;
      const key = `${lead}${scalar(k)}:`;
      lead = indent;
      if (isRecord(v) && Object.keys(v).length > 0) {
        lines.push({ text: key, ...(note ? { note } : {}) });
        emitMap(v, q, `${indent}  `);
      } else if (Array.isArray(v) && v.length > 0) {
        lines.push({ text: key, ...(note ? { note } : {}) });
        v.forEach((item: unknown, i) => {
          if (isRecord(item) && Object.keys(item).length > 0) emitMap(item, [...q, i], `${indent}    `, `${indent}  - `);
          else lines.push({ text: `${indent}  - ${Array.isArray(item) ? JSON.stringify(item) : scalar(item)}` });
        });
      } else {
        lines.push({ text: `${key} ${isRecord(v) ? '{}' : Array.isArray(v) ? '[]' : scalar(v)}`, ...(note ? { note } : {}) });
      }
    }
  };

  const head: string[] = [`# the effective config of ${eff.file}`];
  if (eff.defaults) {
    head.push(`# merged over the site defaults ${eff.defaults.file} (${describeDefaultsSource(eff.defaults.source)})`);
  } else {
    head.push(eff.lookedFor ? `# no site defaults (${eff.lookedFor} does not exist)` : '# no site defaults ($AGENT_UPDATE_DEFAULTS is empty)');
  }
  head.push('# after each key: the file and line it was written at; a key in neither file has its built-in default');

  if (isRecord(eff.document)) emitMap(eff.document, [], '');
  const width = Math.min(60, Math.max(0, ...lines.filter((l) => l.note).map((l) => l.text.length)));
  const body = lines.map((l) => (l.note ? `${l.text.padEnd(width)}  # ${l.note}` : l.text));
  return `${[...head, ...body].join('\n')}\n`;
}
