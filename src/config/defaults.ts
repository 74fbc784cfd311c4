/**
 * Site defaults (issue 15, item 4): one YAML file with what every update of a site shares (the
 * source repo and branch, the ssh block, the agent's commands), merged under each config, which
 * then says only what differs.
 *
 * Where it is (chooseDefaults): `$AGENT_UPDATE_DEFAULTS` when set (a path, relative to the
 * current folder; a file that is not there is an error naming it; set but empty = no site
 * defaults, for a CI job or a test that must not see the machine's), else
 * `$XDG_CONFIG_HOME/agent-update/defaults.yml` (XDG_CONFIG_HOME only when absolute, as the XDG
 * spec says and as the database's XDG_STATE_HOME), else `~/.config/agent-update/defaults.yml`;
 * either of those two may be absent (no defaults, silently), but one that is there must be
 * readable.
 *
 * How it merges (mergeLayers): mappings key by key, the config winning; a list, a scalar or a
 * null in the config replaces the default whole (so `key: null` in a config drops a default and
 * leaves the built-in one). The merged mapping has the config's keys in the config's order, then
 * the keys only the defaults have, in theirs.
 *
 * Where each value came from (Merged.origin): the file (and its folder, for relative paths) of
 * the value at a key path, so validateConfig reports a problem against the file, line and key
 * path it was written at, and resolves a relative path in the defaults against the defaults'
 * folder. A default the config overrides is not used, so it is not checked either.
 *
 * What the defaults may not hold (NOT_IN_DEFAULTS): what one update covers and targets, which a
 * site-wide file would apply silently to every update: name, servers, inventory, server_types,
 * include, exclude, source.commit, source.version, source.min_version, source.stepping_stones
 * (they belong to one target release), rollback.commit.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { ConfigProblem } from '../errors.js';
import { formatKeyPath, type KeyPath } from './checker.js';
import { parseYaml } from './yaml.js';

/** What chose the defaults file. */
export type DefaultsSource = '$AGENT_UPDATE_DEFAULTS' | '$XDG_CONFIG_HOME' | 'home';

export interface DefaultsChoice {
  /** absolute */
  path: string;
  source: DefaultsSource;
}

/**
 * The defaults file to read, or null for none (`AGENT_UPDATE_DEFAULTS` set but empty). The file
 * need not exist: readDefaults says what that means for each source.
 */
export function chooseDefaults(env: NodeJS.ProcessEnv, home: string, cwd: string): DefaultsChoice | null {
  const named = env.AGENT_UPDATE_DEFAULTS;
  if (named !== undefined) return named === '' ? null : { path: path.resolve(cwd, named), source: '$AGENT_UPDATE_DEFAULTS' };
  const xdg = env.XDG_CONFIG_HOME;
  if (xdg && path.isAbsolute(xdg)) return { path: path.join(xdg, 'agent-update', 'defaults.yml'), source: '$XDG_CONFIG_HOME' };
  return { path: path.join(home, '.config', 'agent-update', 'defaults.yml'), source: 'home' };
}

/** How a defaults file's source is named in messages and by `config`. */
export function describeDefaultsSource(source: DefaultsSource | 'option'): string {
  switch (source) {
    case '$AGENT_UPDATE_DEFAULTS':
      return 'named by $AGENT_UPDATE_DEFAULTS';
    case '$XDG_CONFIG_HOME':
      return 'the per-user file in $XDG_CONFIG_HOME';
    case 'home':
      return 'the per-user file in ~/.config';
    case 'option':
      return 'given by the caller';
  }
}

/** One YAML file of the merge: its plain value and where each key path is in it. */
export interface Layer {
  /** absolute */
  file: string;
  /** folder relative paths written in it are resolved against */
  dir: string;
  value: unknown;
  locate: (p: KeyPath) => number | undefined;
}

/** Keys that describe one update, refused in the site defaults (see the module comment). */
export const NOT_IN_DEFAULTS: readonly KeyPath[] = [
  ['name'],
  ['servers'],
  ['inventory'],
  ['server_types'],
  ['include'],
  ['exclude'],
  ['source', 'commit'],
  ['source', 'version'],
  // the path to one target release: its stepping stones and the oldest version that upgrades to it
  ['source', 'min_version'],
  ['source', 'stepping_stones'],
  ['rollback', 'commit'],
];

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Read and parse the defaults file. `{ layer: null }`: there is none to merge (absent where
 * absence is allowed, or empty). Problems carry the defaults file's name (ConfigProblem.file).
 */
export function readDefaults(choice: { path: string; source: DefaultsSource | 'option' }): { layer: Layer | null; problems: ConfigProblem[] } {
  const file = choice.path;
  // the per-user file is optional; one named by $AGENT_UPDATE_DEFAULTS (or the caller) must be there
  const required = choice.source === '$AGENT_UPDATE_DEFAULTS' || choice.source === 'option';
  const fail = (message: string) => ({ layer: null, problems: [{ file, path: '', message }] });
  let text: string;
  try {
    if (fs.statSync(file).isDirectory()) return fail(`site defaults (${describeDefaultsSource(choice.source)}): is a folder, not a YAML file`);
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if ((code === 'ENOENT' || code === 'ENOTDIR') && !required) return { layer: null, problems: [] };
    const why = code === 'ENOENT' || code === 'ENOTDIR' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : `cannot read it: ${(e as Error).message}`;
    const hint =
      choice.source === '$AGENT_UPDATE_DEFAULTS' && (code === 'ENOENT' || code === 'ENOTDIR')
        ? ' (set AGENT_UPDATE_DEFAULTS to an existing file, to "" for no site defaults, or unset it for ~/.config/agent-update/defaults.yml)'
        : '';
    return fail(`site defaults (${describeDefaultsSource(choice.source)}): ${why}${hint}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const parsed = parseYaml(text);
  if (parsed.problems.length) return { layer: null, problems: parsed.problems.map((p) => ({ ...p, file })) };
  const value = parsed.value;
  if (value === null || value === undefined) return { layer: null, problems: [] };
  if (!isRecord(value)) return fail(`site defaults must be a mapping of config keys (source, ssh, agent, …), got ${Array.isArray(value) ? 'a list' : 'a scalar'}`);

  const problems: ConfigProblem[] = [];
  for (const p of NOT_IN_DEFAULTS) {
    let node: unknown = value;
    for (const seg of p) node = isRecord(node) && Object.hasOwn(node, seg) ? node[seg as string] : undefined;
    if (node === undefined) continue;
    const line = parsed.locate(p);
    problems.push({
      file,
      path: formatKeyPath(p),
      message: `belongs in each update's config, not in the site defaults: it says what one update ${p[0] === 'source' || p[0] === 'rollback' || p[0] === 'name' ? 'is' : 'covers'}`,
      ...(line !== undefined ? { line } : {}),
    });
  }
  return { layer: { file, dir: path.dirname(file), value, locate: parsed.locate }, problems };
}

/** Where a key path of the merged document was written. */
export interface Origin {
  file: string;
  line?: number;
  /** a mapping written in both files: where the defaults have it (the key itself is the config's) */
  also?: { file: string; line?: number };
}

export interface Merged {
  value: unknown;
  /** the layer whose value is at `p` (a mapping in both: the config), undefined when nothing is */
  owner(p: KeyPath): Layer | undefined;
  /** the line of `p` in its owner */
  locate(p: KeyPath): number | undefined;
  /** every key path (mapping keys and list items, at every depth), in document order, with its origin */
  origins(): Array<[KeyPath, Origin]>;
}

/** The defaults merged under the config (see the module comment); without defaults, the config alone. */
export function mergeLayers(defaults: Layer | null, config: Layer): Merged {
  const merge = (d: unknown, c: unknown): unknown => {
    if (!isRecord(d) || !isRecord(c)) return c;
    // fromEntries: a key such as `__proto__` stays a key, never a prototype
    return Object.fromEntries([
      ...Object.keys(c).map((k) => [k, Object.hasOwn(d, k) ? merge(d[k], c[k]) : c[k]] as const),
      ...Object.keys(d).filter((k) => !Object.hasOwn(c, k)).map((k) => [k, d[k]] as const),
    ]);
  };
  // A config that is not a mapping is not merged: validateConfig says what is wrong with it.
  const merging = defaults !== null && isRecord(config.value);
  const value = merging ? merge(defaults.value, config.value) : config.value;

  const child = (node: unknown, seg: string | number): { found: boolean; value: unknown } => {
    if (isRecord(node) && typeof seg === 'string' && Object.hasOwn(node, seg)) return { found: true, value: node[seg] };
    if (Array.isArray(node) && typeof seg === 'number' && seg >= 0 && seg < node.length) return { found: true, value: node[seg] };
    return { found: false, value: undefined };
  };

  /** Walk both files down `p`: is it in the config, in the defaults (where they merge)? */
  const walk = (p: KeyPath): { inConfig: boolean; inDefaults: boolean } => {
    let c = { found: true, value: config.value };
    let d = { found: merging, value: merging ? defaults.value : undefined };
    for (const seg of p) {
      // below a config value that is not a mapping merged with one of the defaults, only the config's counts
      if (c.found && !(d.found && isRecord(c.value) && isRecord(d.value))) d = { found: false, value: undefined };
      c = c.found ? child(c.value, seg) : c;
      d = d.found ? child(d.value, seg) : d;
      if (!c.found && !d.found) break;
    }
    return { inConfig: c.found, inDefaults: d.found };
  };

  const owner = (p: KeyPath): Layer | undefined => {
    const w = walk(p);
    return w.inConfig ? config : w.inDefaults && defaults ? defaults : undefined;
  };

  const origins = (): Array<[KeyPath, Origin]> => {
    const out: Array<[KeyPath, Origin]> = [];
    const visit = (node: unknown, p: KeyPath) => {
      const entries: Array<[string | number, unknown]> = isRecord(node) ? Object.entries(node) : Array.isArray(node) ? node.map((v, i) => [i, v]) : [];
      for (const [seg, v] of entries) {
        const q = [...p, seg];
        const w = walk(q);
        const layer = w.inConfig ? config : defaults!;
        const origin: Origin = { file: layer.file };
        const line = layer.locate(q);
        if (line !== undefined) origin.line = line;
        if (w.inConfig && w.inDefaults && defaults && isRecord(v)) {
          const dl = defaults.locate(q);
          origin.also = dl !== undefined ? { file: defaults.file, line: dl } : { file: defaults.file };
        }
        out.push([q, origin]);
        visit(v, q);
      }
    };
    visit(value, []);
    return out;
  };

  return { value, owner, locate: (p) => owner(p)?.locate(p), origins };
}
