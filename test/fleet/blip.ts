/**
 * A network blip on a real-sshd fleet: every connection to its sshd is cut at once, and for a
 * while new ones get no answer, then everything works again. Found from outside the fleet (by
 * the sshd config path under the fleet's root), so it works on any Fleet.
 */
import { execFileSync } from 'node:child_process';

interface Proc {
  pid: number;
  ppid: number;
  args: string;
}

function processes(): Proc[] {
  return execFileSync('ps', ['-A', '-o', 'pid=,ppid=,args='], { encoding: 'utf8' })
    .split('\n')
    .map((l) => /^\s*(\d+)\s+(\d+)\s+(.*)$/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ pid: Number(m[1]), ppid: Number(m[2]), args: m[3]! }));
}

function descendants(all: Proc[], root: number): number[] {
  const out: number[] = [];
  const queue = [root];
  while (queue.length) {
    const p = queue.shift()!;
    for (const c of all) {
      if (c.ppid === p) {
        out.push(c.pid);
        queue.push(c.pid);
      }
    }
  }
  return out;
}

const signal = (pid: number, sig: NodeJS.Signals) => {
  try {
    process.kill(pid, sig);
  } catch {
    /* gone already */
  }
};

/**
 * Cut every connection of the fleet whose files are under `root` and hold new ones unanswered
 * for `ms` (the listeners are stopped: connections wait in the backlog, as behind a dead link).
 * Resolves once the sshds answer again. Returns how many connections were cut.
 */
export async function blip(root: string, ms: number): Promise<number> {
  const all = processes();
  const listeners = all.filter((p) => p.args.includes('sshd') && p.args.includes(' -D ') && p.args.includes(root));
  if (listeners.length === 0) throw new Error(`no sshd of the fleet under ${root} is running`);
  let cut = 0;
  for (const l of listeners) {
    signal(l.pid, 'SIGSTOP');
    for (const d of descendants(all, l.pid)) {
      signal(d, 'SIGKILL');
      cut++;
    }
  }
  try {
    await new Promise((r) => setTimeout(r, ms));
  } finally {
    for (const l of listeners) signal(l.pid, 'SIGCONT');
  }
  return cut;
}
