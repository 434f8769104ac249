/**
 * The OpenAI chat-completions wire form. It is the gateway's internal form: every provider maps to and from
 * it, the bridge carries it, and /v1/* speaks it. Unknown fields are allowed everywhere (index signatures) so
 * that pass-through upstreams receive what the client sent, untouched.
 */
import { GatewayError, cutText } from './errors.js';

export type Role = 'system' | 'developer' | 'user' | 'assistant' | 'tool' | 'function';

export interface TextPart {
  type: 'text';
  text: string;
}
export interface ImagePart {
  type: 'image_url';
  image_url: { url: string; detail?: string };
}
export type ContentPart = TextPart | ImagePart | { type: string; [k: string]: unknown };

/**
 * The reads of a content part for a channel that translates it (Anthropic, Ollama): one rule, so every such
 * channel says the same about a malformed part. `at` is the part's path (`messages[i].content[j]`); that the
 * part is an object with a string `type` was checked with the request (src/router/validate.ts). The fields are
 * typed as OpenAI's API reference types them, and what the API refuses is refused alike (INVALID_REQUEST naming
 * the field, in the API's words): `"image_url": "data:…"` (a bare string, not `{"url": …}`) is "expected an
 * object, but got a string instead" on `…image_url`, as OpenAI answers it.
 */
export function imagePartUrl(part: ContentPart, at: string): string {
  const iu = (part as { image_url?: unknown }).image_url;
  if (typeof iu !== 'object' || iu === null || Array.isArray(iu)) wrongType(`${at}.image_url`, 'an object {"url": …}', iu);
  const url = (iu as { url?: unknown }).url;
  if (typeof url !== 'string') wrongType(`${at}.image_url.url`, 'a string', url);
  return url;
}

/** A `text` part's text (see imagePartUrl). */
export function textPartText(part: ContentPart, at: string): string {
  const text = (part as { text?: unknown }).text;
  if (typeof text !== 'string') wrongType(`${at}.text`, 'a string', text);
  return text;
}

function wrongType(param: string, expected: string, got: unknown): never {
  const what =
    got === undefined
      ? `Missing required parameter: '${param}' (${expected}).`
      : `Invalid type for '${param}': expected ${expected}, but got ${jsonKind(got)} instead.`;
  throw new GatewayError('INVALID_REQUEST', what, { param });
}

/**
 * A client's name or id quoted in an error message (a model, a response id): cut to 256 characters, so a request
 * that sends a 60 000-character model name is not answered with it whole (the message also goes to the logs).
 */
export const quotedName = (s: string): string => cutText(s, 256);

/** What a parsed JSON value is, for an error message: "a string", "an object", "an array", "null". */
export function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  return typeof v === 'object' ? 'an object' : `a ${typeof v}`;
}

export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface ChatMessage {
  role: Role;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  [k: string]: unknown;
}

export interface ToolDefinition {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown>; strict?: boolean };
}

export type ToolChoice = 'none' | 'auto' | 'required' | NamedToolChoice | OtherToolChoice;
/** one named function must be called */
export interface NamedToolChoice {
  type: 'function';
  function: { name: string };
}
/**
 * A form newer than this gateway's translators (OpenAI's `allowed_tools`, `custom`…): passed as is to an
 * OpenAI-compatible upstream, refused (UNSUPPORTED) by a channel that must translate it.
 */
export interface OtherToolChoice {
  type: string;
  function?: undefined;
  [k: string]: unknown;
}

/**
 * For a channel that must translate `tool_choice` (Anthropic, Ollama): the forms this gateway knows, or
 * UNSUPPORTED naming a newer one (OtherToolChoice).
 */
export function translatableToolChoice(c: ToolChoice | undefined): Exclude<ToolChoice, OtherToolChoice> | undefined {
  if (typeof c === 'object' && !c.function)
    throw new GatewayError('UNSUPPORTED', `tool_choice type "${c.type}" is not supported by this channel`, { param: 'tool_choice' });
  return c;
}

/** The tool a `tool_choice` names, if it names one. */
export function namedTool(c: ToolChoice | undefined): string | undefined {
  return typeof c === 'object' && c.function ? c.function.name : undefined;
}

export interface ChatRequest {
  model: string;
  messages: ChatMessage[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean; [k: string]: unknown } | null;
  tools?: ToolDefinition[];
  tool_choice?: ToolChoice;
  temperature?: number;
  top_p?: number;
  max_tokens?: number;
  max_completion_tokens?: number;
  stop?: string | string[];
  user?: string;
  [k: string]: unknown;
}

/**
 * An upstream's token counts. Each count is optional: an upstream may leave a side uncounted (`usage: {}`, a
 * null count, Ollama without `prompt_eval_count`), and a translated usage leaves out what its upstream did not
 * count (usageOfCounts) rather than send 0, so a missing count stays "no count" (src/usage/record.ts countOf).
 */
export interface Usage {
  prompt_tokens?: number;
  completion_tokens?: number;
  /** the sum, present when both sides are */
  total_tokens?: number;
  prompt_tokens_details?: { cached_tokens?: number; [k: string]: unknown };
  /** Anthropic cache accounting, carried through when the upstream reports it */
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
  [k: string]: unknown;
}

/** A token count as an upstream may give it: a finite number, not negative. Anything else is no count. */
export const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;

/**
 * A translated upstream's two counts in OpenAI's shape: a side without a count is left out (never 0), and
 * `total_tokens` is set only when both are counted. The one rule every translator (Anthropic, Ollama, native
 * Responses) builds its usage by.
 */
export function usageOfCounts(prompt: unknown, completion: unknown): Usage {
  const u: Usage = {};
  if (isCount(prompt)) u.prompt_tokens = prompt;
  if (isCount(completion)) u.completion_tokens = completion;
  if (u.prompt_tokens !== undefined && u.completion_tokens !== undefined) u.total_tokens = u.prompt_tokens + u.completion_tokens;
  return u;
}

/**
 * The counts a usage gives a client of another format (Anthropic, Responses, Gemini): each side's count, undefined
 * for a side that is not a count; undefined when neither side is one (no usage, `{}`, null counts). A count is
 * what isCount says, 0 included: a reported 0 is the upstream's count, shown as it is charged (src/usage/record.ts
 * countOf), never replaced by an estimate. The edge shows its estimate for what is undefined. The one rule those
 * three formats' usage follows.
 */
export function shownCounts(u: Usage | null | undefined): { input: number | undefined; output: number | undefined } | undefined {
  if (!u) return undefined;
  const input = isCount(u.prompt_tokens) ? u.prompt_tokens : undefined;
  const output = isCount(u.completion_tokens) ? u.completion_tokens : undefined;
  return input === undefined && output === undefined ? undefined : { input, output };
}

export type FinishReason = 'stop' | 'length' | 'tool_calls' | 'content_filter' | 'function_call' | null;

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[]; refusal?: string | null; [k: string]: unknown };
    finish_reason: FinishReason;
    logprobs?: unknown;
  }>;
  usage?: Usage;
  system_fingerprint?: string | null;
  [k: string]: unknown;
}

export interface ChunkToolCall {
  index: number;
  id?: string;
  type?: 'function';
  function?: { name?: string; arguments?: string };
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{
    index: number;
    delta: { role?: 'assistant'; content?: string | null; tool_calls?: ChunkToolCall[]; [k: string]: unknown };
    finish_reason: FinishReason;
    logprobs?: unknown;
  }>;
  usage?: Usage | null;
  [k: string]: unknown;
}

export interface EmbeddingsRequest {
  model: string;
  input: string | string[] | number[] | number[][];
  encoding_format?: 'float' | 'base64';
  dimensions?: number;
  user?: string;
  [k: string]: unknown;
}

export interface EmbeddingsResponse {
  object: 'list';
  data: Array<{ object: 'embedding'; index: number; embedding: number[] | string }>;
  model: string;
  /** `{}` when the upstream did not count (an Ollama answer without `prompt_eval_count`) */
  usage: { prompt_tokens?: number; total_tokens?: number };
}

export interface ModelEntry {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
  /** Switchyard extension: where the model is served from */
  channels: Array<{ channel: string; provider: string; peer?: string; mock?: boolean }>;
}
