import { createHash, timingSafeEqual } from 'node:crypto';

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

/** Masks a secret for display: never more than the first 3 characters. */
export function redact(secret: string | undefined): string {
  if (!secret) return '';
  return secret.length <= 6 ? '***' : `${secret.slice(0, 3)}***`;
}
