/**
 * Anthropic Messages SSE → OpenAI `chat.completion.chunk`s, translated event by event as they arrive
 * (nothing is buffered beyond the current SSE event). Bytes in, StreamChunks out: testable from a recorded
 * SSE text.
 *
 * Mapping:
 *   message_start        → role chunk (`{role: "assistant", content: ""}`); id, model and input usage kept
 *   content_block_start  → tool_use: tool_calls delta {index, id, type, function: {name, arguments: ""}};
 *                          text / thinking: nothing
 *   content_block_delta  → text_delta: content; input_json_delta: tool_calls arguments (same index);
 *                          thinking_delta: `reasoning_content`; signature / citations deltas: dropped
 *   message_delta        → finish_reason chunk (once); usage merged (its counts are cumulative)
 *   message_stop         → final usage chunk (`choices: []`, StreamChunk.usage set), then return
 *   ping, unknown events → ignored (Anthropic may add event types)
 * OpenAI tool_calls indexes count tool_use blocks from 0; Anthropic block indexes count every block.
 *
 * Abnormal ends throw GatewayError (the provider contract): `error` event → RATE_LIMITED (rate_limit_error),
 * UPSTREAM_ERROR (overloaded_error, retryable) or UPSTREAM_STREAM_ERROR (others, e.g. api_error); data that is
 * not JSON, or content before message_start → UPSTREAM_BAD_RESPONSE; end of body without message_stop →
 * UPSTREAM_STREAM_ERROR; transport failures → mapTransportError(…, midStream = true).
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, FinishReason } from '../../wire/openai.js';
import { parseSse } from '../../util/lines.js';
import type { StreamChunk } from '../provider.js';
import { mapTransportError, upstreamText } from '../upstream.js';
import { mergeUsage, toFinishReason, toOpenAiUsage } from './response.js';
import type { AnthropicUsage, ErrorResponse, StreamEvent } from './wire.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];

export async function* anthropicStream(
  body: AsyncIterable<Uint8Array | string>,
  label: string,
  created = Math.floor(Date.now() / 1000),
): AsyncGenerator<StreamChunk> {
  let id = '';
  let model = '';
  let started = false;
  let finished = false;
  let usage: AnthropicUsage = {};
  const toolIndex = new Map<number, number>(); // Anthropic block index → OpenAI tool_calls index

  const chunk = (delta: Delta, finish: FinishReason = null): StreamChunk => {
    const c: ChatCompletionChunk = {
      id,
      object: 'chat.completion.chunk',
      created,
      model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    };
    return { data: JSON.stringify(c) };
  };
  const bad = (what: string) => new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: ${what}`);

  try {
    for await (const sse of parseSse(body)) {
      let ev: StreamEvent;
      try {
        ev = JSON.parse(sse.data) as StreamEvent;
      } catch {
        throw bad('upstream sent a stream event that is not JSON');
      }
      if (!ev || typeof ev !== 'object') throw bad('upstream sent a stream event that is not an object');
      const type = typeof ev.type === 'string' ? ev.type : sse.event;
      if (type === 'error') throw streamError(ev as ErrorResponse, label);
      if (type === 'message_start') {
        const m = (ev as Extract<StreamEvent, { type: 'message_start' }>).message;
        if (!m || typeof m !== 'object') throw bad('message_start without a message');
        id = m.id;
        model = m.model;
        usage = mergeUsage({}, m.usage);
        started = true;
        yield chunk({ role: 'assistant', content: '' });
        continue;
      }
      if (!started && (type === 'message_delta' || type === 'message_stop' || type?.startsWith('content_block'))) {
        throw bad(`upstream sent ${type} before message_start`);
      }

      switch (ev.type) {
        case 'content_block_start': {
          const b = ev.content_block;
          if (b?.type === 'tool_use') {
            const t = b as { id: string; name: string };
            const index = toolIndex.size;
            toolIndex.set(ev.index, index);
            yield chunk({ tool_calls: [{ index, id: t.id, type: 'function', function: { name: t.name, arguments: '' } }] });
          }
          break;
        }
        case 'content_block_delta': {
          const d = ev.delta;
          if (d?.type === 'text_delta') {
            if (d.text) yield chunk({ content: d.text });
          } else if (d?.type === 'input_json_delta') {
            const index = toolIndex.get(ev.index);
            if (index === undefined) throw bad(`input_json_delta for block ${ev.index}, which is not a tool_use block`);
            if (d.partial_json) yield chunk({ tool_calls: [{ index, function: { arguments: d.partial_json } }] });
          } else if (d?.type === 'thinking_delta') {
            if (d.thinking) yield chunk({ reasoning_content: d.thinking });
          }
          break;
        }
        case 'message_delta': {
          usage = mergeUsage(usage, ev.usage);
          const finish = toFinishReason(ev.delta?.stop_reason);
          if (finish && !finished) {
            finished = true;
            yield chunk({}, finish);
          }
          break;
        }
        case 'message_stop': {
          const u = toOpenAiUsage(usage);
          const c: ChatCompletionChunk = { id, object: 'chat.completion.chunk', created, model, choices: [], usage: u };
          yield { data: JSON.stringify(c), usage: u };
          return;
        }
        default:
          break; // ping, content_block_stop and event types added later carry nothing to translate
      }
    }
  } catch (err) {
    throw mapTransportError(err, label, true);
  }
  throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream stream ended without message_stop`);
}

/** An in-band `error` event → GatewayError. Same error types as the HTTP error bodies. */
export function streamError(ev: Partial<ErrorResponse>, label: string): GatewayError {
  const type = ev.error?.type ?? 'unknown_error';
  const msg = upstreamText(String(ev.error?.message ?? 'error event'));
  const text = `channel ${label}: upstream reported ${type} mid-stream: ${msg}`;
  const details = { upstreamErrorType: type };
  if (type === 'rate_limit_error') return new GatewayError('RATE_LIMITED', text, { details });
  if (type === 'overloaded_error') return new GatewayError('UPSTREAM_ERROR', text, { details, retryable: true });
  return new GatewayError('UPSTREAM_STREAM_ERROR', text, { details });
}
