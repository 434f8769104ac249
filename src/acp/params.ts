/**
 * Parameter checks shared by the ACP method table and target resolution. Errors are GatewayErrors
 * (INVALID_PARAMS with `param` naming the field); each transport maps them to its own envelope.
 */
import { cutText, GatewayError } from '../wire/errors.js';

export const MAX_ID_CHARS = 256;

/**
 * A method name the client (or a bridge peer) sent, as errors and log lines quote it: its first MAX_ID_CHARS
 * characters, `…` marking a cut. JSON-RPC sets no bound on it, and the body may hold megabytes of it.
 */
export const quotedMethod = (method: string): string => cutText(method, MAX_ID_CHARS);

/** With the u flag a surrogate pair is one code point: only an unpaired half is Cs. */
const LONE_SURROGATE = /\p{Cs}/u;

/** INVALID_PARAMS naming the offending field (JSON-RPC: -32602, `data.field`). */
export function invalidParams(field: string, message: string): GatewayError {
  return new GatewayError('INVALID_PARAMS', message, { param: field });
}

/**
 * An optional string param; blank counts as absent. `name`: how errors name it when it is not a top-level param
 * (`routing.explicitModel` for `explicitModel` of `routing`).
 */
export function optString(p: Record<string, unknown>, field: string, max = MAX_ID_CHARS, name = field): string | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidParams(name, `${name} must be a string`);
  if (v.length > max) throw invalidParams(name, `${name} is longer than ${max} characters`);
  // a lone UTF-16 surrogate cannot be stored as UTF-8: the session would be stored under another id
  if (LONE_SURROGATE.test(v)) throw invalidParams(name, `${name} is not well-formed Unicode (a lone surrogate)`);
  return v.trim() === '' ? undefined : v;
}

/**
 * An id the client picks from those the gateway offered it (a routing provider id, a permission prompt's
 * `requestId` or `optionId`): checked as optString, then trimmed, so that a pick sent with surrounding whitespace
 * names the same entry. Names the client gives (`sessionId`, `threadId`) are kept exactly as sent.
 */
export function optPickedId(p: Record<string, unknown>, field: string, name = field): string | undefined {
  return optString(p, field, MAX_ID_CHARS, name)?.trim();
}

export function reqString(p: Record<string, unknown>, field: string, max = MAX_ID_CHARS): string {
  const v = optString(p, field, max);
  if (v === undefined) throw invalidParams(field, `${field} is required (a non-empty string)`);
  return v;
}

/** `clientRequestId`: as the upstream's REST ids */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The required `clientRequestId` of a REST message (and of a `session.message` a peer forwards with one). */
export function clientRequestIdOf(p: Record<string, unknown>): string {
  const id = reqString(p, 'clientRequestId', 128);
  if (!CLIENT_REQUEST_ID.test(id)) {
    throw invalidParams('clientRequestId', 'clientRequestId must be 1–128 characters of A–Z a–z 0–9 . _ : - (starting with a letter or digit)');
  }
  return id;
}
