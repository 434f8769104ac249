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
 * `relayedFailure`). The throw behind it is the error of the status its code names (`reportedError`, the table a
 * non-streaming failed Response is read by too), carrying the answer's Retry-After (`retryAfterOf`, read only
 * then), so the attempt is accounted as that error: a rate limit cools the channel down, a client's bad prompt
 * or image is not held against it. As the stream's first event nothing of it reached the client: it is only
 * thrown, the request's error (an HTTP error, or retried on another candidate when retryable).
 * A non-streaming Response with `status: "failed"` is the error its `error` reports (`answerError`); one still
 * `queued` or `in_progress`, or `cancelled`, to a request that did not ask for `background` is no answer (`unfinished`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { isCount, usageOfCounts, type ChatCompletion, type ChatCompletionChunk, type ToolCall, type Usage } from '../../wire/openai.js';
import { relayedFailure, type ChunkStream, type StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { sseFrame } from '../../util/lines.js';
import { retryAfterOf } from '../upstream.js';
import { isObj } from '../../util/is-object.js';
import { answerError, answerErrorOf, relayedErrorEvent, replyError, reportedError, responseFailure, type UpstreamError } from '../reported-error.js';

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
export function responseToCompletion(r: ResponseBody, label: string, headers?: IncomingHttpHeaders, background = false): ChatCompletion {
  // a 2xx body that is an error object is the error it reports (../reported-error.ts)
  if (!r || typeof r !== 'object' || !Array.isArray(r.output))
    throw replyError(r, label, headers) ?? new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream response has no output array`);
  // a Response with `status: "failed"` (its `error` says why; `output` may hold what came before) is that error,
  // not an answer; `"incomplete"` is an answer, cut short as its `incomplete_details` says (finish reason `length`)
  const failed = answerError(r as Record<string, unknown>, label, headers);
  if (failed) throw failed;
  if (!background) unfinished(r.status, label);
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
 * A non-streaming Response to a request that did not ask for `background` is the finished answer: `completed`,
 * `incomplete` (cut short) or `failed` (its error, above). Only a background request is answered at once with a
 * Response still `queued` or `in_progress` (to poll), or `cancelled` (the client cancels only a background
 * response). So here `queued` or `in_progress` is no answer at all: UPSTREAM_BAD_RESPONSE, retried; and `cancelled`
 * means the upstream gave up on it: UPSTREAM_ERROR, retried, as a server error. A status the API may add later is
 * relayed.
 */
function unfinished(status: unknown, label: string): void {
  const opts = { details: { responseStatus: status } };
  if (status === 'queued' || status === 'in_progress')
    throw new GatewayError(
      'UPSTREAM_BAD_RESPONSE',
      `channel ${label}: upstream answered a request that did not ask for background with a Response still "${status}"`,
      opts,
    );
  if (status === 'cancelled')
    throw new GatewayError(
      'UPSTREAM_ERROR',
      `channel ${label}: upstream cancelled the response (status "cancelled") of a request that did not ask for background`,
      opts,
    );
}

/** A terminal event's data: `response.completed` and `response.incomplete` carry the Response (its usage). */
interface TerminalEvent {
  response?: ResponseBody;
}

class ResponsesPassThrough implements StreamTranslator {
  /** an event was handed over: from then on the client has the stream, and the upstream's own end is relayed */
  private started = false;

  constructor(
    private readonly label: string,
    private readonly headers: IncomingHttpHeaders | undefined,
  ) {}

  event(data: string, type: string | undefined, out: StreamChunk[]): boolean {
    const raw = sseFrame(data, type ?? 'message');
    if (type === 'response.completed' || type === 'response.incomplete' || type === 'response.failed' || type === 'error') {
      let ev: unknown;
      try {
        ev = JSON.parse(data);
      } catch {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${this.label}: upstream sent a stream event that is not JSON`);
      }
      if (type === 'response.failed' || type === 'error') {
        // the error of the status its code names, as a non-streaming failed Response's (`reportedError`), with the
        // answer's Retry-After, read only now that there is an error
        const e = reportedError(failureOf(ev, type), this.label, 'stream', retryAfterOf(this.headers));
        // the first event: nothing reached the client, so the error is the request's (an HTTP error, or retried)
        if (!isObj(ev) || !this.started) throw e;
        // as the upstream sent it, but for credentials it may echo and a message past RELAYED_TEXT_MAX (relayedErrorEvent)
        out.push({ data: '', raw: relayedErrorEvent(data, type) });
        throw relayedFailure(e);
      }
      // a terminal event's data is an object (the Response under `response`); `null` or a scalar is no end
      if (!isObj(ev)) throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${this.label}: upstream sent a ${type} event that is not an object`);
      const { response } = ev as TerminalEvent;
      const u = toUsage(response?.usage);
      const c: ChatCompletionChunk = { id: response?.id ?? '', object: 'chat.completion.chunk', created: 0, model: '', choices: [], usage: u };
      out.push({ data: JSON.stringify(c), usage: u, raw });
      return true;
    }
    this.started = true;
    // a `*.delta` event carries output (response.output_text.delta, response.function_call_arguments.delta,
    // response.reasoning_summary_text.delta, …): a content chunk (StreamChunk.content)
    out.push(type?.endsWith('.delta') ? { data: '', raw, content: true } : { data: '', raw });
    return false;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without response.completed`);
  }
}

/**
 * The error a failure event reports: a `response.failed`'s Response's (`responseFailure`), an `error` event's under
 * `error` when it is there (as the API has been seen to send it), else its own `code` and `message` (the API
 * reference's form). Not an object: no error that reads as one.
 */
function failureOf(ev: unknown, type: string): UpstreamError | undefined {
  if (!isObj(ev)) return undefined;
  if (type === 'response.failed') return responseFailure(isObj(ev.response) ? ev.response : {});
  return answerErrorOf(ev) ?? ev;
}

/** `headers`: the answer's, whose Retry-After an in-band error carries (read only when there is one). */
export function responsesNativeStream(
  body: AsyncIterable<Uint8Array | string>,
  label: string,
  headers?: IncomingHttpHeaders,
): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new ResponsesPassThrough(label, headers), label);
}
