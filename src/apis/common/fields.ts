/**
 * The field checks every translating edge (Anthropic, Responses, Gemini) makes alike, so a value the chat form
 * or an upstream cannot take is refused here, naming the client's own field, instead of going upstream: a number
 * that is not finite (JSON.parse reads `1e999` as Infinity, which serialises again as null), a token limit that
 * is not a positive integer, a tool without a name, a tool schema that is not an object, a request that holds
 * nothing to send. Each error is INVALID_REQUEST with `param` the field, as src/router/validate.ts does on /v1.
 */
import { GatewayError } from '../../wire/errors.js';
import { jsonKind, type ChatMessage } from '../../wire/openai.js';
import { isObj } from '../../util/is-object.js';
import { leftOut } from './untranslatable.js';

function bad(param: string, what: string): never {
  throw new GatewayError('INVALID_REQUEST', `${param}: ${what}`, { param });
}

/** A number field: absent or null is undefined; otherwise a finite number. */
export function finiteNumber(v: unknown, param: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v)) bad(param, `must be a finite number, not ${typeof v === 'number' ? String(v) : jsonKind(v)}`);
  return v;
}

/** A token limit: absent or null is undefined; otherwise an integer of at least 1. */
export function tokenLimit(v: unknown, param: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (!Number.isSafeInteger(v) || (v as number) < 1) bad(param, 'must be a positive integer');
  return v as number;
}

/** A tool's name: a non-empty string (an upstream refuses an empty one, and no call could name it). */
export function toolName(v: unknown, param: string): string {
  if (typeof v !== 'string' || v === '') bad(param, 'required, a non-empty string');
  return v;
}

/** A tool's JSON Schema: absent or null is undefined (the caller's default); otherwise an object. */
export function toolSchema(v: unknown, param: string): Record<string, unknown> | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObj(v)) bad(param, `must be a JSON Schema object, not ${jsonKind(v)}`);
  return v;
}

/**
 * The translated request holds a turn to answer (a message other than system), unless a lenient translation
 * left parts out for a native channel (src/apis/common/untranslatable.ts). `param` is the client's field.
 */
export function requireTurn(messages: readonly ChatMessage[], param: string): void {
  if (!leftOut() && !messages.some((m) => m.role !== 'system')) bad(param, 'holds no message with content to send');
}
