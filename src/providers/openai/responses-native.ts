/**
 * Native OpenAI Responses pass-through for an `openai` channel with `options.responsesApi: true` (its
 * upstream serves POST {baseUrl}/responses): the client's Responses body goes up with only `model`
 * replaced, and the answer comes back verbatim (src/wire/native.ts). A chat-form view is derived only for
 * what the router and logs read: usage, and for a non-streaming answer the text and tool calls.
 *
 * Stream integrity: `response.failed`, `error` events and a body that ends without `response.completed` /
 * `response.incomplete` throw, exactly like the chat path. Only those terminal events are JSON-parsed.
 * `response.failed` and `error` are the API's own end of a failed stream, and clients act on their code
 * (`context_length_exceeded`, `rate_limit_exceeded`, `insufficient_quota`; an `error` event's `code`, `message`,
 * `param` and `sequence_number`, at its top level as the API reference has it or under `error` as the API has
 * been seen to send it): either is handed over as sent, scrubbed and its message bounded (`relayedErrorEvent`,
 * `relayedFailure`), and the throw behind it only marks the attempt failed (UPSTREAM_STREAM_ERROR, as before it
 * was relayed). A non-streaming Response with `status: "failed"` is the error its `error` reports (`answerError`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { isCount, usageOfCounts, type ChatCompletion, type ChatCompletionChunk, type ToolCall, type Usage } from '../../wire/openai.js';
import { relayedFailure, type ChunkStream, type StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { sseFrame } from '../../util/lines.js';
import { upstreamText } from '../upstream.js';
import { isObj } from '../../util/is-object.js';
import { answerError, relayedErrorEvent, replyError } from '../reported-error.js';

interface ResponsesUsage {
  input_tokens?: number;
  output_tokens?: number;
  total_tokens?: number;
  input_tokens_details?: { cached_tokens?: number };
}

interface ResponseBody {
  id?: string;
  model?: string;
  status?: string;
  output?: Array<{ type?: string; content?: Array<{ type?: string; text?: string }>; call_id?: string; name?: string; arguments?: string }>;
  usage?: ResponsesUsage | null;
  error?: { message?: string; code?: string } | null;
}

/** A side the upstream did not count is left out (usageOfCounts): no count, charged an estimate, never 0. */
function toUsage(u: ResponsesUsage | null | undefined): Usage {
  const out = usageOfCounts(u?.input_tokens, u?.output_tokens);
  const cached = u?.input_tokens_details?.cached_tokens;
  if (isCount(cached)) out.prompt_tokens_details = { cached_tokens: cached };
  return out;
}

/** The chat-form view of a Response (never sent to a client: the native body is). */
export function responseToCompletion(r: ResponseBody, label: string, headers?: IncomingHttpHeaders): ChatCompletion {
  // a 2xx body that is an error object is the error it reports (../reported-error.ts)
  if (!r || typeof r !== 'object' || !Array.isArray(r.output))
    throw replyError(r, label, headers) ?? new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream response has no output array`);
  // a Response with `status: "failed"` (its `error` says why; `output` may hold what came before) is that error,
  // not an answer; `"incomplete"` is an answer, cut short as its `incomplete_details` says (finish reason `length`)
  const failed = answerError(r as Record<string, unknown>, label, headers);
  if (failed) throw failed;
  let text = '';
  const calls: ToolCall[] = [];
  for (const it of r.output) {
    if (it.type === 'message') for (const p of it.content ?? []) if (p.type === 'output_text' && p.text) text += p.text;
    if (it.type === 'function_call') calls.push({ id: it.call_id ?? '', type: 'function', function: { name: it.name ?? '', arguments: it.arguments ?? '' } });
  }
  const message: ChatCompletion['choices'][number]['message'] = { role: 'assistant', content: text || (calls.length ? null : '') };
  if (calls.length) message.tool_calls = calls;
  return {
    id: r.id ?? '',
    object: 'chat.completion',
    created: Math.floor(Date.now() / 1000),
    model: r.model ?? '',
    choices: [{ index: 0, message, finish_reason: calls.length ? 'tool_calls' : r.status === 'incomplete' ? 'length' : 'stop' }],
    usage: toUsage(r.usage),
  };
}

/**
 * A terminal event's data. An `error` event has `code`, `message` and `param` at its top level in the API
 * reference (the openai SDK's ResponseErrorEvent), and under `error` as the API has been seen to send it.
 */
interface TerminalEvent {
  response?: ResponseBody;
  message?: string;
  error?: { message?: string } | null;
}

class ResponsesPassThrough implements StreamTranslator {
  constructor(private readonly label: string) {}

  event(data: string, type: string | undefined, out: StreamChunk[]): boolean {
    const raw = sseFrame(data, type ?? 'message');
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed' || type === 'error') {
      let ev: TerminalEvent;
      try {
        ev = JSON.parse(data) as TerminalEvent;
      } catch {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${this.label}: upstream sent a stream event that is not JSON`);
      }
      if (type === 'response.failed' || type === 'error') {
        const failure: TerminalEvent = isObj(ev) ? ev : {};
        // scrubbed of every configured secret (an upstream may echo the key it was sent), as every provider's
        const msg = upstreamText(String(failure.response?.error?.message ?? failure.message ?? failure.error?.message ?? type));
        const e = new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream reported an error mid-stream: ${msg}`);
        if (failure !== ev) throw e;
        // as the upstream sent it, but for credentials it may echo and a message past RELAYED_TEXT_MAX (relayedErrorEvent)
        out.push({ data: '', raw: relayedErrorEvent(data, type) });
        throw relayedFailure(e);
      }
      const u = toUsage(ev.response?.usage);
      const c: ChatCompletionChunk = { id: ev.response?.id ?? '', object: 'chat.completion.chunk', created: 0, model: '', choices: [], usage: u };
      out.push({ data: JSON.stringify(c), usage: u, raw });
      return true;
    }
    // a `*.delta` event carries output (response.output_text.delta, response.function_call_arguments.delta,
    // response.reasoning_summary_text.delta, …): a content chunk (StreamChunk.content)
    out.push(type?.endsWith('.delta') ? { data: '', raw, content: true } : { data: '', raw });
    return false;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without response.completed`);
  }
}

export function responsesNativeStream(body: AsyncIterable<Uint8Array | string>, label: string): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new ResponsesPassThrough(label), label);
}
