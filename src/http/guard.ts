/**
 * The request guard: what every HTTP request passes before any route sees it, so that a web page in the
 * operator's browser cannot drive the gateway (docs/operations.md, "Security model"):
 *
 * 1. Host (every path but /healthz and /readyz): the name must be one this gateway serves, else
 *    HOST_NOT_ALLOWED (403). Served names: IP literals, `localhost`, the configured `gateway.host`, and
 *    `gateway.allowedHosts` (exact names, `.example.com` for a domain and its subdomains, `*` for any).
 *    DNS rebinding needs a name the attacker controls, so names are checked and ports are not (ports
 *    change behind port maps and proxies). No Host header (HTTP/1.0) is not a browser: allowed.
 * 2. Origin (every path but /acp*, /api/v1/sessions/*, /healthz, /readyz: /v1/*, /admin/* and any route added later): a request
 *    with an Origin header comes from a browser page; it is refused (ORIGIN_NOT_ALLOWED, 403) unless the
 *    origin is in `gateway.allowedOrigins` (same matching as `acp.allowedOrigins`: exact, `http://host:*`,
 *    or `*`). Allowed origins get CORS headers and preflights (allowing the request headers the preflight
 *    names: `allowHeaders`). /acp* keeps its own Origin check
 *    (`acp.allowedOrigins`) in its route, and always requires a token.
 * 3. Content type (the same paths): a body read by a route must have been sent as `application/json` (or
 *    `application/*+json`), else UNSUPPORTED_MEDIA_TYPE (415): a page can send text/plain without a CORS
 *    preflight, never application/json. The guard decides (`requireJson`); `readBody` enforces it when a
 *    route reads the body, so a path no route serves is still a plain 404.
 * CLI, SDKs and peers send no Origin and a proper Host, so none of this touches them.
 */
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { GatewayError } from '../wire/errors.js';
import { decimalInt } from '../util/decimal.js';
import { originAllowed } from './acp/access.js';

export interface GuardOptions {
  /** the bind host (`gateway.host`) */
  host: string;
  allowedHosts: readonly string[];
  allowedOrigins: readonly string[];
}

const JSON_TYPE = /^application\/(?:[\w.+-]*\+)?json\s*(?:;|$)/i;
/** allowed when a preflight names no headers, or names them in a form that is not a header-name list */
const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, x-request-id, x-session-id';
/** `Access-Control-Request-Headers`: a comma-separated list of header names (RFC 9110 tokens), bounded */
const HEADER_LIST = /^[!#$%&'*+.^_`|~\w-]+(?:[ \t]*,[ \t]*[!#$%&'*+.^_`|~\w-]+)*$/;
const MAX_HEADER_LIST = 2048;

/** The verdict for a request that may go on: CORS headers to add, whether it was a preflight, whether its body must be JSON. */
export interface GuardPass {
  cors: Record<string, string> | undefined;
  preflight: boolean;
  requireJson: boolean;
}

const OPEN: GuardPass = { cors: undefined, preflight: false, requireJson: false };
const JSON_ONLY: GuardPass = { cors: undefined, preflight: false, requireJson: true };

export class RequestGuard {
  private readonly names: Set<string>;
  private readonly suffixes: string[];
  private readonly anyHost: boolean;

  constructor(private readonly o: GuardOptions) {
    const all = [...o.allowedHosts.map((h) => h.trim().toLowerCase()), o.host.toLowerCase(), 'localhost'];
    this.anyHost = all.includes('*');
    this.names = new Set(all.filter((h) => !h.startsWith('.')).map(stripBrackets));
    this.suffixes = all.filter((h) => h.startsWith('.'));
  }

  /** Throws the refusal; returns what the server adds for an allowed browser origin. */
  check(req: IncomingMessage, path: string): GuardPass {
    if (path === '/healthz' || path === '/readyz') return OPEN;
    const host = req.headers.host;
    if (host !== undefined && !this.hostAllowed(host)) {
      throw new GatewayError('HOST_NOT_ALLOWED', `host "${host.slice(0, 100)}" is not served by this gateway; add it to gateway.allowedHosts if it is yours`);
    }
    // its own Origin allowlist (acp.allowedOrigins), and never without a token: /acp*, and the task-session REST
    // routes beside it (src/http/acp/sessions-route.ts, which requires JSON bodies itself)
    if (path.startsWith('/acp') || path.startsWith('/api/v1/sessions/')) return OPEN;
    let cors: Record<string, string> | undefined;
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== '') {
      if (!originAllowed(origin, this.o.allowedOrigins)) {
        throw new GatewayError(
          'ORIGIN_NOT_ALLOWED',
          `origin ${origin.slice(0, 100)} is not allowed (gateway.allowedOrigins): browser pages may not call this gateway`,
        );
      }
      cors = { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'x-request-id' };
      if (req.method === 'OPTIONS') {
        return {
          cors: {
            ...cors,
            vary: 'Origin, Access-Control-Request-Headers',
            'access-control-allow-methods': 'GET, POST, DELETE, OPTIONS',
            'access-control-allow-headers': allowHeaders(req.headers['access-control-request-headers']),
            'access-control-max-age': '600',
          },
          preflight: true,
          requireJson: true,
        };
      }
    }
    return cors ? { cors, preflight: false, requireJson: true } : JSON_ONLY;
  }

  private hostAllowed(header: string): boolean {
    if (this.anyHost) return true;
    const name = hostName(header.trim().toLowerCase());
    if (isIP(name) !== 0) return true;
    if (this.names.has(name)) return true;
    return this.suffixes.some((s) => name.endsWith(s) || name === s.slice(1));
  }
}

/**
 * The headers a preflight from an allowed origin may send: the ones it asks for. The origin is trusted
 * already, and each API's browser clients send their own set (x-api-key, anthropic-version,
 * anthropic-dangerous-direct-browser-access, x-goog-api-key, x-goog-api-client, the SDKs' x-stainless-*,
 * which change between SDK versions), so a fixed list would block a client at its next release; a refused
 * origin never gets this far. Echoed only when it is a list of header names (it becomes a response header).
 */
function allowHeaders(asked: string | undefined): string {
  const list = asked?.trim();
  return list && list.length <= MAX_HEADER_LIST && HEADER_LIST.test(list) ? list : CORS_ALLOW_HEADERS;
}

/**
 * undefined when the request's body is JSON as sent; else the 415 (called by `readBody` when the guard required
 * JSON). A body with a `content-encoding` (gzip, br, …) is refused by name: it was read as it came, so a
 * compressed body was "not valid JSON" with its binary quoted back.
 */
export function jsonContentTypeError(req: IncomingMessage): GatewayError | undefined {
  const encoding = req.headers['content-encoding'];
  if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity')
    return new GatewayError('UNSUPPORTED_MEDIA_TYPE', `content-encoding "${encoding.slice(0, 100)}" is not accepted: send the body uncompressed`, {
      param: 'content-encoding',
    });
  const type = req.headers['content-type'];
  if (type !== undefined && JSON_TYPE.test(type)) return undefined;
  return new GatewayError(
    'UNSUPPORTED_MEDIA_TYPE',
    `content-type ${type === undefined ? '(none)' : `"${type.slice(0, 100)}"`} is not accepted: send the body as application/json`,
    { param: 'content-type' },
  );
}

/** `name:port`, `[v6]:port`, `[v6]` → the name without brackets or port. */
function hostName(h: string): string {
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end === -1 ? h : h.slice(1, end);
  }
  const colon = h.lastIndexOf(':');
  return colon === -1 ? h : h.slice(0, colon);
}

const stripBrackets = (h: string) => (h.startsWith('[') && h.endsWith(']') ? h.slice(1, -1) : h);

/** A path segment, percent-decoded; bad percent-encoding is the client's mistake (400 naming `param`), not a 500. */
export function decodeSegment(raw: string, param: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw new GatewayError('INVALID_REQUEST', `${param}: the path is not valid percent-encoding`, { param });
  }
}

/** A query parameter that must be an integer in [min, max]; `def` when absent. */
export function intParam(query: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null || raw === '') return def;
  const n = decimalInt(raw);
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new GatewayError('INVALID_REQUEST', `${name}: an integer from ${min} to ${max}`, { param: name });
  }
  return n;
}
