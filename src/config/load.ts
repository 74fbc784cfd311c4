/**
 * Reading a config file: YAML with line numbers for every problem (syntax errors, duplicate
 * keys, and everything validateConfig finds), all reported at once as one ConfigError. The site
 * defaults (config/defaults.ts) are merged under it here, in the one loader every command that
 * reads a config goes through, each problem reported against the file it was written in.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { Config } from './types.js';
import { chooseDefaults, mergeLayers, readDefaults, type DefaultsSource, type Origin } from './defaults.js';
import { readInventory } from './inventory/index.js';
import { validateConfig } from './validate.js';
import { parseYaml } from './yaml.js';

export { parseYaml, type ParsedYaml } from './yaml.js';

export interface LoadOptions {
  /** folder a relative `file` is resolved against; default process.cwd() */
  cwd?: string;
  /** environment for HOME and USER; default process.env */
  env?: NodeJS.ProcessEnv;
  /** override the home folder (default: $HOME, else os.homedir()) */
  home?: string;
  /** override the current user (default: $USER, $LOGNAME, else os.userInfo()) */
  user?: string;
  /** override the file-existence check (default: a regular file, or a link to one) */
  exists?: (absPath: string) => boolean;
  /** override reading `ssh.config` and its Includes */
  readFile?: (absPath: string) => { text: string } | { error: string };
  /**
   * The site defaults file: a path (it must exist), or null for none. Default: the one
   * chooseDefaults finds from `env` ($AGENT_UPDATE_DEFAULTS, else the per-user file).
   */
  defaults?: string | null;
  /** a read-only view: the problems that matter only when connecting become `warnings` (validate.ts localAsWarnings) */
  localAsWarnings?: boolean;
}

/** The config as `agent-update config` shows it: the merged document and where each key came from. */
export interface EffectiveConfig {
  config: Config;
  /** the config's file (absolute) */
  file: string;
  /** the site defaults merged under it, and what chose that file; null: none */
  defaults: { file: string; source: DefaultsSource | 'option' } | null;
  /** where the defaults would have been looked for when there were none (null: $AGENT_UPDATE_DEFAULTS is empty, or `defaults: null`) */
  lookedFor: string | null;
  /** the merged YAML document, as validated: the config's keys in its order, then the defaults' */
  document: unknown;
  /** every key path of `document`, in document order, with the file and line it was written at */
  origins: Array<[(string | number)[], Origin]>;
  /** with `localAsWarnings`: the problems that matter only when connecting (a key file missing here); else empty */
  warnings: ConfigProblem[];
}

function defaultExists(abs: string): boolean {
  try {
    return fs.statSync(abs).isFile();
  } catch {
    return false;
  }
}

function defaultReadFile(abs: string): { text: string } | { error: string } {
  try {
    return { text: fs.readFileSync(abs, 'utf8') };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    return { error: code === 'ENOENT' ? 'no such file' : code === 'EACCES' || code === 'EPERM' ? 'permission denied' : (e as Error).message };
  }
}

function defaultListDir(abs: string): string[] {
  try {
    return fs.readdirSync(abs);
  } catch {
    return [];
  }
}

function currentUser(env: NodeJS.ProcessEnv): string | undefined {
  if (env.USER) return env.USER;
  if (env.LOGNAME) return env.LOGNAME;
  try {
    return os.userInfo().username || undefined;
  } catch {
    return undefined;
  }
}

/** Validate config text as if read from `file` (absolute), the site defaults merged under it. Throws ConfigError. */
export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): Config {
  return loadEffectiveText(text, file, opts).config;
}

function loadEffectiveText(text: string, file: string, opts: LoadOptions): EffectiveConfig {
  const env = opts.env ?? process.env;
  const home = opts.home ?? (env.HOME || os.homedir());
  const parsed = parseYaml(text);
  const problems: ConfigProblem[] = [...parsed.problems];

  // The site defaults: chosen from the environment unless the caller says which (or none).
  const choice =
    opts.defaults === undefined
      ? chooseDefaults(env, home, opts.cwd ?? process.cwd())
      : opts.defaults === null
        ? null
        : { path: path.resolve(opts.cwd ?? process.cwd(), opts.defaults), source: 'option' as const };
  const read = choice ? readDefaults(choice) : null;
  if (read) problems.push(...read.problems);
  if (problems.length) throw new ConfigError(file, problems);

  const configLayer = { file, dir: path.dirname(file), value: parsed.value, locate: parsed.locate };
  const defaultsLayer = read?.layer ?? null;
  const merged = mergeLayers(defaultsLayer, configLayer);
  const result = validateConfig(merged.value, {
    file,
    dir: path.dirname(file),
    home,
    user: opts.user ?? currentUser(env),
    exists: opts.exists ?? defaultExists,
    locate: merged.locate,
    ...(defaultsLayer ? { origin: (p: (string | number)[]) => merged.owner(p) } : {}),
    readInventory,
    readFile: opts.readFile ?? defaultReadFile,
    listDir: defaultListDir,
    env,
    ...(opts.localAsWarnings ? { localAsWarnings: true } : {}),
  });
  if ('problems' in result) throw new ConfigError(file, result.problems);
  // where the source's branch and commit were written: a branch the repo lacks is found only at plan time
  const at = (p: string[]): string | undefined => {
    const layer = merged.owner(p);
    const line = layer?.locate(p);
    return layer && line !== undefined ? `${layer.file}:${line}` : undefined;
  };
  const sourceAt = { branch: at(['source', 'branch']), commit: at(['source', 'commit']) };
  return {
    config: { ...result.config, sourceAt },
    file,
    defaults: defaultsLayer && choice ? { file: defaultsLayer.file, source: choice.source } : null,
    lookedFor: !defaultsLayer && choice ? choice.path : null,
    document: merged.value,
    origins: merged.origins(),
    warnings: result.warnings ?? [],
  };
}

/** Read, parse and validate a config file, the site defaults merged under it. Throws ConfigError listing every problem. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
  return loadEffectiveConfig(file, opts).config;
}

/** loadConfig, with the merged document and each key's origin (`agent-update config`). */
export function loadEffectiveConfig(file: string, opts: LoadOptions = {}): EffectiveConfig {
  const abs = path.resolve(opts.cwd ?? process.cwd(), file);
  let text: string;
  try {
    const st = fs.statSync(abs);
    if (st.isDirectory()) throw new ConfigError(abs, [{ path: '', message: 'is a folder, not a config file' }]);
    text = fs.readFileSync(abs, 'utf8');
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES' || code === 'EPERM'
          ? 'permission denied'
          : `cannot read it: ${(e as Error).message}`;
    throw new ConfigError(abs, [{ path: '', message: why }]);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return loadEffectiveText(text, abs, opts);
}
