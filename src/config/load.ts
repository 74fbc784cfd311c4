/**
 * Reading a config file: YAML with line numbers for every problem (syntax errors, duplicate
 * keys, and everything validateConfig finds), all reported at once as one ConfigError.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import { ConfigError, type ConfigProblem } from '../errors.js';
import type { Config } from './types.js';
import { validateConfig, type KeyPath } from './validate.js';

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

export interface ParsedYaml {
  /** the plain JS value, or undefined when there were syntax errors */
  value: unknown;
  problems: ConfigProblem[];
  /** the line of a key path (of the key itself for mapping entries), 1-based */
  locate: (p: KeyPath) => number | undefined;
}

/** Parse YAML text into a plain value, with syntax errors (and duplicate keys) as problems. */
export function parseYaml(text: string): ParsedYaml {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const lineAt = (offset: number) => lineCounter.linePos(offset).line;

  const locate = (p: KeyPath): number | undefined => {
    let node: unknown = doc.contents;
    let line: number | undefined;
    for (const seg of p) {
      if (isMap(node)) {
        const pair = node.items.find((it) => (isScalar(it.key) ? String(it.key.value) : String(it.key)) === String(seg));
        if (!pair) return undefined;
        const keyNode = pair.key as YamlNode | null;
        const at = keyNode?.range?.[0] ?? (pair.value as YamlNode | null)?.range?.[0];
        line = at === undefined ? line : lineAt(at);
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        const item = node.items[seg] as YamlNode | undefined;
        if (!item) return undefined;
        if (item.range) line = lineAt(item.range[0]);
        node = item;
      } else return undefined;
    }
    return line;
  };

  const problems: ConfigProblem[] = [];
  for (const err of doc.errors) {
    const line = lineAt(err.pos[0]);
    let message = err.message.split('\n')[0] ?? err.message;
    if (err.code === 'DUPLICATE_KEY') {
      const key = duplicateKeyText(text, err.pos[0]);
      message = `duplicate key${key ? ` ${JSON.stringify(key)}` : ''}: each key may appear only once in a mapping`;
    } else if (err.code === 'MULTIPLE_DOCS') {
      message = 'the file holds several YAML documents (---); a config is one document';
    } else {
      message = `YAML syntax error: ${message}`;
    }
    problems.push({ path: '', message, line });
  }
  if (problems.length) return { value: undefined, problems, locate };

  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (e) {
    problems.push({ path: '', message: `YAML error: ${(e as Error).message}` });
  }
  return { value, problems, locate };
}

/** The key that starts at `offset` (the yaml library points at its first character only). */
function duplicateKeyText(text: string, offset: number): string {
  const rest = text.slice(offset, text.indexOf('\n', offset) === -1 ? undefined : text.indexOf('\n', offset));
  const m = /^("(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^:,{}[\]]*?)\s*:(?:\s|$)/.exec(rest);
  if (!m?.[1]) return '';
  const k = m[1].trim();
  if (k.startsWith('"')) {
    try {
      return JSON.parse(k) as string;
    } catch {
      return k;
    }
  }
  if (k.startsWith("'")) return k.slice(1, -1).replace(/''/g, "'");
  return k;
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
