/**
 * Ollama NDJSON stream → OpenAI chat.completion.chunk StreamChunks, one line at a time as the lines arrive
 * (never buffered to the end). Pure apart from reading `body`, so it is testable from a recorded byte string.
 *
 * Sequence produced: a first chunk carrying `role: "assistant"`; one chunk per content (or thinking) piece;
 * one chunk per line that carries tool calls, each call complete (id, type, name, whole arguments string);
 * on the `done: true` line a finish_reason chunk, then the usage chunk (`choices: []`), then the iterator
 * returns. Anything else ends in a GatewayError:
 * - a line that is not a JSON object → UPSTREAM_BAD_RESPONSE
 * - a `{"error": "..."}` line (how Ollama reports a failure once streaming started) → UPSTREAM_STREAM_ERROR
 * - the body ends before `done: true` → UPSTREAM_STREAM_ERROR
 * - a transport failure while reading → mapTransportError(…, midStream = true)
 */
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, ChunkToolCall, FinishReason, Usage } from '../../wire/openai.js';
import { splitLines } from '../../util/lines.js';
import type { StreamChunk } from '../provider.js';
import { mapTransportError, upstreamText } from '../upstream.js';
import { createdOf, finishReasonOf, newChatId, toOpenAiToolCalls, usageOf } from './response.js';
import type { OllamaChatResponse } from './wire.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];

export async function* ollamaStream(body: AsyncIterable<Uint8Array | string>, label: string, requestedModel: string): AsyncGenerator<StreamChunk> {
  const id = newChatId();
  let created: number | undefined;
  let model = requestedModel;
  let toolCount = 0;
  let first = true;
  let done = false;

  const frame = (choices: ChatCompletionChunk['choices'], usage?: Usage): string => {
    const c: ChatCompletionChunk = { id, object: 'chat.completion.chunk', created: created ?? createdOf(undefined), model, choices };
    if (usage) c.usage = usage;
    return JSON.stringify(c);
  };
  const choice = (delta: Delta, finish: FinishReason) => [{ index: 0, delta, finish_reason: finish, logprobs: null }];

  try {
    for await (const line of splitLines(body)) {
      if (line.trim() === '') continue;
      let parsed: unknown;
      try {
        parsed = JSON.parse(line);
      } catch {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a stream line that is not JSON`);
      }
      if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream sent a stream line that is not a JSON object`);
      }
      const o = parsed as Partial<OllamaChatResponse> & { error?: unknown };
      if (o.error !== undefined && o.error !== null) {
        const msg = typeof o.error === 'string' ? o.error : JSON.stringify(o.error);
        throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream reported an error mid-stream: ${upstreamText(msg)}`);
      }
      if (created === undefined) created = createdOf(o.created_at);
      if (typeof o.model === 'string' && o.model) model = o.model;
      const m = o.message;
      if (m !== undefined && (m === null || typeof m !== 'object')) {
        throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream stream line has a malformed message`);
      }

      const delta: Delta = {};
      if (typeof m?.content === 'string' && m.content !== '') delta.content = m.content;
      if (typeof m?.thinking === 'string' && m.thinking !== '') delta.reasoning_content = m.thinking;
      const calls = toOpenAiToolCalls(m?.tool_calls, toolCount, label);
      if (calls.length) {
        delta.tool_calls = calls.map((c, i): ChunkToolCall => ({ index: toolCount + i, id: c.id, type: 'function', function: { ...c.function } }));
        toolCount += calls.length;
      }
      if (first) {
        first = false;
        yield { data: frame(choice({ role: 'assistant', content: '', ...delta }, null)) };
      } else if (Object.keys(delta).length > 0) {
        yield { data: frame(choice(delta, null)) };
      }

      if (o.done === true) {
        done = true;
        yield { data: frame(choice({}, finishReasonOf(o.done_reason, toolCount > 0))) };
        const usage = usageOf(o);
        yield { data: frame([], usage), usage };
        break;
      }
    }
  } catch (err) {
    throw mapTransportError(err, label, true);
  }
  if (!done) throw new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${label}: upstream stream ended before its final (done) line`);
}
