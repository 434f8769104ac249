import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';

/**
 * Constant-time membership test for bearer tokens. Both sides are hashed first so that length differences
 * do not leak through timing either, and every allowed token is compared (no early exit).
 */
export function tokenMatches(candidate: string | undefined, allowed: readonly string[]): boolean {
  if (candidate === undefined || candidate.length === 0 || allowed.length === 0) return false;
  const c = createHash('sha256').update(candidate).digest();
  let ok = false;
  for (const a of allowed) {
    if (a.length === 0) continue;
    const d = createHash('sha256').update(a).digest();
    if (timingSafeEqual(c, d)) ok = true;
  }
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
