/**
 * Ollama's native wire format (`/api/chat`, `/api/embed`, `/api/tags`), as documented in ollama/docs/api.md
 * and typed by ollama-js `src/interfaces.ts`. Only the fields the gateway reads or writes are spelled out;
 * the server tolerates unknown fields in requests and adds new ones to responses over time.
 *
 * Differences from the OpenAI form that the mapping has to bridge:
 * - tool call `arguments` are a JSON object, not a string; calls carry no id in older servers (newer ones
 *   send an optional `id` and accept `tool_call_id` back), so the gateway synthesises ids when absent;
 * - tool results name the tool (`tool_name`) rather than the call;
 * - images are bare base64 strings on the message, not content parts;
 * - sampling parameters live under `options`; `stream` defaults to TRUE when omitted;
 * - a stream is NDJSON (one object per line), ending with a `done: true` object carrying the counts;
 *   an error mid-stream is a line `{"error": "..."}`; an error status carries `{"error": "..."}` too.
 */

export interface OllamaToolCall {
  /** sent by newer servers only */
  id?: string;
  function: {
    /** position of the call within the message (newer servers) */
    index?: number;
    name: string;
    arguments: Record<string, unknown>;
  };
}

export interface OllamaMessage {
  role: 'system' | 'user' | 'assistant' | 'tool';
  content: string;
  /** reasoning text of thinking models */
  thinking?: string;
  /** bare base64, no data: prefix; on a message of any role (the server puts each into the prompt where its message is) */
  images?: string[];
  tool_calls?: OllamaToolCall[];
  /** on role "tool": the name of the tool whose result this is */
  tool_name?: string;
  /** on role "tool": the call answered (newer servers; ignored by older ones) */
  tool_call_id?: string;
}

/** Tools are declared in the OpenAI shape. */
export interface OllamaTool {
  type: 'function';
  function: { name: string; description?: string; parameters?: Record<string, unknown> };
}

/** Modelfile runtime parameters; only those the OpenAI request can express are mapped. */
export interface OllamaOptions {
  temperature?: number;
  top_p?: number;
  num_predict?: number;
  stop?: string[];
  seed?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
}

export interface OllamaChatRequest {
  model: string;
  messages: OllamaMessage[];
  tools?: OllamaTool[];
  /** always sent explicitly: the server streams when it is omitted */
  stream: boolean;
  /** "json", or a JSON schema for structured output */
  format?: 'json' | Record<string, unknown>;
  options?: OllamaOptions;
  /** how long the model stays loaded: seconds, or a duration such as "5m" */
  keep_alive?: string | number;
}

/** Counters on the final object (durations in nanoseconds). Fields are omitted when zero. */
export interface OllamaMetrics {
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
  prompt_eval_duration?: number;
  eval_count?: number;
  eval_duration?: number;
}

/** A non-stream reply, or one NDJSON line of a stream. */
export interface OllamaChatResponse extends OllamaMetrics {
  model: string;
  /** RFC 3339 with nanoseconds */
  created_at: string;
  message?: Partial<OllamaMessage>;
  done: boolean;
  /** "stop" | "length" | "load" | "unload" …; absent on older servers */
  done_reason?: string;
}

export interface OllamaErrorBody {
  error: string;
}

export interface OllamaEmbedRequest {
  model: string;
  input: string | string[];
  dimensions?: number;
  keep_alive?: string | number;
}

export interface OllamaEmbedResponse {
  model: string;
  embeddings: number[][];
  total_duration?: number;
  load_duration?: number;
  prompt_eval_count?: number;
}

export interface OllamaModelDetails {
  parent_model: string;
  format: string;
  family: string;
  families: string[] | null;
  parameter_size: string;
  quantization_level: string;
}

/** `GET /api/tags` */
export interface OllamaTagsResponse {
  models: Array<{ name: string; model: string; modified_at: string; size: number; digest: string; details: OllamaModelDetails }>;
}

/**
 * An error body of Ollama's 404 that says the model is not there (`UpstreamOptions.modelMissing`): the server
 * answers `/api/chat` and `/api/embed` for a model it has not pulled with `{"error":"model \"x\" not found, try
 * pulling it first"}` (older servers: `model 'x' not found`). Any other 404 (a wrong path: `404 page not found`,
 * as text) is not.
 */
export function ollamaModelMissing(body: unknown): boolean {
  const e = typeof body === 'object' && body !== null ? (body as { error?: unknown }).error : undefined;
  return typeof e === 'string' && /^model\b.*\bnot found\b/i.test(e);
}
