/**
 * The app's side of the seed's routing rules (../shared/spec/acp-rpc.md, "Routing rules kept from the seed"),
 * as a pure function: a user-supplied base URL in, the one endpoint every call goes to (`…/acp/rpc`) out.
 *
 *  1. http(s) only; no credentials and no query string in the base (tokens travel in `Authorization`).
 *  2. A trailing `/acp` or `/acp/rpc` (and trailing slashes) is stripped once, then `/acp/rpc` is appended:
 *     `https://h`, `https://h/`, `https://h/acp`, `https://h/acp/rpc/` all become `https://h/acp/rpc`;
 *     `https://h/team` becomes `https://h/team/acp/rpc` (a gateway behind a path prefix).
 *  3. A path with an `acp-server` or `gateway` segment is refused: provider-direct paths (`/acp-server/*`) and
 *     `/gateway/openclaw` are never ACP bases; runtimes are chosen by routing params on `/acp/rpc`.
 *  4. Managed mode (`allowLocal: false`) refuses loopback, private-LAN and link-local hosts (see `isLocalHost`);
 *     `allowLocal: true` (the CLI's `--local`) is the user opting in to a gateway on this machine or LAN.
 *
 * The host check is on the URL as written: names are not resolved (a public name that resolves to a LAN
 * address is not caught here).
 */
import { isIP } from 'node:net';

export type BaseUrlRule = 'invalid-url' | 'scheme' | 'credentials' | 'query' | 'direct-path' | 'local-address';

/** A refused base URL; `rule` says which rule refused it, the message names the rule for a human. */
export class AcpBaseUrlError extends Error {
  constructor(
    readonly rule: BaseUrlRule,
    message: string,
  ) {
    super(message);
    this.name = 'AcpBaseUrlError';
  }
}

export interface NormaliseOptions {
  /** true = local use: loopback / LAN / link-local hosts are allowed (CLI `--local`) */
  allowLocal: boolean;
}

/** Path segments that never belong in an ACP base (compared case-insensitively, after percent-decoding). */
const REFUSED_SEGMENTS: Readonly<Record<string, string>> = {
  'acp-server': 'paths under /acp-server/ are provider-direct routes, which are disabled; send every task to /acp/rpc',
  gateway: 'paths under /gateway/ (e.g. /gateway/openclaw) are not ACP endpoints; gateway tasks are selected by routing params on /acp/rpc',
};

function decode(segment: string): string {
  try {
    return decodeURIComponent(segment).toLowerCase();
  } catch {
    return segment.toLowerCase();
  }
}

/** The URL as shown in messages: never with credentials. */
function shown(u: URL): string {
  const c = new URL(u.href);
  c.username = '';
  c.password = '';
  return c.href;
}

export function normaliseAcpBase(input: string, opts: NormaliseOptions): URL {
  const raw = input.trim();
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new AcpBaseUrlError('invalid-url', `invalid ACP base URL ${JSON.stringify(raw)}: expected http(s)://host[:port][/prefix]`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new AcpBaseUrlError(
      'scheme',
      `invalid ACP base URL ${shown(u)}: must be http:// or https:// (the WebSocket endpoint /acp is derived, not configured)`,
    );
  }
  if (u.username || u.password) {
    throw new AcpBaseUrlError('credentials', `invalid ACP base URL ${shown(u)}: credentials do not belong in the URL; pass the ACP token separately`);
  }
  if (u.search) throw new AcpBaseUrlError('query', `invalid ACP base URL ${shown(u)}: a base URL carries no query string`);
  u.hash = '';

  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith('/acp/rpc')) path = path.slice(0, -'/acp/rpc'.length);
  else if (path.endsWith('/acp')) path = path.slice(0, -'/acp'.length);
  path = path.replace(/\/+$/, '');
  u.pathname = `${path}/acp/rpc`;

  for (const segment of u.pathname.split('/')) {
    const why = REFUSED_SEGMENTS[decode(segment)];
    if (why) throw new AcpBaseUrlError('direct-path', `refusing ACP base ${shown(u)}: ${why}`);
  }

  if (!opts.allowLocal && isLocalHost(u.hostname)) {
    throw new AcpBaseUrlError(
      'local-address',
      `refusing ACP base ${shown(u)}: ${u.hostname} is a loopback/LAN address, which managed mode never calls; opt in to local use (--local) to reach a gateway on this machine or network`,
    );
  }
  return u;
}

/**
 * Loopback (127.0.0.0/8, 0.0.0.0/8, ::1, ::, `localhost`, `*.localhost`), private LAN (10/8, 172.16/12,
 * 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10), IPv4-mapped forms of those (`::ffff:10.0.0.1`),
 * mDNS names (`*.local`) and single-label names (`nas`, resolved only by a local search domain).
 * `hostname` as `URL.hostname` gives it (IPv6 in brackets, IPv4 already canonical).
 */
export function isLocalHost(hostname: string): boolean {
  let h = hostname.toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  h = h.replace(/\.$/, '');
  const kind = isIP(h);
  if (kind === 4) return isLocalV4(v4Bytes(h));
  if (kind === 6) return isLocalV6(h);
  if (h === '') return true;
  if (h === 'localhost' || h.endsWith('.localhost') || h.endsWith('.local')) return true;
  return !h.includes('.');
}

function v4Bytes(s: string): number[] {
  return s.split('.').map((p) => Number(p));
}

function isLocalV4(b: number[]): boolean {
  const [a = 0, c = 0] = b;
  return (
    a === 127 || // loopback
    a === 0 || // "this network": 0.0.0.0 reaches this machine
    a === 10 ||
    (a === 172 && c >= 16 && c <= 31) ||
    (a === 192 && c === 168) ||
    (a === 169 && c === 254)
  );
}

/** 16 bytes of a valid IPv6 literal (as accepted by net.isIP; a zone id is dropped). */
function v6Bytes(s: string): number[] {
  let addr = s.split('%')[0]!;
  // an embedded dotted IPv4 tail (::ffff:1.2.3.4) becomes two hex groups
  const dotted = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(addr);
  if (dotted) {
    const [a, b, c, d] = dotted.slice(1).map(Number) as [number, number, number, number];
    addr = addr.slice(0, dotted.index) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const groups = (part: string) => (part === '' ? [] : part.split(':').map((g) => parseInt(g, 16)));
  const [left = '', right] = addr.split('::');
  const l = groups(left);
  const r = right === undefined ? [] : groups(right);
  const all = right === undefined ? l : [...l, ...new Array<number>(8 - l.length - r.length).fill(0), ...r];
  const bytes: number[] = [];
  for (const g of all) bytes.push((g >> 8) & 0xff, g & 0xff);
  return bytes;
}

function isLocalV6(s: string): boolean {
  const b = v6Bytes(s);
  const zeros = (n: number) => b.slice(0, n).every((x) => x === 0);
  if (zeros(15) && (b[15] === 1 || b[15] === 0)) return true; // ::1, ::
  if (zeros(10) && b[10] === 0xff && b[11] === 0xff) return isLocalV4(b.slice(12)); // ::ffff:a.b.c.d
  const b0 = b[0] ?? 0;
  const b1 = b[1] ?? 0;
  if ((b0 & 0xfe) === 0xfc) return true; // fc00::/7 unique local
  if (b0 === 0xfe && (b1 & 0xc0) === 0x80) return true; // fe80::/10 link-local
  return false;
}
