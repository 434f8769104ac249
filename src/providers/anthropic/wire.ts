/**
 * Anthropic Messages API wire types (POST /v1/messages, `anthropic-version: 2023-06-01`). Only what the
 * gateway sends or reads is modelled; response types keep an index signature because Anthropic adds fields
 * (and, per its versioning policy, new block and event types) without a version bump. Request types are
 * closed: the API rejects unknown fields with a 400.
 */

// ---- content blocks -------------------------------------------------------------------------------------

export interface TextBlock {
  type: 'text';
  text: string;
  citations?: unknown[] | null;
}

/** `base64` (data URL split into media type + payload) or `url` (fetched by Anthropic). */
export type ImageSource = { type: 'base64'; media_type: string; data: string } | { type: 'url'; url: string };

export interface ImageBlock {
  type: 'image';
  source: ImageSource;
}

/** A call the model makes. `input` is a JSON object, never a string (OpenAI's `arguments` is the string). */
export interface ToolUseBlock {
  type: 'tool_use';
  id: string;
  name: string;
  input: Record<string, unknown>;
}

/** The caller's answer to a tool_use; sent in a user turn, before any other block of that turn. */
export interface ToolResultBlock {
  type: 'tool_result';
  tool_use_id: string;
  content?: string | Array<TextBlock | ImageBlock>;
  is_error?: boolean;
}

/** Extended thinking output; `signature` must be sent back unchanged on later turns. */
export interface ThinkingBlock {
  type: 'thinking';
  thinking: string;
  signature?: string;
}

export interface RedactedThinkingBlock {
  type: 'redacted_thinking';
  data: string;
}

/** Blocks the gateway sends in `messages[].content`. */
export type RequestBlock = TextBlock | ImageBlock | ToolUseBlock | ToolResultBlock;

/** Blocks a response may carry; unknown (server-tool, citation…) types are possible and ignored. */
export type ResponseBlock = TextBlock | ToolUseBlock | ThinkingBlock | RedactedThinkingBlock | { type: string; [k: string]: unknown };

// ---- request --------------------------------------------------------------------------------------------

/** Roles strictly alternate user / assistant: consecutive same-role turns must be merged by the sender. */
export interface MessageParam {
  role: 'user' | 'assistant';
  content: string | RequestBlock[];
}

export interface ToolParam {
  name: string;
  description?: string;
  /** JSON Schema; its top level must be `type: "object"` */
  input_schema: Record<string, unknown>;
}

/** OpenAI auto/none/required/named ↔ auto/none/any/tool. */
export type ToolChoiceParam =
  { type: 'auto' | 'any'; disable_parallel_tool_use?: boolean } | { type: 'tool'; name: string; disable_parallel_tool_use?: boolean } | { type: 'none' };

export interface MessagesRequest {
  model: string;
  messages: MessageParam[];
  /** required by the API */
  max_tokens: number;
  system?: string;
  temperature?: number;
  top_p?: number;
  stop_sequences?: string[];
  tools?: ToolParam[];
  tool_choice?: ToolChoiceParam;
  metadata?: { user_id?: string };
  stream?: boolean;
}

// ---- response -------------------------------------------------------------------------------------------

export type StopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'pause_turn' | 'refusal' | 'model_context_window_exceeded';

/**
 * Token accounting. Total input = input_tokens + cache_creation_input_tokens + cache_read_input_tokens
 * (`input_tokens` counts only the uncached part). In `message_delta` the counts are cumulative, and
 * fields may be null or absent (older API versions only send `output_tokens` there).
 */
export interface AnthropicUsage {
  input_tokens?: number | null;
  output_tokens?: number | null;
  cache_creation_input_tokens?: number | null;
  cache_read_input_tokens?: number | null;
  [k: string]: unknown;
}

export interface MessagesResponse {
  id: string;
  type: 'message';
  role: 'assistant';
  model: string;
  content: ResponseBlock[];
  stop_reason: StopReason | null;
  stop_sequence: string | null;
  usage: AnthropicUsage;
  [k: string]: unknown;
}

/** Error body of a non-2xx answer, and the data of an `error` stream event. */
export interface ErrorResponse {
  type: 'error';
  error: { type: string; message: string };
  request_id?: string;
}

/**
 * An error body of Anthropic's 404 that says the model is not there (`UpstreamOptions.modelMissing`):
 * `{"type":"error","error":{"type":"not_found_error","message":"model: claude-x"}}`. A `not_found_error` whose
 * message does not name the model (`Not found`: a wrong path, or a key the API answers that way) is not.
 */
export function anthropicModelMissing(body: unknown): boolean {
  const e = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  if (typeof e !== 'object' || e === null) return false;
  const { type, message } = e as { type?: unknown; message?: unknown };
  return type === 'not_found_error' && typeof message === 'string' && /^\s*model:/.test(message);
}

/**
 * Anthropic's error types and the HTTP status its API answers each with (docs.anthropic.com, "Errors"): read one
 * way for an upstream's error that came without a status of its own (an in-band stream `error` event, a 2xx body
 * that is an error: `reportedError` in providers/reported-error.ts), so it is the error that status is as an HTTP
 * answer; the other for the errors the gateway's own Messages API writes (apis/anthropic/errors.ts). `api_error` is
 * the 500 it is as an HTTP answer, in a stream too (an upstream's own failure, not a broken stream).
 */
export const ERROR_STATUS: Readonly<Record<string, number>> = {
  invalid_request_error: 400,
  authentication_error: 401,
  billing_error: 402,
  permission_error: 403,
  not_found_error: 404,
  request_too_large: 413,
  rate_limit_error: 429,
  api_error: 500,
  timeout_error: 504,
  overloaded_error: 529,
};

// ---- stream events (SSE: `event: <type>` + `data: {"type": "<type>", ...}`) -----------------------------

export type ContentDelta =
  | { type: 'text_delta'; text: string }
  | { type: 'input_json_delta'; partial_json: string }
  | { type: 'thinking_delta'; thinking: string }
  | { type: 'signature_delta'; signature: string }
  | { type: 'citations_delta'; citation: unknown };

/**
 * Order: message_start, then per content block content_block_start / content_block_delta* /
 * content_block_stop (`index` = position in the final `content`), then message_delta (one or more), then
 * message_stop. `ping` may appear anywhere; `error` may replace the rest of the stream.
 */
export type StreamEvent =
  | { type: 'message_start'; message: MessagesResponse }
  | { type: 'content_block_start'; index: number; content_block: ResponseBlock }
  | { type: 'content_block_delta'; index: number; delta: ContentDelta }
  | { type: 'content_block_stop'; index: number }
  | { type: 'message_delta'; delta: { stop_reason: StopReason | null; stop_sequence: string | null }; usage?: AnthropicUsage }
  | { type: 'message_stop' }
  | { type: 'ping' }
  | ErrorResponse;

export const ANTHROPIC_VERSION = '2023-06-01';
