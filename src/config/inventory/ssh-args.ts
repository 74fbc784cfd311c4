/**
 * The ssh command line Ansible's ssh connection builds for a host, read for what changes where
 * and as whom it connects.
 *
 * Ansible (plugins/connection/ssh.py, _build_command) passes, in this order: `ansible_ssh_args`
 * (default `-C -o ControlMaster=auto -o ControlPersist=60s`), `-o Port=` (ansible_port),
 * `-o IdentityFile=` (ansible_private_key_file), `-o User=` (ansible_user), then
 * `ansible_ssh_common_args` and `ansible_ssh_extra_args`, each split with Python's
 * `shlex.split`. OpenSSH keeps the first value it is given for an option (IdentityFile adds up;
 * ProxyJump, `-J` and ProxyCommand exclude each other, the first wins), so an earlier source
 * beats a later one.
 *
 * Each option is honoured (it becomes a field of the `servers:` entry: host, port, user,
 * identity_file, jump), ignored (it does not change which host, port, user, key or route is
 * used), or refused with the reason and what to write instead. An option we do not know is
 * refused: ignoring it could connect somewhere Ansible would not.
 */
import { shlexSplit, ShlexError } from './python.js';

/** One value an ssh option takes, from the variable it was written in. */
export interface ArgSetting<P> {
  option: 'user' | 'port' | 'identity_file' | 'hostname' | 'jump';
  /** user, port (a string), key file, hostname; jump: hops (`user@host:port`), [] = none */
  value: string | string[];
  /** the variable it came from (`ansible_ssh_common_args`) */
  from: string;
  place: P;
  /** a jump given with -J, which ssh refuses after another jump or a ProxyCommand */
  dashJ?: boolean;
}

export class SshArgsError extends Error {}

/** Options of ssh(1) that take no argument. */
const FLAGS = new Set('46AaCfGgKkMNnqsTtVvXxYy12'.split(''));
/** Options of ssh(1) that take an argument. */
const WITH_ARG = new Set('BbcDEeFIiJLlmOoPpQRSWw'.split(''));
/** Flags that change nothing about where or as whom we connect. */
const IGNORED_FLAGS = new Set('46AaCgKkqTtvXxYy'.split(''));
/** Options with an argument that change nothing about where or as whom we connect. */
const IGNORED_WITH_ARG = new Set('bcEem'.split(''));

/** `-o` options that change nothing about where, as whom or through what we connect. */
const IGNORED_OPTIONS = new Set(
  [
    'AddKeysToAgent',
    'AddressFamily',
    'BatchMode',
    'ChallengeResponseAuthentication',
    'CheckHostIP',
    'Ciphers',
    'ClearAllForwardings',
    'Compression',
    'ConnectionAttempts',
    'ConnectTimeout',
    'ControlMaster',
    'ControlPath',
    'ControlPersist',
    'EscapeChar',
    'ExitOnForwardFailure',
    'ForwardAgent',
    'ForwardX11',
    'ForwardX11Trusted',
    'GSSAPIAuthentication',
    'GSSAPIDelegateCredentials',
    'HashKnownHosts',
    'HostbasedAuthentication',
    'HostKeyAlgorithms',
    'IPQoS',
    'KbdInteractiveAuthentication',
    'KexAlgorithms',
    'LogLevel',
    'MACs',
    'NumberOfPasswordPrompts',
    'PasswordAuthentication',
    'PreferredAuthentications',
    'PubkeyAcceptedAlgorithms',
    'PubkeyAcceptedKeyTypes',
    'PubkeyAuthentication',
    'RequestTTY',
    'SendEnv',
    'ServerAliveCountMax',
    'ServerAliveInterval',
    'TCPKeepAlive',
    'UpdateHostKeys',
    'VerifyHostKeyDNS',
    'VisualHostKey',
  ].map((o) => o.toLowerCase()),
);

const HOST_KEYS =
  'agent-update always verifies host keys against its known_hosts (ssh.known_hosts); a host whose key is not there fails at the probe, before anything runs';

/** What to write instead of a ProxyCommand we cannot map. */
const PROXY_HINT =
  'agent-update runs no local command to connect; write the jump host as -o ProxyJump=[user@]bastion[:port] (a ProxyCommand of the form ssh [-q] [-p PORT] [-l USER] -W %h:%p [user@]bastion is read as that jump)';

/**
 * The settings in one variable's ssh arguments, in command-line order. Throws SshArgsError
 * (naming the option and what to do) for an option refused.
 */
export function readSshArgs<P>(text: string, from: string, place: P): ArgSetting<P>[] {
  let words: string[];
  try {
    words = shlexSplit(text, { comments: false })
      .map((w) => w.trim())
      .filter((w) => w !== '');
  } catch (e) {
    if (!(e instanceof ShlexError)) throw e;
    throw new SshArgsError(`cannot split ${JSON.stringify(text)} as Ansible does (${e.message === 'No closing quotation' ? 'a quote is not closed' : 'it ends with a backslash'})`);
  }
  const out: ArgSetting<P>[] = [];
  const set = (option: ArgSetting<P>['option'], value: string | string[]) => out.push({ option, value, from, place });
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (!w.startsWith('-') || w === '-') {
      throw new SshArgsError(`${JSON.stringify(w)} is not an ssh option; only options (-o Key=Value, -J, -p, -l, -i, …) belong there`);
    }
    for (let j = 1; j < w.length; j++) {
      const ch = w[j]!;
      if (FLAGS.has(ch)) {
        if (!IGNORED_FLAGS.has(ch)) throw new SshArgsError(`ssh option -${ch} is not supported here (it is not about where or as whom to connect)`);
        continue;
      }
      if (!WITH_ARG.has(ch)) throw new SshArgsError(`-${ch} is not an ssh option`);
      let arg = w.slice(j + 1);
      if (arg === '') {
        const next = words[++i];
        if (next === undefined) throw new SshArgsError(`ssh option -${ch} needs a value`);
        arg = next;
      }
      if (IGNORED_WITH_ARG.has(ch)) break;
      if (ch === 'o') option(arg, set);
      else if (ch === 'J') out.push({ option: 'jump', value: jumpHops(arg), from, place, dashJ: true });
      else if (ch === 'p') set('port', arg);
      else if (ch === 'l') set('user', arg);
      else if (ch === 'i') set('identity_file', arg);
      else if (ch === 'F') throw new SshArgsError(`-F ${arg}: another ssh config file is not read from an inventory; set ssh.config in agent-update's config`);
      else throw new SshArgsError(`ssh option -${ch} is not supported (agent-update opens no forwards, tunnels or control sockets)`);
      break;
    }
  }
  return out;
}

function option<P>(text: string, set: (option: ArgSetting<P>['option'], value: string | string[]) => void): void {
  // ssh's readconf: `Key=Value`, `Key Value` or `Key = Value`
  const m = /^\s*([A-Za-z0-9]+)\s*(?:=\s*|\s+)(.*)$/s.exec(text);
  if (!m) throw new SshArgsError(`-o ${JSON.stringify(text)}: expected Key=Value`);
  const key = m[1]!;
  let value = m[2]!.trim();
  if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
  const k = key.toLowerCase();
  switch (k) {
    case 'proxyjump':
      set('jump', jumpHops(value));
      return;
    case 'proxycommand':
      set('jump', proxyCommand(value));
      return;
    case 'user':
      set('user', value);
      return;
    case 'port':
      set('port', value);
      return;
    case 'identityfile':
      set('identity_file', value);
      return;
    case 'hostname':
      set('hostname', value);
      return;
    case 'stricthostkeychecking':
      // Ansible's ssh would accept an unknown (or, with no, a changed) host key; we never do.
      return;
    case 'userknownhostsfile':
    case 'globalknownhostsfile':
      if (value === '/dev/null') return; // with StrictHostKeyChecking=no: "do not check"; we check
      throw new SshArgsError(`-o ${key}=${value}: set the known_hosts file in agent-update's config (ssh.known_hosts) or an ssh config (ssh.config); ${HOST_KEYS}`);
    case 'identitiesonly':
      throw new SshArgsError(
        `-o ${key}=${value} is not supported per host: agent-update offers the host's key file, then ssh-agent's keys when ssh.agent is true; ` +
          'remove it (set ssh.agent: false in the config to offer key files only)',
      );
    case 'hostkeyalias':
      throw new SshArgsError(`-o ${key}: HostKeyAlias is not supported (host keys are checked under the host name and port connected to)`);
    default:
      if (IGNORED_OPTIONS.has(k)) return;
      throw new SshArgsError(
        `-o ${key}: agent-update does not know what this ssh option would change, so it does not guess; ` +
          'remove it from the inventory agent-update reads, or put it in an ssh config (ssh.config) where it is refused or honoured for certain',
      );
  }
}

/** ProxyJump's value: `none` (no jump), or hops separated by commas. */
function jumpHops(value: string): string[] {
  if (value.toLowerCase() === 'none') return [];
  const hops = value.split(',').map((h) => h.trim());
  if (hops.some((h) => h === '')) throw new SshArgsError(`ProxyJump ${JSON.stringify(value)}: an empty jump host`);
  return hops;
}

/**
 * ProxyCommand: `none`, or exactly `ssh [-q] [-p PORT] [-l USER] -W %h:%p [USER@]BASTION`
 * (the ssh client, quietly, to the bastion, forwarding stdin/stdout to the target), which is a
 * jump through BASTION. Anything else is refused.
 */
function proxyCommand(value: string): string[] {
  if (value.toLowerCase() === 'none') return [];
  let words: string[];
  try {
    words = shlexSplit(value, { comments: false });
  } catch {
    throw new SshArgsError(`ProxyCommand ${JSON.stringify(value)}: a quote is not closed; ${PROXY_HINT}`);
  }
  const refuse = (why: string): never => {
    throw new SshArgsError(`ProxyCommand ${JSON.stringify(value)} ${why}; ${PROXY_HINT}`);
  };
  if (words[0] !== 'ssh' && !/^\/[^\s]*\/ssh$/.test(words[0] ?? '')) refuse('does not run ssh');
  let port: string | undefined;
  let user: string | undefined;
  let forward = false;
  let dest: string | undefined;
  for (let i = 1; i < words.length; i++) {
    const w = words[i]!;
    const take = (flag: string): string => {
      if (w.length > 2) return w.slice(2);
      const next = words[++i];
      if (next === undefined) refuse(`has ${flag} without a value`);
      return next!;
    };
    if (w === '-q') continue;
    if (w.startsWith('-p')) port = take('-p');
    else if (w.startsWith('-l')) user = take('-l');
    else if (w.startsWith('-W')) {
      if (take('-W') !== '%h:%p') refuse('forwards to something other than %h:%p');
      forward = true;
    } else if (w.startsWith('-i')) {
      refuse(
        "gives the jump host its own key (-i): a jump host's key comes from an ssh config (IdentityFile, with ssh.config) or ssh.identity_file; remove -i there",
      );
    } else if (w.startsWith('-')) refuse(`has the option ${w}, which is not one of -q, -p, -l, -W`);
    else if (dest === undefined) dest = w;
    else refuse(`runs a remote command (${JSON.stringify(w)})`);
  }
  if (!forward) refuse('has no -W %h:%p');
  if (dest === undefined) refuse('names no jump host');
  const at = dest!.lastIndexOf('@');
  const host = dest!.slice(at + 1);
  // -l wins over user@, as in ssh (the options are read before the destination)
  const login = user ?? (at === -1 ? undefined : dest!.slice(0, at));
  if (port !== undefined && !/^\d+$/.test(port)) refuse(`has the port ${JSON.stringify(port)}`);
  const hop = `${login !== undefined ? `${login}@` : ''}${host.includes(':') ? `[${host}]` : host}${port !== undefined ? `:${port}` : ''}`;
  return [hop];
}
