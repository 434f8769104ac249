/**
 * Anthropic Messages response → OpenAI ChatCompletion, plus the stop-reason and usage mappings the stream
 * translator shares. Pure.
 *
 * Usage: OpenAI's prompt_tokens is the whole input, so it is input_tokens + cache_creation_input_tokens +
 * cache_read_input_tokens (Anthropic's input_tokens excludes cached parts); the cache counts are carried
 * as-is and cache reads also show as prompt_tokens_details.cached_tokens.
 *
 * `id` and `model` (`answerIdentity`): the upstream's, else made here, as OpenAI's schema requires both.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { isCount, usageOfCounts, type ChatCompletion, type FinishReason, type ToolCall, type Usage } from '../../wire/openai.js';
import type { AnthropicUsage, MessagesResponse, StopReason } from './wire.js';
import { isObj } from '../../util/is-object.js';
import { replyError } from '../reported-error.js';
import { chatCompletionId } from '../../util/ids.js';

const FINISH: Record<StopReason, FinishReason> = {
  end_turn: 'stop',
  stop_sequence: 'stop',
  // the server paused a long-running server-tool turn; to an OpenAI client the answer ended normally
  pause_turn: 'stop',
  max_tokens: 'length',
  model_context_window_exceeded: 'length',
  tool_use: 'tool_calls',
  refusal: 'content_filter',
};

export function toFinishReason(r: string | null | undefined): FinishReason {
  if (r == null) return null;
  return FINISH[r as StopReason] ?? 'stop';
}

const n = (v: number | null | undefined): number => (typeof v === 'number' && Number.isFinite(v) ? v : 0);

/**
 * A side Anthropic did not count (no `input_tokens`, no `output_tokens`: a usage left out or null) is left out
 * (usageOfCounts): no count, charged an estimate (src/usage/record.ts), never a count of 0.
 */
export function toOpenAiUsage(u: AnthropicUsage): Usage {
  const cacheWrite = n(u.cache_creation_input_tokens);
  const cacheRead = n(u.cache_read_input_tokens);
  const out = usageOfCounts(isCount(u.input_tokens) ? u.input_tokens + cacheWrite + cacheRead : undefined, u.output_tokens);
  if (out.prompt_tokens !== undefined || cacheWrite || cacheRead) {
    out.prompt_tokens_details = { cached_tokens: cacheRead };
    out.cache_creation_input_tokens = cacheWrite;
    out.cache_read_input_tokens = cacheRead;
  }
  return out;
}

/**
 * Later usage overrides earlier, field by field, where it is a number: message_delta counts are cumulative
 * and may omit (or null) what message_start already reported.
 */
export function mergeUsage(base: AnthropicUsage, later: AnthropicUsage | undefined): AnthropicUsage {
  const out: AnthropicUsage = { ...base };
  if (!later) return out;
  for (const k of ['input_tokens', 'output_tokens', 'cache_creation_input_tokens', 'cache_read_input_tokens'] as const) {
    const v = later[k];
    if (typeof v === 'number') out[k] = v;
  }
  return out;
}

/**
 * The `id` and `model` of an answer (or a stream's chunks) in OpenAI's shape, whose schema requires both: the
 * message's own when they are non-empty strings, else an id made here (`chatcmpl-…`) and `requested`, the model
 * the request named for the channel (its `modelMap` name: the one the upstream was asked for, which it would
 * echo). The Messages API always sends both; an Anthropic-compatible server may leave either out.
 */
export function answerIdentity(msg: { id?: unknown; model?: unknown }, requested: string): { id: string; model: string } {
  return {
    id: typeof msg.id === 'string' && msg.id !== '' ? msg.id : chatCompletionId(),
    model: typeof msg.model === 'string' && msg.model !== '' ? msg.model : requested,
  };
}

/**
 * The answer in OpenAI's shape; `created` is the time of the translation (the Messages API gives none), set here
 * so that no caller can leave it out. `model`: the model the request named for the channel (`answerIdentity`).
 * `headers`: the answer's (a 2xx error body's Retry-After).
 */
export function toChatCompletion(msg: MessagesResponse, label: string, model: string, headers?: IncomingHttpHeaders): ChatCompletion {
  if (!msg || typeof msg !== 'object' || !Array.isArray(msg.content)) {
    // a 2xx body that is an error object ({"type":"error","error":{…}}) is the error it reports (../reported-error.ts)
    throw replyError(msg, label, headers) ?? new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream reply has no content array`);
  }
  let text = '';
  let reasoning = '';
  const toolCalls: ToolCall[] = [];
  const malformed = (what: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream reply has ${what}`);
  for (const b of msg.content as unknown[]) {
    // each block is read by its declared type: one that is not what its type says is a bad answer, not text
    if (!isObj(b)) throw malformed('a content block that is not an object');
    if (b.type === 'text') {
      if (typeof b.text !== 'string') throw malformed('a text block whose text is not a string');
      text += b.text;
    } else if (b.type === 'thinking') {
      if (typeof b.thinking !== 'string') throw malformed('a thinking block whose thinking is not a string');
      reasoning += b.thinking;
    } else if (b.type === 'tool_use') {
      if (typeof b.id !== 'string' || typeof b.name !== 'string' || b.name === '') throw malformed('a tool_use block without its id and name');
      toolCalls.push({ id: b.id, type: 'function', function: { name: b.name, arguments: JSON.stringify(b.input ?? {}) } });
    }
    // redacted_thinking, server-tool and unknown blocks have no OpenAI form
  }
  const message: ChatCompletion['choices'][number]['message'] = {
    role: 'assistant',
    content: text === '' && toolCalls.length > 0 ? null : text,
  };
  if (toolCalls.length) message.tool_calls = toolCalls;
  if (reasoning) message.reasoning_content = reasoning;
  const named = answerIdentity(msg, model);
  return {
    id: named.id,
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: named.model,
    choices: [{ index: 0, message, finish_reason: toFinishReason(msg.stop_reason) ?? 'stop', logprobs: null }],
    usage: toOpenAiUsage(msg.usage ?? {}),
  };
}
