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

/**
 * A tool's description: absent or null is undefined; otherwise a string (one of another type was left out, and the
 * model never saw what the tool is for).
 */
export function toolDescription(v: unknown, param: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') bad(param, `must be a string, not ${jsonKind(v)}`);
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

/** `type/subtype`, the only form a data: URL's media type may take here (no `;` or `,` to end it early) */
const MEDIA_TYPE = /^[A-Za-z0-9][\w.+-]*\/[\w.+-]+$/;
/** standard base64, padded or not; `urlSafe` also takes `-` and `_` (proto JSON bytes: Gemini) */
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const BASE64_URL_SAFE = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Base64 whose length no encoder makes: padded, the whole is a multiple of 4 characters; unpadded, the last group
 * holds 2 or 3 (a lone character, as in `"x"`, encodes no byte). Decoders refuse it or drop the stray character.
 */
function impossibleLength(data: string): boolean {
  const pad = data.endsWith('==') ? 2 : data.endsWith('=') ? 1 : 0;
  if (pad > 0) return data.length % 4 !== 0 || data.length === pad;
  return data.length % 4 === 1;
}

/**
 * An inline image's `data:` URL, built from the client's media type and base64 data (an Anthropic `base64`
 * source, a Gemini `inlineData`), each checked first: a media type such as `image/png;x` or data that is not
 * base64 (or base64 of a length no encoder makes, `"x"`) made a URL the channel then refused under the chat form's
 * field name (`messages[i].content[j]…`), or went upstream as is. `params` names the client's two fields.
 */
export function base64DataUrl(mediaType: unknown, data: unknown, params: { mediaType: string; data: string }, urlSafe = false): string {
  if (typeof mediaType !== 'string' || !MEDIA_TYPE.test(mediaType)) bad(params.mediaType, 'must be a media type such as "image/png"');
  if (typeof data !== 'string' || data === '' || !(urlSafe ? BASE64_URL_SAFE : BASE64).test(data) || impossibleLength(data))
    bad(params.data, 'must be non-empty base64 data');
  const standard = urlSafe ? data.replace(/-/g, '+').replace(/_/g, '/') : data;
  return `data:${mediaType};base64,${standard}`;
}
