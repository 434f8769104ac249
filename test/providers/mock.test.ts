import { describe, expect, it } from 'vitest';
import { createMockProvider, mockAnswer } from '../../src/providers/mock/index.js';
import type { ChannelProvider, ChatOutcome } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import type { ChatCompletion, ChatRequest } from '../../src/wire/openai.js';
import { collect } from './conformance.js';

const mock = (options: Record<string, unknown> = {}): ChannelProvider => createMockProvider({ name: 'mock-ch', provider: 'mock', options });
const opts = (signal = new AbortController().signal) => ({ signal, requestId: 'req_mock' });
const req = (content: string, over: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'mock-1', messages: [{ role: 'user', content }], ...over });
const tools: ChatRequest['tools'] = [
  { type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
  { type: 'function', function: { name: 'search', parameters: { type: 'object' } } },
];

function completion(out: ChatOutcome): ChatCompletion {
  if (out.stream) throw new Error('expected a non-stream answer');
  return out.completion;
}

async function settle<T>(p: Promise<T>): Promise<{ ok: true; value: T } | { ok: false; error: GatewayError }> {
  try {
    return { ok: true, value: await p };
  } catch (error) {
    expect(error).toBeInstanceOf(GatewayError);
    return { ok: false, error: error as GatewayError };
  }
}

const contentChunks = (chunks: Awaited<ReturnType<typeof collect>>['chunks']) => chunks.map((c) => c.choices[0]?.delta.content ?? '').filter((t) => t !== '');

describe('mock provider', () => {
  it('is flagged as a mock (kind and the synthetic capability) and has embeddings', () => {
    const p = mock();
    expect(p.capabilities.synthetic).toBe(true);
    expect(p.capabilities.embeddings).toBe(true);
    expect(p.kind).toBe('mock');
    expect(p.embeddings).toBeTypeOf('function');
  });

  it('replies deterministically from the prompt: same input → same output, different prompt → different output', async () => {
    const p = mock();
    const a1 = completion(await p.chat(req('tell me about trains'), opts()));
    const a2 = completion(await mock().chat(req('tell me about trains'), opts()));
    const b = completion(await p.chat(req('tell me about boats'), opts()));
    expect(a1.choices[0]!.message.content).toBe(a2.choices[0]!.message.content);
    expect(a1.id).toBe(a2.id);
    expect(a1.choices[0]!.message.content).toContain('tell me about trains');
    expect(a1.choices[0]!.message.content).toMatch(/mock/i); // labelled as a mock in the reply itself
    expect(b.choices[0]!.message.content).not.toBe(a1.choices[0]!.message.content);
    expect(b.id).not.toBe(a1.id);
    expect(a1).toMatchObject({ object: 'chat.completion', model: 'mock-1', choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant' } }] });
    expect(a1.usage!.total_tokens).toBe(a1.usage!.prompt_tokens! + a1.usage!.completion_tokens!);
    expect(a1.usage!.completion_tokens).toBeGreaterThan(0);
  });

  it('streams the same text as the non-stream answer, role first, usage chunk last', async () => {
    const p = mock();
    const plain = completion(await p.chat(req('count the words please'), opts()));
    const { chunks, raw } = await collect(await p.chat(req('count the words please', { stream: true }), opts()));
    expect(contentChunks(chunks).join('')).toBe(plain.choices[0]!.message.content);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
    expect(raw.at(-1)!.usage).toEqual(plain.usage);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(raw.slice(0, -1).every((c) => c.usage === undefined)).toBe(true);
  });

  it('chunks: 0 (default) = one chunk per word; chunks: N = exactly N content chunks', async () => {
    const words = await collect(await mock({ reply: 'one two three four five' }).chat(req('x', { stream: true }), opts()));
    expect(contentChunks(words.chunks)).toEqual(['one ', 'two ', 'three ', 'four ', 'five']);
    for (const [text, n] of [
      ['abcdefghijkl', 3],
      ['abcdefghijkl', 5],
      ['abcdefghi', 4],
      ['a longer reply that has some length to it', 7],
    ] as const) {
      const { chunks } = await collect(await mock({ reply: text, chunks: n }).chat(req('x', { stream: true }), opts()));
      const got = contentChunks(chunks);
      expect(got.join(''), `${text} / ${n}`).toBe(text);
      expect(got.length, `"${text}" in ${n} chunks gave ${JSON.stringify(got)}`).toBe(n);
    }
  });

  it('delayMs delays the answer; chunkDelayMs spaces the chunks', async () => {
    let t0 = Date.now();
    await mock({ delayMs: 200 }).chat(req('x'), opts());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(190);

    t0 = Date.now();
    const out = await mock({ reply: 'a b c d', chunkDelayMs: 80 }).chat(req('x', { stream: true }), opts());
    expect(Date.now() - t0).toBeLessThan(200); // the stream starts at once (all four delays would be 320 ms)
    if (!out.stream) throw new Error('expected a stream');
    const at: number[] = [];
    for await (const c of out.chunks) if (JSON.parse(c.data).choices[0]?.delta.content) at.push(Date.now() - t0);
    expect(at).toHaveLength(4);
    expect(at[3]! - at[0]!).toBeGreaterThanOrEqual(3 * 80 - 15);
  });

  it('an abort during the delay rejects with CANCELLED', async () => {
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 50);
    const t0 = Date.now();
    const r = await settle(mock({ delayMs: 5_000 }).chat(req('x'), opts(ac.signal)));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.code).toBe('CANCELLED');
    expect(Date.now() - t0).toBeLessThan(1_000);
  });

  it('failEvery: every Nth request fails with a retryable UPSTREAM_ERROR (500 by default)', async () => {
    const p = mock({ failEvery: 3 });
    const results = [];
    for (let i = 0; i < 7; i++) results.push(await settle(p.chat(req(`n${i}`), opts())));
    expect(results.map((r) => r.ok)).toEqual([true, true, false, true, true, false, true]);
    const failed = results[2]!;
    if (failed.ok) throw new Error('unreachable');
    expect(failed.error).toMatchObject({ code: 'UPSTREAM_ERROR', status: 502, retryable: true });
    expect(failed.error.details).toMatchObject({ upstreamStatus: 500 });
  });

  it('failFirst: the first N requests fail, later ones succeed (streams too)', async () => {
    const p = mock({ failFirst: 2 });
    expect((await settle(p.chat(req('a', { stream: true }), opts()))).ok).toBe(false);
    expect((await settle(p.chat(req('a'), opts()))).ok).toBe(false);
    expect((await settle(p.chat(req('a', { stream: true }), opts()))).ok).toBe(true);
    expect((await settle(p.chat(req('a'), opts()))).ok).toBe(true);
  });

  it('failStatus: 429 → RATE_LIMITED with Retry-After, 503 → 503, 400 → UPSTREAM_CLIENT_ERROR', async () => {
    const limited = await settle(mock({ failFirst: 1, failStatus: 429 }).chat(req('x'), opts()));
    if (limited.ok) throw new Error('expected a failure');
    expect(limited.error).toMatchObject({ code: 'RATE_LIMITED', status: 429, retryable: true });
    expect(limited.error.retryAfterSec).toBeGreaterThan(0);
    const unavailable = await settle(mock({ failFirst: 1, failStatus: 503 }).chat(req('x'), opts()));
    if (unavailable.ok) throw new Error('expected a failure');
    expect(unavailable.error).toMatchObject({ code: 'UPSTREAM_ERROR', status: 503 });
    const bad = await settle(mock({ failFirst: 1, failStatus: 400 }).chat(req('x'), opts()));
    if (bad.ok) throw new Error('expected a failure');
    expect(bad.error).toMatchObject({ code: 'UPSTREAM_CLIENT_ERROR', retryable: false });
  });

  it('failMidStream: the stream starts, delivers some content, then throws UPSTREAM_STREAM_ERROR (never a clean end)', async () => {
    const out = await mock({ reply: 'one two three four five six', failMidStream: true }).chat(req('x', { stream: true }), opts());
    if (!out.stream) throw new Error('expected a stream');
    const got: string[] = [];
    let error: unknown;
    try {
      for await (const c of out.chunks) got.push(JSON.parse(c.data).choices[0]?.delta.content ?? '');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(GatewayError);
    expect((error as GatewayError).code).toBe('UPSTREAM_STREAM_ERROR');
    expect(got.join('')).toBe('one two three ');
    expect(got.join('')).not.toContain('six');
  });

  it('with tools: calls a tool (the first, or the one tool_choice names) with the prompt; tool_choice "none" → text', async () => {
    const p = mock();
    const first = completion(await p.chat(req('weather in Oslo', { tools }), opts()));
    expect(first.choices[0]!.finish_reason).toBe('tool_calls');
    expect(first.choices[0]!.message.content).toBeNull();
    const call = first.choices[0]!.message.tool_calls![0]!;
    expect(call).toMatchObject({ type: 'function', function: { name: 'get_weather' } });
    expect(call.id).toMatch(/\S/);
    expect(JSON.parse(call.function.arguments)).toEqual({ input: 'weather in Oslo' });

    const named = completion(await p.chat(req('find it', { tools, tool_choice: { type: 'function', function: { name: 'search' } } }), opts()));
    expect(named.choices[0]!.message.tool_calls![0]!.function.name).toBe('search');

    const none = completion(await p.chat(req('just talk', { tools, tool_choice: 'none' }), opts()));
    expect(none.choices[0]!.finish_reason).toBe('stop');
    expect(none.choices[0]!.message.tool_calls).toBeUndefined();
    expect(none.choices[0]!.message.content).toContain('just talk');
  });

  it('streams a tool call: name and id first with empty arguments, then the arguments; finish tool_calls', async () => {
    const { chunks } = await collect(await mock().chat(req('weather in Rome', { stream: true, tools }), opts()));
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(calls[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather', arguments: '' } });
    expect(calls[0]!.id).toMatch(/\S/);
    expect(JSON.parse(calls.map((c) => c.function?.arguments ?? '').join(''))).toEqual({ input: 'weather in Rome' });
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'tool_calls')).toBe(true);
    expect(contentChunks(chunks)).toEqual([]);
  });

  it('after a tool result, replies with text that reports it', async () => {
    const p = mock();
    const followUp: ChatRequest = {
      model: 'mock-1',
      tools,
      messages: [
        { role: 'user', content: 'weather in Oslo' },
        {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"input":"weather in Oslo"}' } }],
        },
        { role: 'tool', tool_call_id: 'call_1', content: 'sunny, 21C' },
      ],
    };
    const out = completion(await p.chat(followUp, opts()));
    expect(out.choices[0]!.finish_reason).toBe('stop');
    expect(out.choices[0]!.message.tool_calls).toBeUndefined();
    expect(out.choices[0]!.message.content).toContain('sunny, 21C');
    expect(mockAnswer(followUp).text).toBe(out.choices[0]!.message.content);
  });

  it('embeddings are deterministic per input, sized by embeddingDims, and base64 decodes to the float vector', async () => {
    const p = mock({ embeddingDims: 12 });
    const a = await p.embeddings!({ model: 'mock-embed', input: ['alpha', 'beta'] }, opts());
    const again = await mock({ embeddingDims: 12 }).embeddings!({ model: 'mock-embed', input: 'alpha' }, opts());
    expect(a).toMatchObject({ object: 'list', model: 'mock-embed', usage: { prompt_tokens: 2, total_tokens: 2 } });
    expect(a.data.map((d) => d.index)).toEqual([0, 1]);
    const va = a.data[0]!.embedding as number[];
    const vb = a.data[1]!.embedding as number[];
    expect(va).toHaveLength(12);
    expect(again.data[0]!.embedding).toEqual(va);
    expect(vb).not.toEqual(va);
    expect(va.every((x) => Number.isFinite(x) && x >= -1 && x <= 1)).toBe(true);
    const b64 = await p.embeddings!({ model: 'mock-embed', input: 'alpha', encoding_format: 'base64' }, opts());
    const decoded = Array.from(new Float32Array(Uint8Array.from(Buffer.from(b64.data[0]!.embedding as string, 'base64')).buffer));
    expect(decoded).toHaveLength(12);
    decoded.forEach((x, i) => expect(x).toBeCloseTo(va[i]!, 6));
    const dflt = await mock().embeddings!({ model: 'e', input: 'alpha' }, opts());
    expect(dflt.data[0]!.embedding).toHaveLength(8);
  });

  it("embeddings: a flat token array is one input; more than 2048 inputs are refused (OpenAI's limit), not answered", async () => {
    const one = await mock().embeddings!({ model: 'e', input: [1, 2, 3, 4] }, opts());
    expect(one.data).toHaveLength(1);
    expect(one.usage.prompt_tokens).toBe(4);
    expect((await mock().embeddings!({ model: 'e', input: Array.from({ length: 2048 }, () => 'w') }, opts())).data).toHaveLength(2048);
    const r = await settle(mock().embeddings!({ model: 'e', input: Array.from({ length: 2049 }, () => 'w') }, opts()));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toMatchObject({ code: 'INVALID_REQUEST', param: 'input' });
  });

  it('embeddings honour the injected failures too', async () => {
    const r = await settle(mock({ failFirst: 1 }).embeddings!({ model: 'e', input: 'x' }, opts()));
    expect(r.ok).toBe(false);
  });
});
