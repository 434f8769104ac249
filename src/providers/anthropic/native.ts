/**
 * Native Messages pass-through (src/wire/native.ts): the client's own Anthropic body goes to the upstream
 * with only `model` replaced, its `anthropic-version` / `anthropic-beta` headers win over the channel's, and
 * the answer comes back verbatim: each SSE event as `StreamChunk.raw`, a non-streaming message under NATIVE
 * on a chat-form translation of it (the router and logs only look at the chat form).
 *
 * Stream integrity is checked here exactly as in the translating path: an `error` event or a body that
 * ends without `message_stop` throws. Only message_start, message_delta and error events are parsed (for
 * usage and errors); every other event is relayed without a JSON parse.
 *
 * An `error` event after `message_start` is the client's stream's end as the upstream sent it (its
 * `error.type` and message, which the SDK and Claude Code act on), scrubbed of credentials it may echo
 * (`relayedFailure`); the throw behind it is the error of its type's status (`streamError`) as before, for
 * the attempt's health. Before `message_start` nothing of the stream reached the client yet: the error is
 * thrown only, and answers as an HTTP error of that status (or is retried), as the translating path does.
 * Either way the error carries the 200 answer's Retry-After (`retryAfterOf`, read only once there is an error).
 *
 * The events are relayed as sent: a message_start without `id` or `model` (from an Anthropic-compatible server)
 * stays so; only the chat form of a non-streaming answer, which the client never sees, gets them filled in.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk } from '../../wire/openai.js';
import { relayedFailure, type ChunkStream, type StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { mergeUsage, toOpenAiUsage } from './response.js';
import { streamError } from './stream.js';
import type { AnthropicUsage, ErrorResponse } from './wire.js';
import { sseFrame } from '../../util/lines.js';
import { isObj, jsonObject } from '../../util/is-object.js';
import { relayedErrorEvent } from '../reported-error.js';
import { retryAfterOf } from '../upstream.js';

/** Client headers the Messages API defines and that pass through to the upstream. */
export const PASS_HEADERS = ['anthropic-version', 'anthropic-beta'] as const;

class AnthropicPassThrough implements StreamTranslator {
  private usage: AnthropicUsage = {};
  private started = false;

  constructor(
    private readonly label: string,
    private readonly headers: IncomingHttpHeaders | undefined,
  ) {}

  event(data: string, type: string | undefined, out: StreamChunk[]): boolean {
    const raw = sseFrame(data, type ?? 'message');
    if (type === 'error') {
      // the event type is what matters: a body that is not a JSON object is an error all the same
      const body: Partial<ErrorResponse> = jsonObject(data) ?? {};
      const e = streamError(body, this.label, retryAfterOf(this.headers));
      // relayed only in Anthropic's own shape: anything else gets the gateway's error event, which has it
      if (!this.started || !isObj(body.error) || typeof body.error.type !== 'string') throw e;
      out.push({ data: '', raw: relayedErrorEvent(data, type) });
      throw relayedFailure(e);
    }
    if (type === 'message_start' || type === 'message_delta') {
      let ev: { message?: { usage?: AnthropicUsage }; usage?: AnthropicUsage };
      try {
        ev = JSON.parse(data) as typeof ev;
      } catch {
        throw this.bad('upstream sent a stream event that is not JSON');
      }
      this.usage = mergeUsage(this.usage, type === 'message_start' ? ev.message?.usage : ev.usage);
      this.started = true;
      out.push({ data: '', raw });
      return false;
    }
    if (!this.started && type !== 'ping') throw this.bad(`upstream sent ${type} before message_start`);
    if (type === 'message_stop') {
      const u = toOpenAiUsage(this.usage);
      const c: ChatCompletionChunk = { id: '', object: 'chat.completion.chunk', created: 0, model: '', choices: [], usage: u };
      out.push({ data: JSON.stringify(c), usage: u, raw });
      return true;
    }
    // a content_block_delta carries output (text, tool input, thinking): a content chunk (StreamChunk.content);
    // a signature or citations delta does not (notOutput)
    out.push(type === 'content_block_delta' && !notOutput(data) ? { data: '', raw, content: true } : { data: '', raw });
    return false;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without message_stop`);
  }

  private bad(what: string): GatewayError {
    return new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${this.label}: ${what}`);
  }
}

/** The `content_block_delta` types that carry nothing the model wrote: extended thinking's signature, a citation. */
const NOT_OUTPUT = /"(?:signature|citations)_delta"/;

/**
 * A `content_block_delta` whose delta is a `signature_delta` (an opaque signature of the thinking block) or a
 * `citations_delta` (a source's cited text): not output, so not a content chunk, and no token of a stream's
 * estimated output. Only an event that holds one of the two names (a quoted name: inside a text or JSON delta
 * its quotes are escaped) is parsed to read its delta's type; every other delta is relayed unparsed, as before.
 */
function notOutput(data: string): boolean {
  if (!NOT_OUTPUT.test(data)) return false;
  const delta = jsonObject(data)?.delta;
  return isObj(delta) && (delta.type === 'signature_delta' || delta.type === 'citations_delta');
}

/** `headers`: the answer's, whose Retry-After an in-band error carries. */
export function anthropicNativeStream(
  body: AsyncIterable<Uint8Array | string>,
  label: string,
  headers?: IncomingHttpHeaders,
): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new AnthropicPassThrough(label, headers), label);
}

/** The client's pass-through headers over the channel's base headers (auth stays the channel's). */
export function nativeHeaders(base: Record<string, string>, client: Record<string, string>): Record<string, string> {
  const out = { ...base };
  for (const k of PASS_HEADERS) if (client[k]) out[k] = client[k];
  return out;
}
