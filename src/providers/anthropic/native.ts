/**
 * Native Messages pass-through (src/wire/native.ts): the client's own Anthropic body goes to the upstream
 * with only `model` replaced, its `anthropic-version` / `anthropic-beta` headers win over the channel's, and
 * the answer comes back verbatim: each SSE event as `StreamChunk.raw`, a non-streaming message under NATIVE
 * on a chat-form translation of it (the router and logs only look at the chat form).
 *
 * Stream integrity is checked here exactly as in the translating path: an `error` event or a body that
 * ends without `message_stop` throws. Only message_start, message_delta and error events are parsed (for
 * usage and errors); every other event is relayed without a JSON parse.
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk } from '../../wire/openai.js';
import { parseSse } from '../../util/lines.js';
import type { StreamChunk } from '../provider.js';
import { mapTransportError } from '../upstream.js';
import { mergeUsage, toOpenAiUsage } from './response.js';
import { streamError } from './stream.js';
import type { AnthropicUsage, ErrorResponse } from './wire.js';

/** Client headers the Messages API defines and that pass through to the upstream. */
export const PASS_HEADERS = ['anthropic-version', 'anthropic-beta'] as const;

export async function* anthropicNativeStream(body: AsyncIterable<Uint8Array | string>, label: string): AsyncGenerator<StreamChunk> {
  let usage: AnthropicUsage = {};
  let started = false;
  const bad = (what: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: ${what}`);
  try {
    for await (const sse of parseSse(body)) {
      const type = sse.event;
      const raw = `event: ${type ?? 'message'}\ndata: ${sse.data}\n\n`;
      if (type === 'error') {
        let ev: Partial<ErrorResponse> = {};
        try {
          ev = JSON.parse(sse.data) as ErrorResponse;
        } catch {
          /* the event type is what matters */
        }
        throw streamError(ev, label);
      }
      if (type === 'message_start' || type === 'message_delta') {
        let ev: { message?: { usage?: AnthropicUsage }; usage?: AnthropicUsage };
        try {
          ev = JSON.parse(sse.data) as typeof ev;
        } catch {
          throw bad('upstream sent a stream event that is not JSON');
        }
        usage = mergeUsage(usage, type === 'message_start' ? ev.message?.usage : ev.usage);
        started = true;
        yield { data: '', raw };
        continue;
      }
      if (!started && type !== 'ping') throw bad(`upstream sent ${type} before message_start`);
      if (type === 'message_stop') {
        const u = toOpenAiUsage(usage);
        const c: ChatCompletionChunk = { id: '', object: 'chat.completion.chunk', created: 0, model: '', choices: [], usage: u };
        yield { data: JSON.stringify(c), usage: u, raw };
        return;
      }
      yield { data: '', raw };
    }
  } catch (err) {
    throw mapTransportError(err, label, true);
  }
  throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream stream ended without message_stop`);
}

/** The client's pass-through headers over the channel's base headers (auth stays the channel's). */
export function nativeHeaders(base: Record<string, string>, client: Record<string, string>): Record<string, string> {
  const out = { ...base };
  for (const k of PASS_HEADERS) if (client[k]) out[k] = client[k];
  return out;
}
