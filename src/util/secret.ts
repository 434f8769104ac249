import { hash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

const sha256 = (s: string): Buffer => hash('sha256', s, 'buffer');

/**
 * The digests of an allowed-token list, with the tokens they were made from: a config's lists live as long as the
 * config, so a request hashes only the candidate (not every allowed token again: two SHA-256 objects per request,
 * ~4 µs, before). `tokens` is checked against the list at each use, so a list changed in place is hashed again
 * rather than answered from stale digests (no list is changed in place today; this keeps a future one fail closed).
 */
const digestsOf = new WeakMap<readonly string[], { tokens: readonly string[]; digests: readonly Buffer[] }>();

function allowedDigests(allowed: readonly string[]): readonly Buffer[] {
  const held = digestsOf.get(allowed);
  if (held && held.tokens.length === allowed.length && held.tokens.every((t, i) => t === allowed[i])) return held.digests;
  const tokens = [...allowed];
  const digests = tokens.filter((a) => a.length > 0).map(sha256);
  digestsOf.set(allowed, { tokens, digests });
  return digests;
}

/**
 * Constant-time membership test for bearer tokens. Both sides are hashed first so that length differences
 * do not leak through timing either, and every allowed token is compared (no early exit).
 */
export function tokenMatches(candidate: string | undefined, allowed: readonly string[]): boolean {
  if (candidate === undefined || candidate.length === 0 || allowed.length === 0) return false;
  const c = sha256(candidate);
  let ok = false;
  for (const d of allowedDigests(allowed)) if (timingSafeEqual(c, d)) ok = true;
  return ok;
}

/** `Authorization: Bearer <t>` → t, else undefined */
export function bearerToken(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}

/**
 * The credential a client sent, in whichever header its API defines; first match wins:
 * `Authorization: Bearer <t>` (OpenAI, and Anthropic/Gemini clients behind proxies), `x-api-key` (Anthropic),
 * `x-goog-api-key` (Gemini), and `?key=` only where the caller allows it (Gemini's /v1beta: a token is never
 * read from an OpenAI or Anthropic URL, where it would end up in access logs unasked).
 */
export function clientCredential(h: IncomingHttpHeaders, query: string, allowQueryKey: boolean): string | undefined {
  const bearer = bearerToken(h.authorization);
  if (bearer) return bearer;
  const apiKey = h['x-api-key'];
  if (typeof apiKey === 'string' && apiKey) return apiKey;
  const goog = h['x-goog-api-key'];
  if (typeof goog === 'string' && goog) return goog;
  if (allowQueryKey && query) return new URLSearchParams(query).get('key') ?? undefined;
  return undefined;
}

/** Masks a secret for display: never more than the first 3 characters. */
export function redact(secret: string | undefined): string {
  if (!secret) return '';
  return secret.length <= 6 ? '***' : `${secret.slice(0, 3)}***`;
}
