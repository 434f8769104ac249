/**
 * Ollama NDJSON stream → OpenAI chat.completion.chunk StreamChunks, line by line as the lines arrive (never
 * buffered to the end; the shared reader, src/providers/stream-reader.ts, translates the reads already received
 * at once). Pure apart from reading `body`, so it is testable from a recorded byte string.
 *
 * Sequence produced: a first chunk carrying `role: "assistant"`; one chunk per content (or thinking) piece;
 * one chunk per line that carries tool calls, each call complete (id, type, name, whole arguments string);
 * on the `done: true` line a finish_reason chunk, then the usage chunk (`choices: []`), then the stream
 * ends. Anything else ends in a GatewayError:
 * - a line that is not a JSON object → UPSTREAM_BAD_RESPONSE
 * - a line with a non-null `error` (how Ollama reports a failure once streaming started: `{"error": "..."}`) →
 *   the error it reports, by the one rule of an upstream's in-band error (`reportedError`, ../reported-error.ts):
 *   Ollama's bare string names no status (UPSTREAM_STREAM_ERROR); an error object a proxy in front of Ollama
 *   sends is read by its `code`, else its `type`, as on every other channel. It carries the answer's Retry-After
 *   (`retryAfterOf`, read only then). As the stream's first line it is the request's error (nothing was sent yet).
 * - a `done: true` line whose `done_reason` says no reply was generated ("load", "unload": `finishReasonOf`) →
 *   UPSTREAM_BAD_RESPONSE, thrown before any chunk of that line is pushed
 * - the body ends before `done: true` → UPSTREAM_STREAM_ERROR
 * - a transport failure while reading → mapTransportError(…, midStream = true)
 */
import type { IncomingHttpHeaders } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import type { ChatCompletionChunk, ChunkToolCall, FinishReason, Usage } from '../../wire/openai.js';
import type { ChunkStream, StreamChunk } from '../provider.js';
import { ndjsonStream, type StreamTranslator } from '../stream-reader.js';
import { retryAfterOf } from '../upstream.js';
import { reportedError } from '../reported-error.js';
import { createdOf, finishReasonOf, toOpenAiToolCalls, usageOf } from './response.js';
import { chatCompletionId } from '../../util/ids.js';
import type { OllamaChatResponse } from './wire.js';

type Delta = ChatCompletionChunk['choices'][number]['delta'];

/** The translation's state for one stream: its id, created time, model and tool calls so far. */
class OllamaTranslation implements StreamTranslator {
  private readonly id = chatCompletionId();
  private created: number | undefined;
  private toolCount = 0;
  private first = true;

  constructor(
    private readonly label: string,
    private model: string,
    /** the answer's headers: an in-band error carries their Retry-After */
    private readonly headers: IncomingHttpHeaders | undefined,
  ) {}

  event(line: string, _name: string | undefined, out: StreamChunk[]): boolean {
    if (line.trim() === '') return false;
    const label = this.label;
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
    if (o.error !== undefined && o.error !== null) throw reportedError(o.error, label, 'stream', retryAfterOf(this.headers));
    if (this.created === undefined) this.created = createdOf(o.created_at);
    if (typeof o.model === 'string' && o.model) this.model = o.model;
    const m = o.message;
    if (m !== undefined && (m === null || typeof m !== 'object')) {
      throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream stream line has a malformed message`);
    }

    const delta: Delta = {};
    // as the non-streaming answer: content that is not a string is a bad answer, not an empty one
    if (m?.content !== undefined && m.content !== null && typeof m.content !== 'string') {
      throw new GatewayError('UPSTREAM_BAD_RESPONSE', `channel ${label}: upstream stream line has content that is not a string`);
    }
    if (typeof m?.content === 'string' && m.content !== '') delta.content = m.content;
    if (typeof m?.thinking === 'string' && m.thinking !== '') delta.reasoning_content = m.thinking;
    const calls = toOpenAiToolCalls(m?.tool_calls, this.toolCount, label);
    if (calls.length) {
      delta.tool_calls = calls.map((c, i): ChunkToolCall => ({ index: this.toolCount + i, id: c.id, type: 'function', function: { ...c.function } }));
      this.toolCount += calls.length;
    }
    // the final line's reason is read before any chunk of it is pushed: a reason that is no reply ends the stream
    // with nothing of this line sent (as the first line, the request's error)
    const finish = o.done === true ? finishReasonOf(o.done_reason, this.toolCount > 0, label) : null;
    if (this.first) {
      this.first = false;
      out.push({ data: this.frame(choice({ role: 'assistant', content: '', ...delta }, null)) });
    } else if (Object.keys(delta).length > 0) {
      out.push({ data: this.frame(choice(delta, null)) });
    }

    if (o.done !== true) return false;
    out.push({ data: this.frame(choice({}, finish)) });
    const usage = usageOf(o);
    out.push({ data: this.frame([], usage), usage });
    return true;
  }

  unterminated(): GatewayError {
    return new GatewayError('UPSTREAM_STREAM_ERROR', `channel ${this.label}: upstream stream ended before its final (done) line`);
  }

  private frame(choices: ChatCompletionChunk['choices'], usage?: Usage): string {
    const c: ChatCompletionChunk = { id: this.id, object: 'chat.completion.chunk', created: this.created ?? createdOf(undefined), model: this.model, choices };
    if (usage) c.usage = usage;
    return JSON.stringify(c);
  }
}

const choice = (delta: Delta, finish: FinishReason) => [{ index: 0, delta, finish_reason: finish, logprobs: null }];

/** `headers`: the answer's, whose Retry-After an in-band error carries (read only when there is one). */
export function ollamaStream(
  body: AsyncIterable<Uint8Array | string>,
  label: string,
  requestedModel: string,
  headers?: IncomingHttpHeaders,
): ChunkStream & AsyncIterable<StreamChunk> {
  return ndjsonStream(body, new OllamaTranslation(label, requestedModel, headers), label);
}
