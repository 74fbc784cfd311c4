/**
 * YAML with line numbers for every problem: syntax errors, duplicate keys, and a `locate` that
 * finds the line of a key path. Shared by the config (load.ts) and the inventories in our own
 * format (inventory/index.ts).
 */
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Node as YamlNode } from 'yaml';
import type { ConfigProblem } from '../errors.js';
import type { KeyPath } from './checker.js';

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
