/**
 * The Ansible baseline of `npm run bench` (a): the same update, restart and health poll as the
 * ssh loop, as a playbook with `serial: 1`, pipelining and ControlPersist, over the same fleet.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import type { Fleet } from '../test/fleet/fleet.js';

/** `ansible-playbook --version`'s first line, or null when it is not installed. */
export async function ansibleVersion(): Promise<string | null> {
  const r = await execa('ansible-playbook', ['--version'], { reject: false });
  return r.exitCode === 0 ? (r.stdout.split('\n')[0] ?? null) : null;
}

/** Milliseconds for the playbook over every live server of `fleet`, one at a time. */
export async function ansibleRollout(fleet: Fleet, commit: string): Promise<number> {
  const dir = join(fleet.root, 'ansible');
  await execa('mkdir', ['-p', join(dir, 'cp')]);
  const live = fleet.servers.filter((s) => /^s\d+$/.test(s.name));
  writeFileSync(
    join(dir, 'hosts.ini'),
    '[fleet]\n' + live.map((s) => `${s.name} ansible_host=${s.host} ansible_port=${s.port} ansible_user=${s.user}`).join('\n') + '\n',
  );
  writeFileSync(
    join(dir, 'ansible.cfg'),
    [
      '[defaults]',
      'host_key_checking = True',
      'interpreter_python = /usr/bin/python3',
      'forks = 1',
      'gathering = explicit',
      'retry_files_enabled = False',
      `private_key_file = ${fleet.identityFile}`,
      '[ssh_connection]',
      'pipelining = True',
      `ssh_args = -F /dev/null -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=${fleet.knownHosts} -o IdentitiesOnly=yes -o BatchMode=yes`,
      `control_path = ${dir}/cp/%%C`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'update.yml'),
    `- hosts: fleet
  serial: 1
  gather_facts: false
  tasks:
    - name: update and restart
      shell: git -C ~/agent/repo fetch --quiet '${fleet.upstream.repo}' master && git -C ~/agent/repo reset --hard --quiet ${commit} && ~/agent/bin/restart web
    - name: health
      shell: ~/agent/bin/health
      register: health
      until: health.rc == 0 and '${commit}' in health.stdout
      retries: 100
      delay: 0
      failed_when: false
      changed_when: false
`,
  );
  const began = performance.now();
  const r = await execa('ansible-playbook', ['-i', join(dir, 'hosts.ini'), join(dir, 'update.yml')], {
    reject: false,
    cwd: dir,
    env: { ANSIBLE_CONFIG: join(dir, 'ansible.cfg'), ANSIBLE_NOCOLOR: '1' },
  });
  const ms = performance.now() - began;
  if (r.exitCode !== 0 || /failed=[1-9]|unreachable=[1-9]/.test(r.stdout)) throw new Error(`ansible-playbook exited ${r.exitCode}: ${r.stdout.slice(-800)}${r.stderr.slice(-400)}`);
  return ms;
}
