import { accessSync, constants, realpathSync } from 'node:fs';
import { delimiter, join, relative, isAbsolute } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellQuote } from './shell.js';

/** The package root (holds package.json and bin/), from dist/src/util/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'agent-update.js');

let cached: string | undefined;

/**
 * How a person can run this agent-update from where they are, for the commands it suggests, so
 * a hint works when pasted right after `npm install`: `agent-update` when that is on the PATH
 * (`npm link`, `npm install -g`; not npm's own node_modules/.bin, which only npx and `npm run`
 * put there), `npx agent-update` inside the project (npx finds the project's own bin), else
 * `node /path/to/bin/agent-update.js`.
 */
export function selfCommand(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd()): string {
  if (cached !== undefined && env === process.env && cwd === process.cwd()) return cached;
  // Under npm (`npx agent-update`, `npm run demo`) the PATH has npm's own node_modules/.bin
  // folders in front: an agent-update found there is not on the PATH the person's shell has.
  const underNpm = env.npm_command !== undefined;
  const path = (env.PATH ?? '').split(delimiter).filter((d) => !(underNpm && /[/\\]node_modules[/\\]\.bin[/\\]?$/.test(d)));
  const found = onPath('agent-update', path.join(delimiter));
  const inProject = (() => {
    try {
      const rel = relative(realpathSync(ROOT), realpathSync(cwd));
      return !rel.startsWith('..') && !isAbsolute(rel);
    } catch {
      return false;
    }
  })();
  const cmd = found ? 'agent-update' : inProject ? 'npx agent-update' : `node ${shellQuote(BIN)}`;
  if (env === process.env && cwd === process.cwd()) cached = cmd;
  return cmd;
}

function onPath(name: string, path: string): boolean {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}
