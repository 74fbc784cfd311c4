/**
 * Gates: points where a fleet server's commands wait until the test lets them go on, so a test
 * holds a rollout exactly where it wants to act (pause, Ctrl-C, kill -9) for as long as it needs,
 * instead of hoping a sleep or a slow agent lasts long enough.
 *
 * A gate is the file `~/gates/NAME` in one server's home: open when the file exists. Commands
 * put in the config wait on it:
 *
 *     // s2 stops inside its update step, after its last update command, until the test says
 *     const { update } = agentCommands();
 *     fleet.writeConfig({ agent: { update: [...update, waitGate('update')] } });
 *     openGate(fleet, 'update', ['s1', 's3']);
 *     ...                                 // s2 is held: kill, pause, look at the database
 *     openGate(fleet, 'update', ['s2']);  // and it goes on
 *
 *     // health says "starting" until the gate opens: the server is held in verify
 *     fleet.writeConfig(heldInVerify());
 *
 * A waiting command polls every 20 ms and is bounded by ssh.command_timeout like any other. A
 * test's gates live in the servers' homes, which a fleet reset replaces.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Fleet } from '../fleet/fleet.js';

const NAME = /^[a-z0-9][a-z0-9-]*$/;

function checked(name: string): string {
  if (!NAME.test(name)) throw new Error(`gate names are [a-z0-9-]+, got ${JSON.stringify(name)}`);
  return name;
}

/** A shell command that returns once gate `name` is open on the server running it. */
export function waitGate(name: string): string {
  return `until [ -e ~/gates/${checked(name)} ]; do sleep 0.02; done`;
}

/** A shell command that fails (exit 7, "starting") while gate `name` is closed, else succeeds. */
export function gateOpen(name: string): string {
  return `{ [ -e ~/gates/${checked(name)} ] || { echo 'health: starting (gate ${name} closed)' >&2; exit 7; }; }`;
}

/**
 * Config overrides: the agent's health check reports "starting" until the server's `online`
 * gate opens, so each server stays in verify until the test opens it (health polled every 50 ms,
 * given up after 60 s).
 */
export function heldInVerify(): Record<string, unknown> {
  return { agent: { health: { command: `${gateOpen('online')} && ~/agent/bin/health`, timeout: '60s', interval: '50ms' } } };
}

/** Open gate `name` on each of `servers` (by default every live server of the fleet). */
export function openGate(fleet: Fleet, name: string, servers: string[] = liveServers(fleet)): void {
  for (const server of servers) {
    const dir = join(fleet.home(server), 'gates');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, checked(name)), '');
  }
}

/** Close gate `name` again on each of `servers`. */
export function closeGate(fleet: Fleet, name: string, servers: string[] = liveServers(fleet)): void {
  for (const server of servers) rmSync(join(fleet.home(server), 'gates', checked(name)), { force: true });
}

function liveServers(fleet: Fleet): string[] {
  return fleet.servers.filter((s) => /^s\d+$/.test(s.name)).map((s) => s.name);
}
