/**
 * Host patterns as Ansible reads them (ansible.parsing.utils.addresses.parse_address and
 * ansible.plugins.inventory.expand_hostname_range): an optional `:port` (`web1:2222`,
 * `[2001:db8::1]:2222`), and ranges `web[01:20]` (zero padded when the start is), `db-[a:c]`,
 * `node[1:10:2]` (a stride), several in one name.
 */

export class HostPatternError extends Error {}

const NUMERIC_RANGE = String.raw`\[(?:[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const HEX_RANGE = String.raw`\[(?:[0-9a-f]+:[0-9a-f]+)(?::[0-9]+)?\]`;
const ALNUM_RANGE = String.raw`\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]`;
const V6 = String.raw`(?:[0-9a-f]{1,4}|${HEX_RANGE})`;
const V4 = String.raw`(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|${NUMERIC_RANGE})`;
// Python's \w on text: letters, numbers and '_'
const W = String.raw`[\p{L}\p{N}_]`;
const LABEL = String.raw`(?:${W}|${ALNUM_RANGE})(?:${W}|[_-]|${ALNUM_RANGE})*(?<![_-])`;

const BRACKETED_HOSTPORT = /^\[(.+)\]:([0-9]+)$/su;
const HOSTPORT = /^((?:[^:[\]]|\[[^\]]*\])*):([0-9]+)$/su;
const IPV4 = new RegExp(String.raw`^(?:${V4}\.){3}${V4}$`, 'iu');
// As in Ansible, `^` and `$` bind to the first and last alternatives only (re.match anchors
// every alternative at the start).
const IPV6 = new RegExp(
  '^(?:' +
    [
      String.raw`(?:${V6}:){7}${V6}`,
      String.raw`(?:${V6}:){1,6}:`,
      String.raw`(?:${V6}:)(?::${V6}){1,6}`,
      String.raw`(?:${V6}:){2}(?::${V6}){1,5}`,
      String.raw`(?:${V6}:){3}(?::${V6}){1,4}`,
      String.raw`(?:${V6}:){4}(?::${V6}){1,3}`,
      String.raw`(?:${V6}:){5}(?::${V6}){1,2}`,
      String.raw`(?:${V6}:){6}(?::${V6})`,
      String.raw`:(?::${V6}){1,6}`,
      String.raw`${V6}?::`,
      String.raw`(?:0:){6}(?:${V6}\.){3}${V6}`,
      String.raw`::(?:ffff:)?(?:${V6}\.){3}${V6}`,
      String.raw`(?:0:){5}ffff:(?:${V6}\.){3}${V6}$`,
    ].join('|') +
    ')',
  'iu',
);
const HOSTNAME = new RegExp(String.raw`^${LABEL}(?:\.${LABEL})*$`, 'iu');

/** parse_address(allow_ranges=True): the host and port, or null when it is not an address. */
export function parseAddress(address: string): { host: string; port: number | null } | null {
  let port: number | null = null;
  for (const re of [BRACKETED_HOSTPORT, HOSTPORT]) {
    const m = re.exec(address);
    if (m) {
      address = m[1]!;
      port = Number(m[2]);
    }
  }
  if (IPV4.test(address) || IPV6.test(address) || HOSTNAME.test(address)) return { host: address, port };
  return null;
}

/** `_expand_hostpattern`: the host names a pattern stands for, and the port given with it. */
export function expandHostPattern(pattern: string): { names: string[]; port: number | null } {
  const parsed = parseAddress(pattern);
  // Not an address Ansible recognises: it is taken as written, without a port.
  const base = parsed?.host ?? pattern;
  const port = parsed?.port ?? null;
  const names = base.includes('[') ? expandRanges(base, pattern) : [base];
  return { names, port };
}

/** A bound on what one pattern may expand to (a typo such as [1:100000000] must not eat the memory). */
const MAX_HOSTS = 100_000;

const LETTERS = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Python's int() on a string: optional spaces and sign, digits with single underscores. */
function pyInt(s: string): number | null {
  if (!/^\s*[+-]?\d+(?:_\d+)*\s*$/.test(s)) return null;
  return Number(s.trim().replace(/_/g, ''));
}

function zfill(s: string, width: number): string {
  const sign = s.startsWith('-') || s.startsWith('+') ? s[0]! : '';
  const digits = sign ? s.slice(1) : s;
  return sign + digits.padStart(width - sign.length, '0');
}

/** expand_hostname_range, with the same quirks; a range giving no host at all is an error here. */
export function expandRanges(line: string, whole = line): string[] {
  const open = line.indexOf('[');
  const swapped = line.slice(0, open) + '|' + line.slice(open + 1);
  const close = swapped.indexOf(']');
  const parts = (close === -1 ? swapped : swapped.slice(0, close) + '|' + swapped.slice(close + 1)).split('|');
  if (parts.length !== 3) {
    throw new HostPatternError(
      close === -1 ? `host pattern ${JSON.stringify(whole)}: a range is missing its closing ']'` : `host pattern ${JSON.stringify(whole)} cannot be read as a range`,
    );
  }
  const [head, range, tail] = parts as [string, string, string];
  const bounds = range.split(':');
  if (bounds.length !== 2 && bounds.length !== 3) {
    throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: a range must be [begin:end] or [begin:end:step], got [${range}]`);
  }
  let beg = bounds[0]!;
  const end = bounds[1]!;
  const stepText = bounds[2] ?? '1';
  if (beg === '') beg = '0';
  if (end === '') throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the range [${range}] has no end`);
  let fill = (x: string) => x;
  if (beg[0] === '0' && beg.length > 1) {
    const width = beg.length;
    if (width !== end.length) {
      throw new HostPatternError(
        `host pattern ${JSON.stringify(whole)}: a zero-padded range needs a begin and an end of the same length, got [${range}]`,
      );
    }
    fill = (x) => zfill(x, width);
  }
  const step = pyInt(stepText);
  if (step === null) throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the step of [${range}] must be a whole number`);
  if (step === 0) throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the step of [${range}] must not be 0`);
  const seq: string[] = [];
  const iBeg = LETTERS.indexOf(beg);
  const iEnd = LETTERS.indexOf(end);
  if (iBeg !== -1 && iEnd !== -1) {
    if (iBeg > iEnd) throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the range [${range}] must have begin <= end`);
    if (step > 0) for (let i = iBeg; i <= iEnd; i += step) seq.push(LETTERS[i]!);
  } else {
    const b = pyInt(beg);
    const e = pyInt(end);
    if (b === null || e === null) {
      throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the range [${range}] is neither numbers nor letters`);
    }
    const count = Math.ceil((e + 1 - b) / step);
    if (count > MAX_HOSTS) {
      throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the range [${range}] gives ${count} hosts, more than ${MAX_HOSTS}`);
    }
    if (step > 0) for (let i = b; i < e + 1; i += step) seq.push(String(i));
    else for (let i = b; i > e + 1; i += step) seq.push(String(i));
  }
  if (seq.length === 0) throw new HostPatternError(`host pattern ${JSON.stringify(whole)}: the range [${range}] gives no host`);
  const out: string[] = [];
  for (const r of seq) {
    const name = head + fill(r) + tail;
    if (name.includes('[')) out.push(...expandRanges(name, whole));
    else out.push(name);
    if (out.length > MAX_HOSTS) throw new HostPatternError(`host pattern ${JSON.stringify(whole)} gives more than ${MAX_HOSTS} hosts`);
  }
  return out;
}
