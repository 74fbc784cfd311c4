/**
 * (g) A plan of BENCH_PLAN_SERVERS probe-only servers behind one bastion (issue 23): the same
 * servers reached directly and through one jump host (its own sshd, on loopback), each plan run
 * through the CLI as a user runs it. The bastion's log counts its logins ("Accepted publickey"):
 * with its connections shared (ssh/jump-pool.ts) they are a handful, not one per server.
 * Direct and through the bastion alternate, best of BENCH_ROUNDS each; logins: the most of one plan.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { startFleet } from '../test/fleet/fleet.js';
import { startSshd } from '../test/ssh/helpers.js';

export interface BastionResult {
  servers: number;
  directMs: number;
  viaMs: number;
  logins: number;
  probedDirect: number;
  probedVia: number;
}

export async function bastionPlan(bin: string, servers: number, rounds = 1): Promise<BastionResult> {
  const fleet = await startFleet({ servers, probeOnly: true });
  try {
    const dir = join(fleet.root, 'bastion');
    mkdirSync(dir, { recursive: true });
    const bastion = await startSshd(dir, [readFileSync(`${fleet.identityFile}.pub`, 'utf8').trim()]);
    try {
      const known = join(fleet.root, 'known_hosts.bastion');
      writeFileSync(known, readFileSync(fleet.knownHosts, 'utf8').trimEnd() + '\n' + bastion.hostKeyLine + '\n');
      const plan = async (name: string, config: string) => {
        const db = join(fleet.root, `${name}.db`);
        const began = performance.now();
        const p = await execa(process.execPath, [...(process.env.BENCH_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.BENCH_PROF}`] : []), bin, '--db', db, 'plan', '-c', config, '--name', name, '--json'], { reject: false });
        const ms = performance.now() - began;
        if (p.exitCode !== 0) throw new Error(`plan ${name} exited ${p.exitCode}: ${p.stderr.slice(-600)}`);
        const doc = JSON.parse(p.stdout) as { servers: Array<{ fromCommit: string | null }> };
        return { ms, probed: doc.servers.filter((s) => s.fromCommit !== null).length };
      };
      const directConfig = fleet.writeConfig({ ssh: { known_hosts: known } }, join(fleet.root, 'direct.yaml'));
      const viaConfig = fleet.writeConfig({ ssh: { known_hosts: known, jump: `${userInfo().username}@${bastion.host}:${bastion.port}` } }, join(fleet.root, 'via.yaml'));
      // alternating, best of `rounds` each: neither gets the warmer machine
      let direct = { ms: Infinity, probed: 0 };
      let via = { ms: Infinity, probed: 0 };
      let logins = 0;
      for (let round = 1; round <= rounds; round++) {
        const d = await plan(`direct-${round}`, directConfig);
        if (d.ms < direct.ms) direct = d;
        const before = loginsIn(bastion.log());
        const v = await plan(`via-${round}`, viaConfig);
        logins = Math.max(logins, loginsIn(bastion.log()) - before);
        if (v.ms < via.ms) via = v;
      }
      return { servers, directMs: direct.ms, viaMs: via.ms, logins, probedDirect: direct.probed, probedVia: via.probed };
    } finally {
      await bastion.stop();
    }
  } finally {
    await fleet.stop();
  }
}

function loginsIn(log: string): number {
  return log.split('\n').filter((l) => l.includes('Accepted publickey')).length;
}
