/**
 * Anthropic Messages SSE → OpenAI `chat.completion.chunk`s, translated event by event as they arrive
 * (nothing is buffered beyond the reads already received; the shared SSE reader, src/providers/stream-reader.ts,
 * translates those at once). Bytes in, StreamChunks out: testable from a recorded SSE text.
 *
 * Mapping:
 *   message_start        → role chunk (`{role: "assistant", content: ""}`); id, model and input usage kept (an id
 *                          or model it leaves out: one made here, the model the request named; `answerIdentity`)
 *   content_block_start  → tool_use: tool_calls delta {index, id, type, function: {name, arguments: ""}};
 *                          text / thinking: nothing
 *   content_block_delta  → text_delta: content; input_json_delta: tool_calls arguments (same index);
 *                          thinking_delta: `reasoning_content`; signature / citations deltas: dropped
 *   message_delta        → finish_reason chunk (once); usage merged (its counts are cumulative)
 *   message_stop         → final usage chunk (`choices: []`, StreamChunk.usage set), then return
 *   ping, unknown events → ignored (Anthropic may add event types)
 * OpenAI tool_calls indexes count tool_use blocks from 0; Anthropic block indexes count every block.
 *
 * Abnormal ends throw GatewayError (the provider contract): `error` event → the error of the HTTP status its
 * type stands for (`streamError`, the mapping every upstream error without a status takes: overloaded_error →
 * UPSTREAM_ERROR 503, rate_limit_error → RATE_LIMITED, api_error → UPSTREAM_ERROR, …; unknown types →
 * UPSTREAM_STREAM_ERROR), carrying the answer's Retry-After (`retryAfterOf`, read only then); data that is
 * not JSON, or content before message_start → UPSTREAM_BAD_RESPONSE; end of body without message_stop →
 * UPSTREAM_STREAM_ERROR; transport failures → mapTransportError(…, midStream = true).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, FinishReason } from '../../wire/openai.js';
import type { ChunkStream, StreamChunk } from '../provider.js';
import { sseStream, type StreamTranslator } from '../stream-reader.js';
import { reportedError } from '../reported-error.js';
import { retryAfterOf } from '../upstream.js';
import { answerIdentity, mergeUsage, toFinishReason, toOpenAiUsage } from './response.js';
import type { AnthropicUsage, ErrorResponse, StreamEvent } from './wire.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];

/** The translation's state for one stream: the message's id, model and usage so far, and the tool indexes. */
class AnthropicTranslation implements StreamTranslator {
  private id = '';
  private model = '';
  private started = false;
  private finished = false;
  private usage: AnthropicUsage = {};
  /** Anthropic block index → OpenAI tool_calls index */
  private readonly toolIndex = new Map<number, number>();

  constructor(
    private readonly label: string,
    private readonly answer: StreamAnswer,
    private readonly created: number,
  ) {}

  event(data: string, name: string | undefined, out: StreamChunk[]): boolean {
    let ev: StreamEvent;
    try {
      ev = JSON.parse(data) as StreamEvent;
    } catch {
      throw this.bad('upstream sent a stream event that is not JSON');
    }
    if (!ev || typeof ev !== 'object') throw this.bad('upstream sent a stream event that is not an object');
    const type = typeof ev.type === 'string' ? ev.type : name;
    if (type === 'error') throw streamError(ev as ErrorResponse, this.label, retryAfterOf(this.answer.headers));
    if (type === 'message_start') {
      const m = (ev as Extract<StreamEvent, { type: 'message_start' }>).message;
      if (!m || typeof m !== 'object') throw this.bad('message_start without a message');
      ({ id: this.id, model: this.model } = answerIdentity(m, this.answer.model));
      this.usage = mergeUsage({}, m.usage);
      this.started = true;
      out.push(this.chunk({ role: 'assistant', content: '' }));
      return false;
    }
    if (!this.started && (type === 'message_delta' || type === 'message_stop' || type?.startsWith('content_block'))) {
      throw this.bad(`upstream sent ${type} before message_start`);
    }

    switch (ev.type) {
      case 'content_block_start': {
        const b = ev.content_block;
        if (b?.type === 'tool_use') {
          const t = b as { id?: unknown; name?: unknown };
          if (typeof t.id !== 'string' || typeof t.name !== 'string' || t.name === '') throw this.bad('upstream sent a tool_use block without its id and name');
          const index = this.toolIndex.size;
          this.toolIndex.set(ev.index, index);
          out.push(this.chunk({ tool_calls: [{ index, id: t.id, type: 'function', function: { name: t.name, arguments: '' } }] }));
        }
        return false;
      }
      case 'content_block_delta': {
        const d = ev.delta;
        if (d?.type === 'text_delta') {
          if (d.text !== undefined && typeof d.text !== 'string') throw this.bad('upstream sent a text_delta whose text is not a string');
          if (d.text) out.push(this.chunk({ content: d.text }));
        } else if (d?.type === 'input_json_delta') {
          const index = this.toolIndex.get(ev.index);
          if (index === undefined) throw this.bad(`input_json_delta for block ${ev.index}, which is not a tool_use block`);
          if (d.partial_json) out.push(this.chunk({ tool_calls: [{ index, function: { arguments: d.partial_json } }] }));
        } else if (d?.type === 'thinking_delta') {
          if (d.thinking) out.push(this.chunk({ reasoning_content: d.thinking }));
        }
        return false;
      }
      case 'message_delta': {
        this.usage = mergeUsage(this.usage, ev.usage);
        const finish = toFinishReason(ev.delta?.stop_reason);
        if (finish && !this.finished) {
          this.finished = true;
          out.push(this.chunk({}, finish));
        }
        return false;
      }
      case 'message_stop': {
        const u = toOpenAiUsage(this.usage);
        const c: ChatCompletionChunk = { id: this.id, object: 'chat.completion.chunk', created: this.created, model: this.model, choices: [], usage: u };
        out.push({ data: JSON.stringify(c), usage: u });
        return true;
      }
      default:
        return false; // ping, content_block_stop and event types added later carry nothing to translate
    }
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended without message_stop`);
  }

  private chunk(delta: Delta, finish: FinishReason = null): StreamChunk {
    const c: ChatCompletionChunk = {
      id: this.id,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.model,
      choices: [{ index: 0, delta, finish_reason: finish, logprobs: null }],
    };
    return { data: JSON.stringify(c) };
  }

  private bad(what: string): GatewayError {
    return new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${this.label}: ${what}`);
  }
}

/** What the translation knows of the answer besides its body. */
export interface StreamAnswer {
  /** the model the request named for the channel: the chunks' `model` when message_start has none */
  model: string;
  /** the answer's headers: an in-band error carries their Retry-After */
  headers?: IncomingHttpHeaders;
}

export function anthropicStream(
  body: AsyncIterable<Uint8Array | string>,
  label: string,
  answer: StreamAnswer,
  created = Math.floor(Date.now() / 1000),
): ChunkStream & AsyncIterable<StreamChunk> {
  return sseStream(body, new AnthropicTranslation(label, answer, created), label);
}

/**
 * An in-band `error` event → the GatewayError of the HTTP status its type stands for, by the one mapping of an
 * upstream's error that came without a status (`reportedError`: Anthropic's types from ERROR_STATUS, then
 * `errorForStatus` as for an HTTP answer), so a streamed error is the error the same type is as a non-streamed
 * answer: `overloaded_error` is overloaded (503), `api_error` UPSTREAM_ERROR; a type that names no status →
 * UPSTREAM_STREAM_ERROR. `retryAfterSec`: the 200 answer's Retry-After (`retryAfterOf`), read by the caller only
 * once it found the error: the client's 429 and the router's cooldown take it as an HTTP answer's.
 */
export function streamError(ev: Partial<ErrorResponse>, label: string, retryAfterSec?: number): GatewayError {
  return reportedError(ev.error, label, 'stream', retryAfterSec);
}
