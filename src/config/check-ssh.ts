/**
 * The `ssh:` block (SPEC.md "Config (YAML)"): how agent-update logs in and how long it waits,
 * for every server; and `ssh.config`, read here (config/ssh-config.ts), used by reach.ts.
 *
 * - `ssh.user` defaults to the user running agent-update; `ssh.port` to 22;
 *   `ssh.known_hosts` to `~/.ssh/known_hosts` and must exist (host keys are always verified);
 *   `ssh.identity_file` is optional and, when given, must exist. `~` means the home folder,
 *   relative paths are relative to the config file's folder.
 *   `ssh.connect_timeout` default 10s, `ssh.command_timeout` default 10m.
 *
 * Extension keys (not in the SPEC's example):
 *
 * - `ssh.passphrase_env` (default `AGENT_UPDATE_SSH_PASSPHRASE`): name of the environment
 *   variable that holds the identity file's passphrase; the passphrase itself never goes in
 *   the config.
 * - `ssh.agent` (default `true`): also offer the keys of a running ssh-agent ($SSH_AUTH_SOCK)
 *   when it is set. With `agent: false` an `identity_file` is required.
 * - `ssh.reconnect_for` (default `30s`; `0` = do not retry): how long a lost connection (or a
 *   refused reconnect) is retried, with backoff, before the step it interrupted is judged.
 * - `ssh.keepalive_interval` (default `15s`; `0` turns keepalives off): how often an idle
 *   connection is probed, so a dead server is noticed.
 * - `ssh.dead_man_timeout` (default 3 × `keepalive_interval`, `60s` when that is 0; `0` turns it
 *   off; else at least `2s`): a running command is killed on the server when the executor sent
 *   no beat for this long (a silent partition, a frozen executor).
 * - `ssh.output_limit` (default `65536`, 1024..67108864): bytes of stdout/stderr kept per
 *   command; the tail is kept.
 * - `ssh.max_handshakes` (default 8, 1..1000): SSH handshakes at once per host.
 * - `ssh.config` (`true` = `~/.ssh/config`, or a path; must exist): an OpenSSH client config
 *   servers and jump hosts are looked up in (reach.ts).
 */
import * as path from 'node:path';
import { formatDuration } from '../util/duration.js';
import { checkUser, type Checker } from './checker.js';
import { DEAD_MAN_MIN_MS, defaultDeadManMs } from './dead-man.js';
import { DEFAULTS, KEYS } from './keys.js';
import { isEnvVarName } from './names.js';
import { parseSshConfig, type ParsedSshConfig } from './ssh-config.js';
import type { Config } from './types.js';
import type { ValidateContext } from './validate.js';

const OUTPUT_LIMIT_MIN = 1024;
const OUTPUT_LIMIT_MAX = 64 * 1024 * 1024;

/**
 * The `ssh:` block as the config's `ssh` settings; `raw`, the block as written (reach.ts: its
 * `jump`, and which keys were given); `parsed`, the ssh config when ssh.config names one that
 * could be read.
 */
export function checkSsh(c: Checker, ctx: ValidateContext, top: Record<string, unknown>): { ssh: Config['ssh']; raw: Record<string, unknown>; parsed: ParsedSshConfig | null } {
  const sshRaw = c.section(['ssh'], top.ssh, KEYS.ssh) ?? {};
  let sshUser = ctx.user ?? '';
  if (sshRaw.user !== undefined && sshRaw.user !== null) {
    const u = checkUser(c, ['ssh', 'user'], sshRaw.user);
    if (u !== undefined) sshUser = u;
  } else if (!ctx.user) {
    c.add(['ssh', 'user'], 'could not tell the current user; set ssh.user');
  }
  const sshPort = c.int(['ssh', 'port'], sshRaw.port, DEFAULTS.sshPort, 1, 65535, 'a port number (an integer 1 to 65535)');

  let identityFile: string | null = null;
  if (sshRaw.identity_file !== undefined && sshRaw.identity_file !== null) {
    const s = c.string(['ssh', 'identity_file'], sshRaw.identity_file, 'a file path (a string)');
    const abs = s === undefined ? undefined : c.filePath(['ssh', 'identity_file'], s);
    if (abs !== undefined) {
      if (!c.exists(abs)) c.addLocal(['ssh', 'identity_file'], `file not found: ${abs}${abs !== s ? ` (from ${JSON.stringify(s)})` : ''}`);
      identityFile = abs;
    }
  }
  let knownHosts = '';
  {
    const given = sshRaw.known_hosts !== undefined && sshRaw.known_hosts !== null;
    const s = given ? c.string(['ssh', 'known_hosts'], sshRaw.known_hosts, 'a file path (a string)') : DEFAULTS.knownHosts;
    const abs = s === undefined ? undefined : c.filePath(['ssh', 'known_hosts'], s);
    if (abs !== undefined) {
      knownHosts = abs;
      if (!c.exists(abs)) {
        c.addLocal(
          ['ssh', 'known_hosts'],
          `file not found: ${abs}${given ? '' : ' (the default)'}; host keys are always verified; ` +
            'create it with ssh-keyscan or point ssh.known_hosts at one',
        );
      }
    }
  }
  const connectTimeoutMs = c.duration(['ssh', 'connect_timeout'], sshRaw.connect_timeout, DEFAULTS.connectTimeoutMs);
  const commandTimeoutMs = c.duration(['ssh', 'command_timeout'], sshRaw.command_timeout, DEFAULTS.commandTimeoutMs);
  const keepaliveIntervalMs = c.duration(['ssh', 'keepalive_interval'], sshRaw.keepalive_interval, DEFAULTS.keepaliveIntervalMs, true);
  const reconnectForMs = c.duration(['ssh', 'reconnect_for'], sshRaw.reconnect_for, DEFAULTS.reconnectForMs, true);
  const deadManTimeoutMs = c.duration(['ssh', 'dead_man_timeout'], sshRaw.dead_man_timeout, defaultDeadManMs(keepaliveIntervalMs), true);
  if (deadManTimeoutMs > 0 && deadManTimeoutMs < DEAD_MAN_MIN_MS) {
    c.add(['ssh', 'dead_man_timeout'], `must be at least ${formatDuration(DEAD_MAN_MIN_MS)} (or 0 to turn the dead-man timer off)`);
  }
  let passphraseEnv: string = DEFAULTS.passphraseEnv;
  if (sshRaw.passphrase_env !== undefined && sshRaw.passphrase_env !== null) {
    const s = c.string(['ssh', 'passphrase_env'], sshRaw.passphrase_env, 'an environment variable name');
    if (s !== undefined) {
      if (isEnvVarName(s)) passphraseEnv = s;
      else c.add(['ssh', 'passphrase_env'], `${JSON.stringify(s)} is not an environment variable name (letters, digits and '_', not starting with a digit)`);
    }
  }
  const useAgent = c.bool(['ssh', 'agent'], sshRaw.agent, DEFAULTS.sshAgent);
  if (!useAgent && identityFile === null && (sshRaw.identity_file === undefined || sshRaw.identity_file === null)) {
    c.add(['ssh', 'agent'], 'is false and no ssh.identity_file is set: there is no key to log in with');
  }
  const outputLimitBytes = c.int(
    ['ssh', 'output_limit'],
    sshRaw.output_limit,
    DEFAULTS.outputLimitBytes,
    OUTPUT_LIMIT_MIN,
    OUTPUT_LIMIT_MAX,
    `a number of bytes (an integer ${OUTPUT_LIMIT_MIN} to ${OUTPUT_LIMIT_MAX})`,
  );
  const maxHandshakes = c.int(['ssh', 'max_handshakes'], sshRaw.max_handshakes, DEFAULTS.maxHandshakes, 1, 1000, 'a whole number 1 to 1000');

  // ssh.config: the OpenSSH client config servers (and jump hosts) are looked up in
  let sshConfigFile: string | null = null;
  let sshCfg: ParsedSshConfig | null = null;
  if (sshRaw.config !== undefined && sshRaw.config !== null && sshRaw.config !== false) {
    if (sshRaw.config === true) sshConfigFile = path.join(ctx.home, '.ssh', 'config');
    else {
      const s = c.string(['ssh', 'config'], sshRaw.config, 'true (for ~/.ssh/config) or the path of an OpenSSH client config file');
      sshConfigFile = s === undefined ? null : (c.filePath(['ssh', 'config'], s) ?? null);
    }
    if (sshConfigFile !== null) {
      if (!c.exists(sshConfigFile)) {
        c.addLocal(['ssh', 'config'], `file not found: ${sshConfigFile}${sshRaw.config === true ? ' (ssh.config: true reads ~/.ssh/config)' : ''}`);
      } else if (ctx.readFile) {
        sshCfg = parseSshConfig(sshConfigFile, {
          home: ctx.home,
          localUser: ctx.user ?? '',
          readFile: ctx.readFile,
          listDir: ctx.listDir ?? (() => []),
          exists: c.exists.bind(c),
        });
        for (const problem of sshCfg.problems) c.add(['ssh', 'config'], problem);
      }
    }
  }
  return {
    ssh: {
      user: sshUser,
      port: sshPort,
      identityFile,
      passphraseEnv,
      agent: useAgent,
      knownHosts,
      connectTimeoutMs,
      commandTimeoutMs,
      keepaliveIntervalMs,
      deadManTimeoutMs,
      reconnectForMs,
      outputLimitBytes,
      maxHandshakes,
      configFile: sshConfigFile,
    },
    raw: sshRaw,
    parsed: sshCfg,
  };
}
