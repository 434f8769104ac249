/**
 * The stream translators fed byte by byte with recorded vendor streams (fixtures/README.md says where each
 * comes from). Every fixture is replayed whole, one byte at a time and in 7-byte pieces: the output must be the
 * same, so no translator depends on how the network splits the body. Truncated replays must fail, never end
 * as a success.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { anthropicStream } from '../../src/providers/anthropic/stream.js';
import { ollamaStream } from '../../src/providers/ollama/stream.js';
import { openAiStream } from '../../src/providers/openai/stream.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import type { ChatCompletionChunk } from '../../src/wire/openai.js';
import { gatewayErrorOf } from '../helpers/gateway-error.js';

const fixture = (name: string): Buffer => readFileSync(new URL(`./fixtures/${name}`, import.meta.url));

/** The body as the network might deliver it: whole, or cut every `size` bytes. */
async function* pieces(bytes: Buffer, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < bytes.length; i += size) yield bytes.subarray(i, i + size);
}
const SPLITS = [Number.MAX_SAFE_INTEGER, 1, 7];

type Translate = (body: AsyncIterable<Uint8Array>) => AsyncIterable<StreamChunk>;

async function collect(translate: Translate, bytes: Buffer, size: number): Promise<StreamChunk[]> {
  const out: StreamChunk[] = [];
  for await (const c of translate(pieces(bytes, size))) out.push(c);
  return out;
}

/**
 * Replays under every split, checks they agree, returns the chunks and their parsed payloads. `stable` masks
 * what a translator generates per stream (Ollama has no ids: the gateway makes them up) before comparing.
 */
async function replay(
  translate: Translate,
  bytes: Buffer,
  stable: (data: string) => string = (d) => d,
): Promise<{ raw: StreamChunk[]; chunks: ChatCompletionChunk[] }> {
  const runs = await Promise.all(SPLITS.map((size) => collect(translate, bytes, size)));
  for (const run of runs.slice(1)) expect(run.map((c) => stable(c.data))).toEqual(runs[0]!.map((c) => stable(c.data)));
  const raw = runs[0]!;
  return { raw, chunks: raw.map((c) => JSON.parse(c.data) as ChatCompletionChunk) };
}

const failure = (translate: Translate, bytes: Buffer): Promise<GatewayError> => gatewayErrorOf(collect(translate, bytes, 7));

const text = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
const finishes = (chunks: ChatCompletionChunk[]) => chunks.map((c) => c.choices[0]?.finish_reason).filter((f) => f);
/** The bytes up to (not including) the first occurrence of `marker`. */
const cutBefore = (bytes: Buffer, marker: string): Buffer => bytes.subarray(0, bytes.indexOf(marker));

describe('openai: recorded chat.completion stream', () => {
  const oa: Translate = (b) => openAiStream(b, 'oa');
  const bytes = fixture('openai/text.sse');

  it('relays every chunk byte-identical, marks the usage chunk, ends at [DONE]', async () => {
    const { raw, chunks } = await replay(oa, bytes);
    const sent = bytes
      .toString('utf8')
      .split('\n\n')
      .filter((b) => b.startsWith('data: {'))
      .map((b) => b.slice('data: '.length));
    expect(raw.map((c) => c.data)).toEqual(sent);
    expect(chunks[0]!.choices[0]!.delta).toMatchObject({ role: 'assistant', content: '' });
    expect(text(chunks)).toBe('**Holiday Name:** Harmony Day.');
    expect(finishes(chunks)).toEqual(['stop']);
    expect(raw.filter((c) => c.usage).map((c) => c.usage)).toEqual([expect.objectContaining({ prompt_tokens: 16, completion_tokens: 300, total_tokens: 316 })]);
    expect(raw.at(-1)!.usage).toBeDefined();
  });

  it('a body cut before [DONE] is an abnormal end', async () => {
    const err = await failure(oa, cutBefore(bytes, 'data: [DONE]'));
    expect(err.code).toBe('UPSTREAM_STREAM_ERROR');
  });
});

describe('anthropic: recorded Messages streams', () => {
  const an: Translate = (b) => anthropicStream(b, 'an', { model: 'claude-requested' }, 1_700_000_000);

  it('text: role chunk, the text in order, end_turn → stop, usage from message_start + message_delta', async () => {
    const { raw, chunks } = await replay(an, fixture('anthropic/text.sse'));
    expect(chunks[0]!).toMatchObject({
      id: 'msg_01QC4g3HwBThD4BaNtBckFDJ',
      model: 'claude-sonnet-4-5-20250929',
      object: 'chat.completion.chunk',
      created: 1_700_000_000,
    });
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(text(chunks)).toBe("Hello! I'm doing well, thank you for asking. How are you doing today? Is there anything I can help you with?");
    expect(finishes(chunks)).toEqual(['stop']);
    expect(chunks.every((c) => c.id === 'msg_01QC4g3HwBThD4BaNtBckFDJ')).toBe(true);
    const last = raw.at(-1)!;
    expect(JSON.parse(last.data)).toMatchObject({ choices: [] });
    expect(last.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 });
  });

  it('tool use: one tool_calls entry (index 0, id, name), arguments assembled from the deltas, tool_use → tool_calls', async () => {
    const { raw, chunks } = await replay(an, fixture('anthropic/tool-use.sse'));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, id: 'toolu_01KFbKqPYSuAKujiL6mTfzYA', type: 'function', function: { name: 'json', arguments: '' } });
    expect(new Set(calls.map((c) => c.index))).toEqual(new Set([0]));
    const args = calls.map((c) => c.function?.arguments ?? '').join('');
    expect(JSON.parse(args)).toEqual({ elements: [{ location: 'San Francisco', temperature: 58, condition: 'sunny' }] });
    expect(text(chunks)).toBe('');
    expect(finishes(chunks)).toEqual(['tool_calls']);
    expect(raw.at(-1)!.usage).toMatchObject({ prompt_tokens: 849, completion_tokens: 47, total_tokens: 896 });
  });

  it('the in-band overloaded_error event → UPSTREAM_ERROR, retryable', async () => {
    const err = await failure(an, fixture('anthropic/overloaded-error.sse'));
    expect(err.code).toBe('UPSTREAM_ERROR');
    expect(err.retryable).toBe(true);
    expect(err.details).toMatchObject({ upstreamErrorType: 'overloaded_error' });
  });

  it('a body cut before message_stop is an abnormal end', async () => {
    const err = await failure(an, cutBefore(fixture('anthropic/text.sse'), 'event: message_stop'));
    expect(err.code).toBe('UPSTREAM_STREAM_ERROR');
  });
});

describe('ollama: recorded /api/chat NDJSON', () => {
  const ol: Translate = (b) => ollamaStream(b, 'ol', 'requested-model');
  const generatedIds = (data: string) => data.replace(/"id":"[^"]*"/g, '"id":"<generated>"');

  it('chat: role chunk with the first content, finish stop, usage from the final line', async () => {
    const { raw, chunks } = await replay(ol, fixture('ollama/chat.ndjson'), generatedIds);
    expect(chunks[0]!).toMatchObject({ object: 'chat.completion.chunk', model: 'llama3.2' });
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: 'The' });
    expect(text(chunks)).toBe('The');
    expect(finishes(chunks)).toEqual(['stop']);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(raw.at(-1)!.usage).toMatchObject({ prompt_tokens: 26, completion_tokens: 282, total_tokens: 308 });
  });

  it('tool call: object arguments become one complete tool_calls entry, finish tool_calls', async () => {
    const { raw, chunks } = await replay(ol, fixture('ollama/tool-call.ndjson'), generatedIds);
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_current_weather' } });
    expect(typeof calls[0]!.id).toBe('string');
    expect(JSON.parse(calls[0]!.function!.arguments!)).toEqual({ format: 'celsius', location: 'Paris, FR' });
    expect(finishes(chunks)).toEqual(['tool_calls']);
    expect(raw.at(-1)!.usage).toMatchObject({ prompt_tokens: 122, completion_tokens: 33, total_tokens: 155 });
  });

  it('a body cut before the done line is an abnormal end', async () => {
    const bytes = fixture('ollama/chat.ndjson');
    const err = await failure(ol, bytes.subarray(0, bytes.indexOf('\n') + 1));
    expect(err.code).toBe('UPSTREAM_STREAM_ERROR');
  });
});
