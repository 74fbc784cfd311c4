import { accessSync, constants, realpathSync } from 'node:fs';
import { basename, delimiter, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { shellQuote } from './shell.js';

/** The package root (holds package.json and bin/), from dist/src/util/. */
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BIN = join(ROOT, 'bin', 'agent-update.js');

let cached: string | undefined;

/** Whether this process was started by `npx agent-update` (or `npm exec`). */
export function runThroughNpx(env: NodeJS.ProcessEnv = process.env): boolean {
  return env.npm_command === 'exec';
}

/**
 * What npx changes, said once by the commands that run a rollout: npm is the process the shell
 * and a CI runner know, and it neither waits for this one on Ctrl-C nor passes a kill on.
 */
export const NPX_NOTE =
  'run through npx: npm reports a Ctrl-C as exit 130, not the 3 (or 5) of the pause it makes here, and a kill of npm does not reach this process (it goes on alone); ' +
  '`npm link` in the project puts agent-update on your PATH (docs/guide/install.md)';

/**
 * How a person runs this agent-update from where they are, for the commands it suggests: the way
 * they ran it, so a hint works when pasted and reaches the same binary.
 * - under npx (`npx agent-update …`): `npx agent-update`;
 * - an `agent-update` on the PATH that is this very binary (`npm link`, `npm install -g`; not
 *   npm's own node_modules/.bin, which only npx and `npm run` put in front): `agent-update`;
 * - else this binary's path, as run from here (`./bin/agent-update.js` in the project), with
 *   `node` in front when it is not executable.
 */
export function selfCommand(env: NodeJS.ProcessEnv = process.env, cwd: string = process.cwd(), argv1: string | undefined = process.argv[1]): string {
  const mine = env === process.env && cwd === process.cwd() && argv1 === process.argv[1];
  if (mine && cached !== undefined) return cached;
  const cmd = invocation(env, cwd, argv1);
  if (mine) cached = cmd;
  return cmd;
}

function invocation(env: NodeJS.ProcessEnv, cwd: string, argv1: string | undefined): string {
  if (runThroughNpx(env)) return 'npx agent-update';
  // Under npm (`npm run demo`) the PATH has npm's own node_modules/.bin folders in front: an
  // agent-update found there is not on the PATH the person's shell has.
  const underNpm = env.npm_command !== undefined;
  const path = (env.PATH ?? '').split(delimiter).filter((d) => !(underNpm && /[/\\]node_modules[/\\]\.bin[/\\]?$/.test(d)));
  const found = onPath('agent-update', path);
  const bin = real(BIN);
  // run by that name from the PATH (argv[1] is the shim), or another name for this same file
  if (found !== null && (argv1 !== undefined && basename(argv1) === 'agent-update' ? real(argv1) === real(found) : real(found) === bin)) return 'agent-update';
  // in the project's folder as the README's quick start has it; from anywhere else the full path
  const shown = real(cwd) === real(ROOT) ? `./${relative(ROOT, BIN)}` : BIN.replace(/\/+/g, '/');
  return executable(BIN) ? shellQuote(shown) : `node ${shellQuote(shown)}`;
}

function real(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

function executable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(name: string, path: string[]): string | null {
  for (const dir of path) {
    if (!dir) continue;
    const file = join(dir, name);
    if (executable(file)) return file;
  }
  return null;
}
