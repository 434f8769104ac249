/**
 * The one client-auth helper for every inbound API: the token a client sent, in whichever header its API
 * defines, checked in constant time against `gateway.auth.tokens` (util/secret.ts).
 *
 * Accepted, first match wins: `Authorization: Bearer <t>` (OpenAI, and Anthropic/Gemini clients behind
 * proxies), `x-api-key` (Anthropic), `x-goog-api-key` (Gemini), `?key=` (Gemini; only on /v1beta paths, so a
 * token is never read from an OpenAI or Anthropic URL, where it would end up in access logs unasked).
 */
import type { IncomingMessage } from 'node:http';
import { bearerToken, tokenMatches } from '../../util/secret.js';

export function clientToken(req: IncomingMessage, query: string, allowQueryKey: boolean): string | undefined {
  const h = req.headers;
  const bearer = bearerToken(h.authorization);
  if (bearer) return bearer;
  if (typeof h['x-api-key'] === 'string' && h['x-api-key']) return h['x-api-key'];
  if (typeof h['x-goog-api-key'] === 'string' && h['x-goog-api-key']) return h['x-goog-api-key'];
  if (allowQueryKey && query) return new URLSearchParams(query).get('key') ?? undefined;
  return undefined;
}

/** true when the gateway is open (no tokens) or the client sent one of them. */
export function clientAllowed(req: IncomingMessage, query: string, allowQueryKey: boolean, tokens: readonly string[]): boolean {
  return tokens.length === 0 || tokenMatches(clientToken(req, query, allowQueryKey), tokens);
}
