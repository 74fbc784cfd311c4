/**
 * The ssh config corpus (test/fixtures/ssh-config/) against OpenSSH itself: for each config and
 * host, `ssh -G -F FILE HOST` (and, for each jump host, `ssh -G -F FILE -l USER [-p PORT] HOP`,
 * as ssh runs it for ProxyJump) says the host name, user, port, identity files, identity agent,
 * ProxyJump chain, known_hosts, IdentitiesOnly and CertificateFile; what validateConfig resolves
 * must be the same, or the server must be refused (with the file and line) when listed so.
 *
 * ssh -G reads nothing of this machine's ssh config with -F; it expands `~` with the account's
 * home (not $HOME), so our resolver is given the same home. The corpus holds no ProxyCommand
 * ssh would run, no CanonicalizeHostName, and `Match exec` only with "true"/"false".
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { validateConfig } from '../../src/config/validate.js';
import { expandTokens } from '../../src/config/ssh-config.js';
import type { JumpHost, ServerSpec } from '../../src/config/types.js';
import { base } from './helpers.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../test/fixtures/ssh-config');
const HOME = userInfo().homedir;
const USER = userInfo().username;

/** config → hosts looked up; a host mapped to a RegExp must be refused with a message matching it. */
const CASES: Record<string, Record<string, true | RegExp>> = {
  'case.conf': { 'Bastion-EU': true, 'bastion-eu': true, 'BASTION-EU': true, target: true, 'GitHub.com': true, 'github.com': true },
  'patterns.conf': { db: true, db1: true, db12: true, 'github.com': true, 'gitlab.com': true, secret: true, other: true },
  'match.conf': {
    d: true, e: true, ORIG: true, orig: true, bar: true, baz: true, x: true,
    foo: /match\.conf line 12\) may apply to it \(exec "false" is never run\), and it sets User \(.*match\.conf line 13\)/,
  },
  'agent.conf': {
    onlyno: true, sockenv: true, certmissing: true, kh: true, other: true,
    only: /IdentitiesOnly yes \(.*agent\.conf line 3\)/,
    sock: /IdentityAgent \/run\/agent\.sock \(.*agent\.conf line 8\)/,
    noagent: /IdentityAgent none \(.*agent\.conf line 12\)/,
    cert: /CertificateFile \(.*agent\.conf line 14\)/,
    nullkh: /UserKnownHostsFile \/dev\/null \(.*agent\.conf line 18\): with it ssh keeps no host keys for this host; agent-update always verifies host keys against a known_hosts file, and without that line would use /,
  },
  'proxy.conf': { jc: true, chain: true, direct: true, gw1: true, other: true, cj: /ProxyCommand \(.*proxy\.conf line 6\) is not supported/ },
  'include.conf': { db: true, web: true, other: true, x: true },
  'final.conf': { alias: true, 'real.example': true, other: true },
  'dotfiles1.conf': { 'github.com': true, bastion: true, 'bastion.corp.example': true, 'ci.corp.example': true, 'app-01': true, 'db-main': true, laptop: true },
  'dotfiles2.conf': { web1: true, web2: true, 'quoted host': /must not contain whitespace/, q2: true, web3: true },
};
const KEYS = ['keys/id_bastion', 'keys/id_deploy', 'keys/id_all', 'keys/id_work', 'keys/id_work-cert.pub', 'keys/id_github', 'keys/id_deploy', 'known_hosts', 'known_hosts_kh'];

const sshPresent = spawnSync('ssh', ['-V'], { stdio: 'ignore' }).status === 0;
const skip = !sshPresent && process.env.REQUIRE_SSHD !== '1' ? 'ssh (openssh-client) is not installed: nothing to compare with' : false;

/** ssh -G's answer, keyword → values in order. */
function sshG(dir: string, file: string, args: string[]): Map<string, string[]> {
  const out = execFileSync('ssh', ['-G', '-F', file, ...args], {
    encoding: 'utf8',
    cwd: dir,
    env: { HOME: dir, PATH: '/usr/bin:/bin', LANG: 'C' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const m = new Map<string, string[]>();
  for (const line of out.split('\n')) {
    const sp = line.indexOf(' ');
    if (sp === -1) continue;
    const k = line.slice(0, sp);
    m.set(k, [...(m.get(k) ?? []), line.slice(sp + 1)]);
  }
  return m;
}

type Want = { host: string; port: number; user: string; identityFiles: string[]; knownHosts: string | undefined };

/** One endpoint as ssh -G says it is reached; `alias` as given. */
function endpoint(dir: string, file: string, alias: string, g: Map<string, string[]>, defaultKh: string): Want {
  const host = g.get('hostname')![0]!;
  const port = Number(g.get('port')![0]);
  const user = g.get('user')![0]!;
  const tokens = { host, original: alias, port, user };
  const expand = (f: string) => {
    const r = expandTokens(f, tokens, { home: HOME, localUser: USER, env: {} });
    assert.ok('value' in r, `ssh -G printed ${f}`);
    const v = r.value;
    return v === '~' || v.startsWith('~/') ? path.join(HOME, v.slice(1)) : path.resolve(dir, v);
  };
  const identityFiles = [...new Set((g.get('identityfile') ?? []).map(expand).filter((f) => existsSync(f)))];
  const khList = (g.get('userknownhostsfile')?.[0] ?? '').split(' ');
  const sshDefault = khList.join(' ') === `${HOME}/.ssh/known_hosts ${HOME}/.ssh/known_hosts2`;
  const knownHosts = sshDefault ? defaultKh : khList.find((f) => f !== '/dev/null' && existsSync(f));
  // what the transport also honours, checked here: nothing beyond ssh-agent's default use
  assert.equal(g.get('identitiesonly')?.[0], 'no', `${alias}: IdentitiesOnly`);
  assert.ok([undefined, 'SSH_AUTH_SOCK', '$SSH_AUTH_SOCK'].includes(g.get('identityagent')?.[0]), `${alias}: IdentityAgent ${g.get('identityagent')?.[0]}`);
  assert.deepEqual((g.get('certificatefile') ?? []).map(expand).filter((f) => existsSync(f)), [], `${alias}: CertificateFile`);
  return { host, port, user, identityFiles, knownHosts };
}

/** The jump hosts ssh goes through for `g` (ssh.c: `ssh -l U -p P -J rest… LAST`; only the first hop's own ProxyJump counts). */
function chain(dir: string, file: string, g: Map<string, string[]>, defaultKh: string, depth = 0): Want[] {
  const pj = g.get('proxyjump')?.[0];
  if (pj === undefined || pj === 'none') return [];
  assert.ok(depth < 8, 'ProxyJump loop');
  const out: Want[] = [];
  pj.split(',').forEach((spec, i) => {
    const m = /^(?:([^@]+)@)?([^:]+)(?::(\d+))?$/.exec(spec)!;
    const args = [...(m[1] ? ['-l', m[1]] : []), ...(m[3] ? ['-p', m[3]] : []), m[2]!];
    const hg = sshG(dir, file, args);
    if (i === 0) out.push(...chain(dir, file, hg, defaultKh, depth + 1));
    out.push(endpoint(dir, file, m[2]!, hg, defaultKh));
  });
  return out;
}

function ours(s: ServerSpec | JumpHost, defaultKh: string): Want {
  return { host: s.host, port: s.port, user: s.user, identityFiles: s.identityFiles ?? [], knownHosts: s.knownHosts ?? defaultKh };
}

test('the ssh config corpus resolves as `ssh -G` says, or is refused with file and line', { skip }, () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'au-sshg-'));
  try {
    cpSync(FIXTURES, dir, { recursive: true });
    const substitute = (d: string) => {
      for (const ent of readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, ent.name);
        if (ent.isDirectory()) substitute(p);
        else writeFileSync(p, readFileSync(p, 'utf8').replaceAll('@DIR@', dir));
      }
    };
    substitute(dir);
    for (const k of KEYS) cpSync(path.join(dir, 'case.conf'), path.join(dir, k), { force: true });
    const defaultKh = path.join(dir, 'known_hosts');
    let compared = 0;
    for (const [conf, hosts] of Object.entries(CASES)) {
      const file = path.join(dir, conf);
      for (const [alias, expect] of Object.entries(hosts)) {
        const raw = { ...base(), servers: [{ name: 's', host: alias }], ssh: { config: file, known_hosts: defaultKh } };
        const r = validateConfig(raw, {
          file: path.join(dir, 'fleet.yaml'), dir, home: HOME, user: USER,
          exists: (p) => existsSync(p),
          readFile: (p) => { try { return { text: readFileSync(p, 'utf8') }; } catch (e) { return { error: (e as Error).message }; } },
          listDir: (d) => { try { return readdirSync(d); } catch { return []; } },
          env: {},
          readInventory: () => ({ kind: 'unreadable', message: 'none' }),
        });
        const label = `${conf} ${alias}`;
        if (expect !== true) {
          assert.ok('problems' in r, `${label}: expected a refusal`);
          assert.match(r.problems.map((p) => p.message).join('\n'), expect, label);
          continue;
        }
        assert.ok('config' in r, `${label}: refused: ${'problems' in r ? r.problems.map((p) => p.message).join('; ') : ''}`);
        const s = r.config.servers[0]!;
        const g = sshG(dir, file, [alias]);
        assert.deepEqual(ours(s, defaultKh), endpoint(dir, file, alias, g, defaultKh), `${label}: the server`);
        assert.deepEqual((s.jump ?? []).map((h) => ours(h, defaultKh)), chain(dir, file, g, defaultKh), `${label}: its jump hosts`);
        compared++;
      }
    }
    assert.ok(compared > 40, `compared ${compared}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
