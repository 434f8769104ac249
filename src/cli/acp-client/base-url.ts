/**
 * The app's side of the seed's routing rules (../shared/spec/acp-rpc.md, "Routing rules kept from the seed"),
 * as a pure function: a user-supplied base URL in, the one endpoint every call goes to (`…/acp/rpc`) out.
 *
 *  1. What any gateway base URL may be (`gatewayBase`, the admin commands' rule too): http(s) only; no
 *     credentials and no query string (tokens travel in `Authorization`); a fragment is dropped.
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
export class BaseUrlError extends Error {
  constructor(
    readonly rule: BaseUrlRule,
    message: string,
  ) {
    super(message);
    this.name = 'BaseUrlError';
  }
}

/** A base URL `normaliseAcpBase` refused. */
export class AcpBaseUrlError extends BaseUrlError {
  constructor(rule: BaseUrlRule, message: string) {
    super(rule, message);
    this.name = 'AcpBaseUrlError';
  }
}

/** How `gatewayBase` names what it checks, and where the token goes instead of the URL. */
export interface BaseNaming {
  /** the URL's name in a refusal, e.g. `--url` */
  subject: string;
  /** how the token is given, e.g. `the admin token with --token or $SWITCHYARD_ADMIN_TOKEN` */
  token: string;
}

/**
 * What a gateway base URL may be, for every command that reaches a gateway (the admin commands append their path
 * to it, the ACP client normalises it to `…/acp/rpc`): `http://` or `https://` and a host; no user name or
 * password and no query string, which the gateway would never receive as meant (the token goes in
 * `Authorization`, and a path appended after a query lands in it); a fragment, never sent, is dropped. A refusal
 * never echoes the URL: a password or a token in it would land in the error line.
 */
export function gatewayBase(input: string, naming: BaseNaming): URL {
  const raw = input.trim();
  const { subject } = naming;
  if (!/^https?:\/\//i.test(raw)) throw new BaseUrlError('scheme', `${subject} must be a gateway's http:// or https:// URL`);
  // `https:///h` parses as `https://h/`: a base with no host before its path is a mistake, not that host
  if (!/^https?:\/\/[^/]/i.test(raw) || !URL.canParse(raw)) {
    throw new BaseUrlError('invalid-url', `${subject} is not a valid URL: expected http(s)://host[:port][/prefix]`);
  }
  const u = new URL(raw);
  if (u.username || u.password) {
    throw new BaseUrlError('credentials', `${subject}: credentials do not belong in the URL; pass ${naming.token}`);
  }
  if (u.search) throw new BaseUrlError('query', `${subject}: a gateway base URL carries no query string`);
  u.hash = '';
  return u;
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

export function normaliseAcpBase(input: string, opts: NormaliseOptions): URL {
  let u: URL;
  try {
    u = gatewayBase(input, { subject: 'the ACP base URL', token: 'the ACP token separately' });
  } catch (err) {
    if (!(err instanceof BaseUrlError)) throw err;
    const ws = err.rule === 'scheme' && /^\s*wss?:/i.test(input) ? ' (the WebSocket endpoint /acp is derived from it, not given)' : '';
    throw new AcpBaseUrlError(err.rule, err.message + ws);
  }
  // from here on the URL has no credentials and no query: the refusals below may show it
  let path = u.pathname.replace(/\/+$/, '');
  if (path.endsWith('/acp/rpc')) path = path.slice(0, -'/acp/rpc'.length);
  else if (path.endsWith('/acp')) path = path.slice(0, -'/acp'.length);
  path = path.replace(/\/+$/, '');
  u.pathname = `${path}/acp/rpc`;

  for (const segment of u.pathname.split('/')) {
    const why = REFUSED_SEGMENTS[decode(segment)];
    if (why) throw new AcpBaseUrlError('direct-path', `refusing ACP base ${u.href}: ${why}`);
  }

  if (!opts.allowLocal && isLocalHost(u.hostname)) {
    throw new AcpBaseUrlError(
      'local-address',
      `refusing ACP base ${u.href}: ${u.hostname} is a loopback/LAN address, which managed mode never calls; opt in to local use (--local) to reach a gateway on this machine or network`,
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
