/**
 * Who may call /acp/rpc and /acp: the Origin allowlist (`acp.allowedOrigins`) and Bearer auth
 * (`acp.tokens`, constant-time, fail closed). Shared by the HTTP route and the WebSocket upgrade.
 */
import type { IncomingMessage } from 'node:http';
import { createHash } from 'node:crypto';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import { AcpRpcError, RPC } from './envelope.js';

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

/** undefined = no Origin header (non-browser clients are allowed) or an allowed one; else the 403 error. */
export function checkOrigin(req: IncomingMessage, allowed: readonly string[]): AcpRpcError | undefined {
  const origin = req.headers.origin;
  if (origin === undefined || origin === '') return undefined;
  if (originAllowed(origin, allowed)) return undefined;
  return new AcpRpcError(RPC.FORBIDDEN, 'ORIGIN_NOT_ALLOWED', `origin ${origin} is not allowed (acp.allowedOrigins)`, {}, 403);
}

/** undefined = authorised; else the 401 error. Empty `acp.tokens` refuses everything. */
export function checkAuth(req: IncomingMessage, tokens: readonly string[]): AcpRpcError | undefined {
  if (tokens.length === 0) {
    return new AcpRpcError(
      RPC.UNAUTHORIZED,
      'UNAUTHORIZED',
      '/acp/rpc is disabled until acp.tokens is configured: add at least one token to acp.tokens in the gateway config',
      {},
      401,
    );
  }
  const header = req.headers.authorization;
  if (tokenMatches(bearerToken(header), tokens)) return undefined;
  return new AcpRpcError(
    RPC.UNAUTHORIZED,
    'UNAUTHORIZED',
    header ? 'invalid bearer token' : 'missing bearer token: send Authorization: Bearer <token>',
    {},
    401,
  );
}

/**
 * Who an authorised request speaks for: the `acp.tokens` entry it used, as `token:` and the first 16 hex
 * digits of the token's SHA-256 (the same on every instance sharing the config; never the token itself).
 * Sessions record it (`metadata.caller`); `xworkmate.permissions.list` without a `sessionId` lists the
 * prompts of the caller's sessions only. Call it after `checkAuth` passed.
 */
export function callerOf(req: IncomingMessage): string | undefined {
  const t = bearerToken(req.headers.authorization);
  return t === undefined ? undefined : `token:${createHash('sha256').update(t).digest('hex').slice(0, 16)}`;
}
