/**
 * Validation of chat and embeddings request bodies (a /v1 request, a bridge peer's forward): only what the
 * gateway needs to route and translate safely. Unknown
 * fields pass through to OpenAI-compatible upstreams untouched. Every error names the field (`param`).
 */
import { GatewayError } from '../wire/errors.js';
import type { ChatRequest, EmbeddingsRequest } from '../wire/openai.js';
import { isObj } from '../util/is-object.js';

const ROLES = new Set(['system', 'developer', 'user', 'assistant', 'tool', 'function']);

const TOOL_CHOICES = new Set(['none', 'auto', 'required']);

const NUMERIC = ['temperature', 'top_p', 'max_tokens', 'max_completion_tokens', 'n', 'presence_penalty', 'frequency_penalty', 'seed'] as const;

/** a message's field name, built only when it is reported */
const msg = (i: number): string => `messages[${i}]`;

function bad(param: string, what: string): never {
  throw new GatewayError('INVALID_REQUEST', `${param}: ${what}`, { param });
}

export function validateChat(body: unknown): ChatRequest {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  if (typeof body.model !== 'string' || body.model.length === 0) bad('model', 'required, a non-empty string');
  if (!Array.isArray(body.messages) || body.messages.length === 0) bad('messages', 'required, a non-empty array');
  const messages: unknown[] = body.messages;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (!isObj(m)) bad(msg(i), 'must be an object');
    if (typeof m.role !== 'string' || !ROLES.has(m.role)) bad(`${msg(i)}.role`, `must be one of ${[...ROLES].join(', ')}`);
    const c = m.content;
    if (c !== undefined && c !== null && typeof c !== 'string' && !Array.isArray(c))
      bad(`${msg(i)}.content`, 'must be a string, an array of content parts, or null');
    if (Array.isArray(c))
      c.forEach((part: unknown, j: number) => {
        if (!isObj(part) || typeof part.type !== 'string') bad(`${msg(i)}.content[${j}]`, 'must be an object with a string "type"');
      });
    if ((c === undefined || c === null) && m.role !== 'assistant') bad(`${msg(i)}.content`, 'required for this role');
    if (m.role === 'tool' && typeof m.tool_call_id !== 'string') bad(`${msg(i)}.tool_call_id`, 'required for role "tool"');
    if (m.tool_calls !== undefined) {
      if (!Array.isArray(m.tool_calls)) bad(`${msg(i)}.tool_calls`, 'must be an array');
      m.tool_calls.forEach((tc: unknown, j: number) => {
        const q = `${msg(i)}.tool_calls[${j}]`;
        if (!isObj(tc) || typeof tc.id !== 'string' || !isObj(tc.function) || typeof tc.function.name !== 'string') bad(q, 'needs id and function.name');
        if (typeof tc.function.arguments !== 'string') bad(`${q}.function.arguments`, 'must be a JSON string');
      });
    }
  }
  if (body.stream !== undefined && typeof body.stream !== 'boolean') bad('stream', 'must be a boolean');
  if (body.stream_options !== undefined && body.stream_options !== null && !isObj(body.stream_options)) bad('stream_options', 'must be an object');
  if (body.tools !== undefined) {
    if (!Array.isArray(body.tools)) bad('tools', 'must be an array');
    body.tools.forEach((t: unknown, i: number) => {
      if (!isObj(t) || t.type !== 'function' || !isObj(t.function) || typeof t.function.name !== 'string')
        bad(`tools[${i}]`, 'must be { type: "function", function: { name, … } }');
    });
  }
  const tc = body.tool_choice;
  if (tc === null)
    delete body.tool_choice; // as if absent, as OpenAI takes it
  else if (tc !== undefined) {
    if (typeof tc === 'string' ? !TOOL_CHOICES.has(tc) : !isObj(tc) || typeof tc.type !== 'string')
      bad('tool_choice', 'must be "none", "auto", "required" or { type: "function", function: { name } }');
    if (isObj(tc) && (tc.type === 'function' || tc.function !== undefined) && (!isObj(tc.function) || typeof tc.function.name !== 'string'))
      bad('tool_choice.function.name', 'required, a string');
  }
  // JSON.parse reads 1e999 as Infinity, which no upstream takes (serialised again, it is null)
  for (const k of NUMERIC) {
    if (body[k] !== undefined && body[k] !== null && (typeof body[k] !== 'number' || !Number.isFinite(body[k]))) bad(k, 'must be a finite number');
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1 && body.stream === true) bad('n', 'streaming supports only n = 1');
  return body as unknown as ChatRequest;
}

export function validateEmbeddings(body: unknown): EmbeddingsRequest {
  if (!isObj(body)) bad('body', 'must be a JSON object');
  if (typeof body.model !== 'string' || body.model.length === 0) bad('model', 'required, a non-empty string');
  const input = body.input;
  const ok =
    typeof input === 'string' ||
    (Array.isArray(input) &&
      input.length > 0 &&
      (input.every((x) => typeof x === 'string') || isTokens(input) || input.every((x) => Array.isArray(x) && x.length > 0 && isTokens(x))));
  if (!ok) bad('input', 'required: a string, a non-empty array of strings, or token arrays');
  // a channel that builds the answer itself (ollama, mock) would otherwise answer floats to a misspelt format,
  // and drop a dimensions it cannot read, where OpenAI refuses both
  const fmt = body.encoding_format;
  if (fmt !== undefined && fmt !== null && fmt !== 'float' && fmt !== 'base64') bad('encoding_format', 'must be "float" or "base64"');
  const dims = body.dimensions;
  if (dims !== undefined && dims !== null && (!Number.isSafeInteger(dims) || (dims as number) < 1)) bad('dimensions', 'must be a positive integer');
  return body as unknown as EmbeddingsRequest;
}

/** A token array: integers (token ids). */
const isTokens = (a: unknown[]): boolean => a.every((x) => Number.isInteger(x));
