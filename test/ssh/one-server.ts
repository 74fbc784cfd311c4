/**
 * One live server of a probe-only sshd fleet for a `describe` of transport tests: the fleet is
 * started before them, stopped after, and reset before each (fresh home); `open` connects with
 * the fleet's ssh config (and overrides). A server's `~/.fleet-bin` comes first on its PATH
 * (test/fleet/fleet.ts): `fleetBin` puts an executable there, `refuseLoop` an `sh` that will not
 * run the command loop, so that every command goes on its own exec, under the supervisor.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, beforeEach } from 'node:test';
import type { SshConfig } from '../../src/config/types.js';
import type { Ssh2Session } from '../../src/ssh/session.js';
import { Ssh2Transport } from '../../src/ssh/ssh2-transport.js';
import { startFleet, type Fleet } from '../fleet/fleet.js';

export interface OneServer {
  fleet(): Fleet;
  /** s1's home folder */
  home(): string;
  open(overrides?: Partial<SshConfig>): Promise<Ssh2Session>;
  fleetBin(name: string, script: string): void;
  refuseLoop(): void;
}

/** Call inside a `describe`: registers its before/after/beforeEach hooks. */
export function oneServer(): OneServer {
  let fleet: Fleet;
  const transport = new Ssh2Transport();
  before(async () => {
    fleet = await startFleet({ servers: 1, probeOnly: true });
  });
  after(async () => {
    transport.close();
    await fleet?.stop();
  });
  beforeEach(() => fleet.reset());
  const home = () => fleet.home('s1');
  const fleetBin = (name: string, script: string): void => {
    const dir = join(home(), '.fleet-bin');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, name), `#!/bin/sh\n${script}\n`, { mode: 0o755 });
  };
  return {
    fleet: () => fleet,
    home,
    open: async (overrides = {}) => (await transport.connect(fleet.server('s1'), fleet.sshConfig(overrides))) as Ssh2Session,
    fleetBin,
    refuseLoop: () => fleetBin('sh', 'case "$*" in *agent-update-loop*) echo "no loops here" >&2; exit 1;; esac\nexec /bin/sh "$@"'),
  };
}
