/**
 * Internal chat completion → OpenAI Response object (non-streaming), and the parts the stream writer shares:
 * the response skeleton echoed from the request, usage, item ids, the error object. Pure apart from ids.
 *
 * Output items: a `reasoning` item when the upstream gave reasoning (content: reasoning_text), then one
 * assistant `message` (output_text) when there is text, then one `function_call` per tool call. A `length`
 * finish makes the response `incomplete` (incomplete_details.reason = max_output_tokens), a `content_filter` finish
 * too (reason content_filter): the two reasons the API gives an answer cut short. The last output item, the one
 * being written when the answer was cut, is then `incomplete` too, as the API marks it (the others are `completed`).
 * Usage is the upstream's counts (a reported 0 included); without upstream counts (or for the side a usage
 * leaves without a number), the input is estimated from the request size and the output is 1 (shownCounts).
 */
import { randomBytes } from 'node:crypto';
import type { GatewayError } from '../../wire/errors.js';
import { shownCounts, type ChatCompletion, type FinishReason, type Usage } from '../../wire/openai.js';
import { seqId } from '../../util/ids.js';
import { secrets } from '../../util/redact.js';
import type { Item } from './request.js';
import { reasoningText } from '../../wire/reasoning.js';

/** Response ids are unguessable: GET /v1/responses/{id} returns the stored response to whoever names it. */
export const newResponseId = () => `resp_${randomBytes(24).toString('hex')}`;
export const itemId = (prefix: 'msg' | 'fc' | 'rs') => seqId(prefix);

export interface ResponsesUsage {
  input_tokens: number;
  input_tokens_details: { cached_tokens: number };
  output_tokens: number;
  output_tokens_details: { reasoning_tokens: number };
  total_tokens: number;
}

export function toResponsesUsage(u: Usage | null | undefined, estimateIn: number): ResponsesUsage {
  const shown = shownCounts(u);
  const input = shown?.input ?? estimateIn;
  const output = shown?.output ?? 1;
  const details = u?.completion_tokens_details as { reasoning_tokens?: number } | undefined;
  return {
    input_tokens: input,
    input_tokens_details: { cached_tokens: u?.prompt_tokens_details?.cached_tokens ?? u?.cache_read_input_tokens ?? 0 },
    output_tokens: output,
    output_tokens_details: { reasoning_tokens: details?.reasoning_tokens ?? 0 },
    total_tokens: input + output,
  };
}

/** The request fields a Response echoes, with status in_progress and no output yet. */
export function skeleton(id: string, body: Record<string, unknown>, model: string): Record<string, unknown> {
  return {
    id,
    object: 'response',
    created_at: Math.floor(Date.now() / 1000),
    status: 'in_progress',
    error: null,
    incomplete_details: null,
    instructions: body.instructions ?? null,
    max_output_tokens: body.max_output_tokens ?? null,
    model,
    output: [],
    parallel_tool_calls: body.parallel_tool_calls ?? true,
    previous_response_id: body.previous_response_id ?? null,
    reasoning: body.reasoning ?? null,
    store: body.store !== false,
    temperature: body.temperature ?? null,
    text: body.text ?? { format: { type: 'text' } },
    tool_choice: body.tool_choice ?? 'auto',
    tools: body.tools ?? [],
    top_p: body.top_p ?? null,
    truncation: body.truncation ?? 'disabled',
    usage: null,
    user: body.user ?? null,
    metadata: body.metadata ?? {},
  };
}

/** Why an answer was cut short, in the API's terms (`incomplete_details.reason`); undefined for a whole answer. */
function incompleteReason(f: FinishReason | undefined): 'max_output_tokens' | 'content_filter' | undefined {
  if (f === 'length') return 'max_output_tokens';
  if (f === 'content_filter') return 'content_filter';
  return undefined;
}

/** The answer was cut short (a `length` or `content_filter` finish): its last output item is `incomplete`. */
export const cutShort = (f: FinishReason | undefined): boolean => incompleteReason(f) !== undefined;

/**
 * Completes a skeleton: status from the finish reason, output, usage. `output`'s last item must already say how it
 * ended (`incomplete` when the answer was cut short: cutShort), as the API has the item that was cut.
 */
export function finish(r: Record<string, unknown>, output: Item[], finishReason: FinishReason | undefined, usage: ResponsesUsage): Record<string, unknown> {
  const reason = incompleteReason(finishReason);
  return { ...r, status: reason ? 'incomplete' : 'completed', incomplete_details: reason ? { reason } : null, output, usage };
}

export function failed(r: Record<string, unknown>, output: Item[], e: GatewayError): Record<string, unknown> {
  return {
    ...r,
    status: 'failed',
    output,
    error: {
      code: e.code === 'RATE_LIMITED' ? 'rate_limit_exceeded' : e.code === 'UPSTREAM_ERROR' ? 'server_error' : e.code.toLowerCase(),
      // the one place this format's error leaves the gateway: scrubbed as every error body is (http/respond.ts)
      message: secrets.scrubError(e.message),
    },
  };
}

/** `status`: only for a reasoning item that was cut short (the API's reasoning item has it when known) */
export const reasoningItem = (id: string, text: string, status?: 'incomplete'): Item => ({
  type: 'reasoning',
  id,
  summary: [],
  content: [{ type: 'reasoning_text', text }],
  ...(status ? { status } : {}),
});
export const messageItem = (id: string, text: string, status = 'completed'): Item => ({
  type: 'message',
  id,
  status,
  role: 'assistant',
  content: text === '' && status !== 'completed' ? [] : [{ type: 'output_text', text, annotations: [] }],
});
export const callItem = (id: string, callId: string, name: string, args: string, status = 'completed'): Item => ({
  type: 'function_call',
  id,
  call_id: callId,
  name,
  arguments: args,
  status,
});

export function toResponse(c: ChatCompletion, r: Record<string, unknown>, estimateIn: number): Record<string, unknown> {
  const choice = c.choices[0];
  const m = choice?.message;
  const output: Item[] = [];
  const reasoning = reasoningText(m);
  if (reasoning) output.push(reasoningItem(itemId('rs'), reasoning));
  if (typeof m?.content === 'string' && m.content) output.push(messageItem(itemId('msg'), m.content));
  for (const tc of m?.tool_calls ?? []) {
    const id = itemId('fc');
    // a call the upstream gave no id (or an empty one) is answered by its call_id: the item's id is unique
    output.push(callItem(id, tc.id || id, tc.function.name, tc.function.arguments));
  }
  const f = choice?.finish_reason ?? 'stop';
  // the item the upstream was writing when it was cut (its text, its call's arguments) is not whole
  const last = output[output.length - 1];
  if (last && cutShort(f)) last.status = 'incomplete';
  return finish(r, output, f, toResponsesUsage(c.usage, estimateIn));
}
