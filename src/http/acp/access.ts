/**
 * Who may call /acp/rpc and /acp: the Origin allowlist (`acp.allowedOrigins`, with its CORS answers) and Bearer
 * auth (virtual keys with `acp`, then `acp.tokens`, constant-time, fail closed). Shared by the HTTP route, the
 * task-session REST routes and the WebSocket upgrade.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import { cutText, toGatewayError } from '../../wire/errors.js';
import { AcpRpcError, RPC, toRpcError } from './envelope.js';

/**
 * `allowed` entries: an exact origin (`https://app.example.com`), an origin with any port
 * (`http://localhost:*`), or `*` (any origin). Comparison is case-insensitive; a trailing slash is ignored.
 */
export function originAllowed(origin: string, allowed: readonly string[]): boolean {
  const o = origin.trim().toLowerCase().replace(/\/+$/, '');
  let u: URL;
  try {
    u = new URL(o);
  } catch {
    return false;
  }
  for (const raw of allowed) {
    const a = raw.trim().toLowerCase().replace(/\/+$/, '');
    if (a === '*') return true;
    if (a.endsWith(':*')) {
      const base = a.slice(0, -2);
      if (`${u.protocol}//${u.hostname}` === base || `${u.protocol}//[${u.hostname}]` === base) return true;
      if (u.host.startsWith('[') && `${u.protocol}//${u.host.replace(/:\d+$/, '')}` === base) return true;
      continue;
    }
    if (a === o || a === u.origin) return true;
  }
  return false;
}

const CORS_ALLOW_HEADERS = 'authorization, content-type, accept, x-request-id';

/** The CORS headers of an answer to an allowed browser origin (none without an Origin header). */
export function corsHeaders(req: IncomingMessage): Record<string, string> {
  const origin = req.headers.origin;
  if (!origin) return {};
  return { 'access-control-allow-origin': origin, vary: 'Origin', 'access-control-expose-headers': 'x-request-id' };
}

/** Answers a CORS preflight (204) for a route that takes `methods`; `headers` carry the request id and CORS. */
export function sendPreflight(res: ServerResponse, headers: Record<string, string>, methods: string): void {
  res.writeHead(204, {
    ...headers,
    'access-control-allow-methods': methods,
    'access-control-allow-headers': CORS_ALLOW_HEADERS,
    'access-control-max-age': '600',
    'content-length': '0',
  });
  res.end();
}

/** undefined = no Origin header (non-browser clients are allowed) or an allowed one; else the 403 error. */
export function checkOrigin(req: IncomingMessage, allowed: readonly string[]): AcpRpcError | undefined {
  const origin = req.headers.origin;
  if (origin === undefined || origin === '') return undefined;
  if (originAllowed(origin, allowed)) return undefined;
  // quoted as the /v1 guard quotes it (its first 100 characters): the header is the client's, up to its size limit
  return new AcpRpcError(RPC.FORBIDDEN, 'ORIGIN_NOT_ALLOWED', `origin ${cutText(origin, 100)} is not allowed (acp.allowedOrigins)`, {}, 403);
}

/**
 * The virtual keys, as `/acp/rpc` consults them (src/keys/service.ts `acpKey`): the key a secret names when it
 * may start agent tasks, undefined when the secret is no key; throws UNAUTHORIZED (disabled, expired) or
 * FORBIDDEN (a key created without `acp`).
 */
export interface AcpKeys {
  acpKey(secret: string): Promise<{ id: string } | undefined>;
  /**
   * For a socket opened with the key `keyId` by `secret`: a check, synchronous and without a store call (the loaded
   * keys), that answers why the key no longer opens `/acp` (disabled, expired, rotated away, gone), undefined while
   * it does.
   */
  acpKeyCheck(secret: string, keyId: string): () => string | undefined;
}

/** Who an authorised call speaks for (see `authorize`), or the error that refuses it. */
export type Access = { caller: string } | AcpRpcError;

/**
 * Bearer auth for /acp/rpc and /acp: a virtual key created with `acp: true` (caller `key:<id>`), else an
 * `acp.tokens` entry, compared in constant time (caller `token:` and the first 16 hex digits of the token's
 * SHA-256: the same on every instance sharing the config, never the token itself). Sessions record the caller
 * (`metadata.caller`); `xworkmate.permissions.list` without a `sessionId` lists the prompts of the caller's
 * sessions only, and a key's sessions' model traffic is billed to the key. No key and an empty `acp.tokens`
 * refuse everything (fail closed).
 */
export async function authorize(req: IncomingMessage, tokens: readonly string[], keys: AcpKeys | undefined): Promise<Access> {
  const header = req.headers.authorization;
  const secret = bearerToken(header);
  if (secret !== undefined && keys) {
    try {
      const key = await keys.acpKey(secret);
      if (key) return { caller: `key:${key.id}` };
    } catch (err) {
      const e = toGatewayError(err);
      if (e.code === 'FORBIDDEN') return new AcpRpcError(RPC.FORBIDDEN, 'FORBIDDEN', e.message, {}, 403);
      if (e.code === 'UNAUTHORIZED') return new AcpRpcError(RPC.UNAUTHORIZED, 'UNAUTHORIZED', e.message, {}, 401);
      // the key store cannot say whether the secret is a key: an `acp.tokens` entry still works, anything else is
      // refused as what it is (503, retryable, Retry-After), never as a wrong token
      if (e.code === 'KEY_STORE_UNAVAILABLE') {
        if (tokens.length > 0 && tokenMatches(secret, tokens)) return { caller: tokenCaller(secret) };
        return toRpcError(e);
      }
      throw err;
    }
  }
  if (tokens.length === 0) {
    return new AcpRpcError(
      RPC.UNAUTHORIZED,
      'UNAUTHORIZED',
      keys
        ? '/acp/rpc accepts only virtual keys created with acp: true until acp.tokens is configured: send such a key, or add a token to acp.tokens in the gateway config'
        : '/acp/rpc is disabled until acp.tokens is configured: add at least one token to acp.tokens in the gateway config',
      {},
      401,
    );
  }
  if (secret !== undefined && tokenMatches(secret, tokens)) return { caller: tokenCaller(secret) };
  return new AcpRpcError(
    RPC.UNAUTHORIZED,
    'UNAUTHORIZED',
    header ? 'invalid bearer token' : 'missing bearer token (send Authorization: Bearer <token>)',
    {},
    401,
  );
}

/** an `acp.tokens` caller: `token:` and the first 16 hex digits of the token's SHA-256 */
function tokenCaller(secret: string): string {
  return `token:${createHash('sha256').update(secret).digest('hex').slice(0, 16)}`;
}
