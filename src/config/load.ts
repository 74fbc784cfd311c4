/**
 * Reading a config file: YAML with line numbers for every problem (syntax errors, duplicate
 * keys, and everything validateConfig finds), all reported at once as one ConfigError.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError } from '../errors.js';
import type { Config } from './types.js';
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

/** Validate config text as if read from `file` (absolute). Throws ConfigError. */
export function loadConfigText(text: string, file: string, opts: LoadOptions = {}): Config {
  const env = opts.env ?? process.env;
  const parsed = parseYaml(text);
  if (parsed.problems.length) throw new ConfigError(file, parsed.problems);
  const result = validateConfig(parsed.value, {
    file,
    dir: path.dirname(file),
    home: opts.home ?? (env.HOME || os.homedir()),
    user: opts.user ?? currentUser(env),
    exists: opts.exists ?? defaultExists,
    locate: parsed.locate,
    readInventory,
    readFile: opts.readFile ?? defaultReadFile,
    listDir: defaultListDir,
    env,
  });
  if ('problems' in result) throw new ConfigError(file, result.problems);
  return result.config;
}

/** Read, parse and validate a config file. Throws ConfigError listing every problem. */
export function loadConfig(file: string, opts: LoadOptions = {}): Config {
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
  return loadConfigText(text, abs, opts);
}
