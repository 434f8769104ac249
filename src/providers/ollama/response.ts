/**
 * Ollama replies → OpenAI shapes. Pure. Also holds the pieces the stream mapper shares: ids, finish reason,
 * usage, tool-call conversion. A reply that does not have the documented shape is UPSTREAM_BAD_RESPONSE.
 *
 * Tool calls: Ollama's `arguments` object becomes the OpenAI JSON string; a call without an `id` (older
 * servers never send one) gets `call_<n>`, n counting the calls of this reply from 0.
 * Thinking models: `message.thinking` is carried as `reasoning_content` (the vLLM / DeepSeek extension).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import {
  usageOfCounts,
  type ChatCompletion,
  type EmbeddingsRequest,
  type EmbeddingsResponse,
  type FinishReason,
  type ToolCall,
  type Usage,
} from '../../wire/openai.js';
import type { OllamaChatResponse, OllamaEmbedResponse, OllamaMetrics } from './wire.js';
import { replyError } from '../reported-error.js';
import { chatCompletionId } from '../../util/ids.js';

/** Ollama's RFC 3339 timestamp → unix seconds (now when absent or unreadable). */
export function createdOf(createdAt: unknown): number {
  const ms = typeof createdAt === 'string' ? Date.parse(createdAt) : NaN;
  return Math.floor((Number.isNaN(ms) ? Date.now() : ms) / 1000);
}

const bad = (label: string, what: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: ${what}`);

/**
 * The final line's `done_reason` → finish_reason. "length" (num_predict reached, or the context) stays `length`
 * even when the answer holds tool calls: it was cut short, so a call in it may be one the model had not finished
 * deciding on, and an agent must not take it for a complete turn (Ollama's own OpenAI layer and the Anthropic
 * translation say `length` there too). Otherwise tool calls are `tool_calls`, and "stop", no reason (older
 * servers) or one this build does not know is `stop`. "load" and "unload" are what Ollama answers a request
 * with no messages (a model loaded or unloaded, nothing generated): the gateway always sends messages, so such
 * an answer is no reply to its request, UPSTREAM_BAD_RESPONSE (retried on another candidate), never an empty
 * success.
 */
export function finishReasonOf(doneReason: unknown, hadToolCalls: boolean, label: string): FinishReason {
  if (doneReason === 'length') return 'length';
  if (doneReason === 'load' || doneReason === 'unload')
    throw bad(label, `upstream answered done_reason "${doneReason}" (a model ${doneReason}, nothing generated) to a chat request`);
  return hadToolCalls ? 'tool_calls' : 'stop';
}

/**
 * Ollama's counts in OpenAI's shape. A count Ollama leaves out (`prompt_eval_count` on a prompt-cache hit) is
 * left out here too: no count, charged an estimate (src/usage/record.ts), never a count of 0.
 */
export function usageOf(m: OllamaMetrics): Usage {
  return usageOfCounts(m.prompt_eval_count, m.eval_count);
}

/** Ollama tool calls → OpenAI ones; `firstIndex` numbers synthesised ids across a whole stream. */
export function toOpenAiToolCalls(calls: unknown, firstIndex: number, label: string): ToolCall[] {
  if (calls === undefined || calls === null) return [];
  if (!Array.isArray(calls)) throw bad(label, 'upstream tool_calls is not an array');
  return calls.map((c: unknown, i): ToolCall => {
    const call = c as { id?: unknown; function?: { name?: unknown; arguments?: unknown } } | null;
    const fn = call?.function;
    if (!fn || typeof fn.name !== 'string') throw bad(label, 'upstream tool call has no function name');
    const a = fn.arguments;
    let args: string;
    if (typeof a === 'string') args = a;
    else if (a === undefined || a === null) args = '{}';
    else if (typeof a === 'object' && !Array.isArray(a)) args = JSON.stringify(a);
    else throw bad(label, 'upstream tool call arguments are not an object');
    const id = typeof call.id === 'string' && call.id !== '' ? call.id : `call_${firstIndex + i}`;
    return { id, type: 'function', function: { name: fn.name, arguments: args } };
  });
}

export function fromOllamaChat(res: unknown, label: string, requestedModel: string, headers?: IncomingHttpHeaders): ChatCompletion {
  if (!res || typeof res !== 'object') throw bad(label, 'upstream reply is not a JSON object');
  const r = res as Partial<OllamaChatResponse>;
  const m = r.message;
  // a 2xx body that is an error object ({"error":"…"}) is the error it reports (../reported-error.ts)
  if (!m || typeof m !== 'object') throw replyError(r, label, headers) ?? bad(label, 'upstream reply has no message');
  if (m.content !== undefined && m.content !== null && typeof m.content !== 'string') throw bad(label, 'upstream message content is not a string');
  const toolCalls = toOpenAiToolCalls(m.tool_calls, 0, label);
  const text = m.content ?? '';
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length ? null : text,
  };
  if (toolCalls.length) message.tool_calls = toolCalls;
  if (typeof m.thinking === 'string' && m.thinking !== '') message.reasoning_content = m.thinking;
  return {
    id: chatCompletionId(),
    object: 'chat.completion',
    created: createdOf(r.created_at),
    model: typeof r.model === 'string' && r.model ? r.model : requestedModel,
    choices: [{ index: 0, message, finish_reason: finishReasonOf(r.done_reason, toolCalls.length > 0, label), logprobs: null }],
    usage: usageOf(r),
  };
}

/** Float32 little-endian, base64: what OpenAI returns for encoding_format "base64". */
function toBase64(vec: number[]): string {
  return Buffer.from(new Float32Array(vec).buffer).toString('base64');
}

export function fromOllamaEmbed(res: unknown, req: EmbeddingsRequest, label: string, headers?: IncomingHttpHeaders): EmbeddingsResponse {
  const r = res as Partial<OllamaEmbedResponse> | null;
  const vectors = r?.embeddings;
  if (!Array.isArray(vectors)) throw replyError(r, label, headers) ?? bad(label, 'embed reply has no embeddings');
  // a number JSON cannot hold (`1e999` parses to Infinity) would reach the client as null
  if (!vectors.every((v) => Array.isArray(v) && v.every((x) => typeof x === 'number' && Number.isFinite(x))))
    throw bad(label, 'embed reply has an embedding that is not a vector of finite numbers');
  const expected = Array.isArray(req.input) ? req.input.length : 1;
  if (vectors.length !== expected) throw bad(label, `embed reply has ${vectors.length} embeddings for ${expected} inputs`);
  const { prompt_tokens } = usageOf(r ?? {});
  return {
    object: 'list',
    data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: req.encoding_format === 'base64' ? toBase64(v) : v })),
    model: typeof r?.model === 'string' && r.model ? r.model : req.model,
    usage: prompt_tokens === undefined ? {} : { prompt_tokens, total_tokens: prompt_tokens },
  };
}
