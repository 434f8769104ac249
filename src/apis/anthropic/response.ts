/**
 * Internal chat completion → Anthropic Message (non-streaming), plus the finish-reason and usage mappings the
 * stream translator shares. Pure.
 *
 * Usage: the upstream's counts when it reported them (a reported 0 included: shownCounts); otherwise `estimate`
 * (a byte-based input estimate) for input and 1 output token, also for the one side a usage may leave without a
 * number.
 * Cache counts the upstream reported are carried over.
 */
import { shownCounts, type ChatCompletion, type Usage } from '../../wire/openai.js';
import { reasoningText } from '../../wire/reasoning.js';
import { newId, seqId } from '../../util/ids.js';
import { toolArguments } from './json-prefix.js';

export type AnthropicStopReason = 'end_turn' | 'max_tokens' | 'stop_sequence' | 'tool_use' | 'refusal';

/**
 * `f`: a FinishReason, or whatever an upstream sent (unknown reasons end the turn). `calls`: the answer holds tool
 * calls. An answer with tool calls that was not cut short is `tool_use` whatever the upstream's reason: some
 * OpenAI-compatible servers (vLLM with a forced `tool_choice`) finish such an answer with `stop`, and a client that
 * runs tools on `stop_reason: "tool_use"` (as the Messages API always says when it calls one) would end the turn.
 */
export function toStopReason(f: string | undefined, calls = false): AnthropicStopReason {
  if (f === 'length') return 'max_tokens';
  if (f === 'content_filter') return 'refusal';
  if (f === 'tool_calls' || f === 'function_call' || calls) return 'tool_use';
  return 'end_turn';
}

export interface AnthropicUsageOut {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens?: number;
  cache_read_input_tokens?: number;
}

/** Chat usage → Anthropic usage; `input_tokens` excludes cached parts, as Anthropic counts them. */
export function toAnthropicUsage(u: Usage | null | undefined, estimateIn: number, outFloor = 1): AnthropicUsageOut {
  const shown = shownCounts(u);
  if (!u || !shown) return { input_tokens: estimateIn, output_tokens: outFloor };
  const read = u.cache_read_input_tokens ?? u.prompt_tokens_details?.cached_tokens ?? 0;
  const write = u.cache_creation_input_tokens ?? 0;
  const out: AnthropicUsageOut = {
    input_tokens: shown.input !== undefined ? Math.max(0, shown.input - read - write) : estimateIn,
    output_tokens: shown.output ?? outFloor,
  };
  if (read || write) {
    out.cache_creation_input_tokens = write;
    out.cache_read_input_tokens = read;
  }
  return out;
}

/**
 * tool arguments are a JSON string in chat form and an object here: text that does not open as an object is
 * wrapped (`{"input": …}`), an object that ends early is read as far as it is JSON when the answer was cut short
 * inside it (`cut`) and fails the answer otherwise, an object that breaks fails the answer (toolArguments, the
 * object or error a stream of the same arguments makes)
 */
export const toolInput = toolArguments;

/**
 * The answer was cut short (the output-token limit, or the content filter), so its last tool call may be unfinished
 * and the stop reason (`max_tokens`, `refusal`) tells the client so: that call's arguments are read as far as they
 * are JSON. An unfinished call in an answer that ended otherwise fails it (unfinishedArguments).
 */
export const cutShort = (f: string | null | undefined): boolean => f === 'length' || f === 'content_filter';

/**
 * A tool call's id as a tool_use id: the upstream's, or (none, or empty) one the gateway makes, unique across the
 * conversation as the Messages API requires (it refuses a conversation whose tool_use ids repeat, and an empty one).
 */
export const toolUseId = (id: string | null | undefined): string => id || seqId('toolu');

/** An answer's id as a message id (`msg_…`); one the gateway makes when there is none (random: the time alone repeats). */
export function messageId(id: unknown): string {
  // the upstream's `id` is whatever it sent: one that is not a non-empty string is none (it threw here, a 500)
  if (typeof id !== 'string' || !id) return newId('msg');
  return id.startsWith('msg_') ? id : `msg_${id}`;
}

export function toAnthropicMessage(c: ChatCompletion, model: string, estimateIn: number): Record<string, unknown> {
  const choice = c.choices[0];
  const m = choice?.message;
  const content: Array<Record<string, unknown>> = [];
  const reasoning = reasoningText(m);
  if (reasoning) content.push({ type: 'thinking', thinking: reasoning, signature: '' });
  if (typeof m?.content === 'string' && m.content) content.push({ type: 'text', text: m.content });
  const calls = m?.tool_calls ?? [];
  const finish = choice?.finish_reason ?? 'stop';
  // only the call being written when the answer was cut may be unfinished: the last one
  const cut = cutShort(finish);
  calls.forEach((tc, i) =>
    content.push({
      type: 'tool_use',
      id: toolUseId(tc.id),
      name: tc.function.name,
      input: toolInput(tc.function.arguments, tc.function.name, cut && i === calls.length - 1),
    }),
  );
  return {
    id: messageId(c.id),
    type: 'message',
    role: 'assistant',
    model,
    content,
    stop_reason: toStopReason(finish, calls.length > 0),
    stop_sequence: null,
    usage: toAnthropicUsage(c.usage, estimateIn),
  };
}
