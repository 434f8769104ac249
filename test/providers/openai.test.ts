import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { createOpenAiProvider } from '../../src/providers/openai/index.js';
import type { ChannelProvider } from '../../src/providers/provider.js';
import type { ChatRequest } from '../../src/wire/openai.js';
import { openAiVector, startOpenAiUpstream, type OpenAiFake, type OpenAiFakeOptions, type OpenAiScenario } from '../fakes/openai-upstream.js';
import { collect, runConformance } from './conformance.js';

runConformance({ name: 'openai', create: createOpenAiProvider, start: (s) => startOpenAiUpstream(s), supportsEmbeddings: true });
runConformance({
  name: 'vllm (openai-compatible, no key)',
  create: createOpenAiProvider,
  start: (s) => startOpenAiUpstream(s, { provider: 'vllm' }),
  supportsEmbeddings: true,
});

const opts = () => ({ signal: new AbortController().signal, requestId: 'req_oa_1' });
const req = (over: Partial<ChatRequest> = {}): ChatRequest => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], ...over });

describe('openai provider against the fake upstream', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  const setup = async (
    s: OpenAiScenario,
    fake: OpenAiFakeOptions = {},
    over: Record<string, unknown> = {},
  ): Promise<{ up: OpenAiFake; p: ChannelProvider }> => {
    const up = await startOpenAiUpstream(s, fake);
    const p = createOpenAiProvider({ ...up.channel, ...over });
    open.push(up, p);
    return { up, p };
  };

  it('posts to <baseUrl>/chat/completions with the Bearer key, channel headers and the request id', async () => {
    const { up, p } = await setup({ reply: 'ok' }, {}, { headers: { 'x-team': 'blue' } });
    await p.chat(req(), opts());
    expect(up.lastPath()).toBe('/v1/chat/completions');
    expect(up.lastHeaders()).toMatchObject({
      authorization: 'Bearer sk-fake-openai',
      'x-team': 'blue',
      'x-request-id': 'req_oa_1',
      'content-type': 'application/json',
    });
  });

  it('vllm: no apiKey configured → no Authorization header is sent', async () => {
    const { up, p } = await setup({ reply: 'ok' }, { provider: 'vllm' });
    expect(up.channel.apiKey).toBeUndefined();
    expect(up.channel.provider).toBe('vllm');
    const out = await p.chat(req({ stream: true }), opts());
    await collect(out);
    expect(up.lastHeaders()).toBeDefined();
    expect(up.lastHeaders()!.authorization).toBeUndefined();
    await p.embeddings!({ model: 'e5', input: 'x' }, opts());
    expect(up.lastPath()).toBe('/v1/embeddings');
    expect(up.lastHeaders()!.authorization).toBeUndefined();
  });

  it('passes unknown request fields through untouched (non-stream: the body is exactly what was given)', async () => {
    const { up, p } = await setup({ reply: 'ok' });
    const sent = req({
      temperature: 0.3,
      logit_bias: { '50256': -100 },
      metadata: { team: 'blue' },
      vendor_extension: { nested: [1, { deep: true }], s: 'x' },
      guided_json: { type: 'object' },
      top_k: 20,
      response_format: { type: 'json_object' },
    });
    await p.chat(sent, opts());
    expect(up.lastRequest()).toEqual(sent);
  });

  it('streams: unknown fields pass through and stream_options.include_usage is always asked for (other stream_options kept)', async () => {
    const { up, p } = await setup({ reply: 'a b' });
    const sent = req({ stream: true, repetition_penalty: 1.1, chat_template_kwargs: { enable_thinking: false } });
    const { raw } = await collect(await p.chat(sent, opts()));
    expect(up.lastRequest()).toEqual({ ...sent, stream_options: { include_usage: true } });
    expect(raw.at(-1)!.usage).toMatchObject({ prompt_tokens: expect.any(Number), completion_tokens: 2 });

    await collect(await p.chat(req({ stream: true, stream_options: { include_usage: false, continuous_usage_stats: true } }), opts()));
    expect(up.lastRequest()!.stream_options).toEqual({ include_usage: true, continuous_usage_stats: true });

    await collect(await p.chat(req({ stream: true, stream_options: null }), opts()));
    expect(up.lastRequest()!.stream_options).toEqual({ include_usage: true });
  });

  it('non-stream requests get no stream_options added (the real API rejects stream_options without stream)', async () => {
    const { up, p } = await setup({ reply: 'ok' });
    const out = await p.chat(req(), opts());
    expect(out.stream).toBe(false);
    expect(up.lastRequest()).not.toHaveProperty('stream_options');
  });

  it('relays each chunk as the upstream sent it, in order, as it arrives', async () => {
    const { p } = await setup({ reply: 'w1 w2 w3 w4', chunkDelayMs: 120 });
    const out = await p.chat(req({ stream: true }), opts());
    if (!out.stream) throw new Error('expected a stream');
    const at: number[] = [];
    const texts: string[] = [];
    for await (const c of out.chunks) {
      const d = JSON.parse(c.data) as { choices: Array<{ delta: { content?: string } }> };
      if (d.choices[0]?.delta.content) {
        at.push(Date.now());
        texts.push(d.choices[0].delta.content);
      }
    }
    expect(texts).toEqual(['w1', ' w2', ' w3', ' w4']);
    expect(at[3]! - at[0]!).toBeGreaterThanOrEqual(300);
  });

  it('a stream whose SSE lines end in \\r\\n or a lone \\r relays the same chunks as one ending in \\n', async () => {
    const texts = async (lineEnd: OpenAiScenario['lineEnd']) => {
      const { p } = await setup({ reply: 'one two three', lineEnd });
      const out = await p.chat(req({ stream: true }), opts());
      if (!out.stream) throw new Error('expected a stream');
      const datas: string[] = [];
      for await (const c of out.chunks) datas.push(c.data);
      return datas.map((d) => (JSON.parse(d) as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? null);
    };
    const lf = await texts('\n');
    expect(lf.join('')).toBe('one two three');
    expect(await texts('\r\n')).toEqual(lf);
    expect(await texts('\r')).toEqual(lf);
  });

  it("maps an upstream 401 (bad key) to UPSTREAM_ERROR (a channel problem, not the client's), with the upstream message", async () => {
    const { p } = await setup({ reply: 'x' }, {}, { apiKey: 'sk-wrong' });
    const err = await p.chat(req(), opts()).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'UPSTREAM_ERROR', status: 502 });
    expect((err as Error).message).toContain('Incorrect API key');
  });

  it('maps an upstream 400 to UPSTREAM_CLIENT_ERROR (400, not retryable)', async () => {
    const { p } = await setup({ failStatus: 400 });
    await expect(p.chat(req(), opts())).rejects.toMatchObject({ code: 'UPSTREAM_CLIENT_ERROR', status: 400, retryable: false });
  });

  it('rejects a 200 reply without choices as UPSTREAM_BAD_RESPONSE', async () => {
    const { up, p } = await setup({ reply: 'x' });
    up.enqueue({ garbage: true });
    await expect(p.chat(req(), opts())).rejects.toMatchObject({ code: 'UPSTREAM_BAD_RESPONSE' });
    // the queue applied to one request only
    const ok = await p.chat(req(), opts());
    expect(ok.stream === false && ok.completion.choices[0]!.message.content).toBe('x');
  });

  it('a stream that goes silent is cut by the channel timeout (undici body timeout) as UPSTREAM_TIMEOUT', async () => {
    const { p } = await setup({ reply: 'a b c d', stallAfterChunks: 1 }, {}, { timeoutMs: 300 });
    const out = await p.chat(req({ stream: true }), opts());
    if (!out.stream) throw new Error('expected a stream');
    const got: string[] = [];
    const err = await (async () => {
      for await (const c of out.chunks) got.push(c.data);
    })().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'UPSTREAM_TIMEOUT' });
    expect(got.some((d) => d.includes('"content":"a"'))).toBe(true);
  });
});

describe('the fake speaks real OpenAI (driven by the official openai SDK)', () => {
  const open: OpenAiFake[] = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  const start = async (s: OpenAiScenario, o: OpenAiFakeOptions = {}) => {
    const up = await startOpenAiUpstream(s, o);
    open.push(up);
    return { up, sdk: new OpenAI({ apiKey: up.channel.apiKey ?? 'unused', baseURL: up.baseUrl, maxRetries: 0 }) };
  };
  const messages = [{ role: 'user' as const, content: 'What is up?' }];

  it('non-stream and stream (with the usage chunk) agree; usage only when asked', async () => {
    const { sdk } = await start({ reply: 'All good here.', usage: { input: 10, output: 4 } });
    const plain = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages });
    expect(plain.choices[0]!.message.content).toBe('All good here.');
    expect(plain.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 });

    const chunks = [];
    for await (const c of await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true, stream_options: { include_usage: true } }))
      chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('All good here.');
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks.slice(0, -1).every((c) => c.usage === null)).toBe(true);
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toMatchObject({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 14 });

    const noUsage = [];
    for await (const c of await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages, stream: true })) noUsage.push(c);
    expect(noUsage.every((c) => c.choices.length === 1 && c.usage === undefined)).toBe(true);
  });

  it('the SDK stream helper reassembles a streamed tool call into the same message as the JSON answer', async () => {
    const { sdk } = await start({ toolCall: { id: 'call_Ab12', name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } });
    const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
    const plain = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages, tools });
    const streamed = await sdk.chat.completions.stream({ model: 'gpt-4o-mini', messages, tools }).finalChatCompletion();
    expect(plain.choices[0]!.finish_reason).toBe('tool_calls');
    expect(plain.choices[0]!.message.tool_calls).toEqual([
      { id: 'call_Ab12', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris","unit":"c"}' } },
    ]);
    expect(streamed.choices[0]!.finish_reason).toBe('tool_calls');
    expect(streamed.choices[0]!.message.tool_calls).toEqual(plain.choices[0]!.message.tool_calls);
  });

  it('errors: status bodies become typed SDK errors; an in-band error throws during iteration', async () => {
    const limited = await start({ failStatus: 429, retryAfter: '20' });
    const e = await limited.sdk.chat.completions.create({ model: 'm', messages }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(OpenAI.RateLimitError);
    expect(e).toMatchObject({ status: 429, code: 'rate_limit_exceeded', type: 'requests' });
    expect((e as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('20');

    const badKey = await start({ reply: 'x' });
    const auth = await new OpenAI({ apiKey: 'sk-nope', baseURL: badKey.up.baseUrl, maxRetries: 0 }).chat.completions.create({ model: 'm', messages }).then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(auth).toBeInstanceOf(OpenAI.AuthenticationError);

    const inband = await start({ reply: 'a b c', inbandError: true });
    const got: string[] = [];
    const thrown = await (async () => {
      for await (const c of await inband.sdk.chat.completions.create({ model: 'm', messages, stream: true })) got.push(c.choices[0]?.delta.content ?? '');
    })().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(thrown).toBeInstanceOf(OpenAI.APIError);
    expect(got.join('')).toBe('a');
  });

  it('embeddings: the SDK (base64 by default) decodes the same vectors as float', async () => {
    const { sdk } = await start({});
    const res = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    expect(res.data.map((d) => d.index)).toEqual([0, 1]);
    expect(res.data[0]!.embedding).toEqual(openAiVector('alpha'));
    const floats = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: 'alpha', encoding_format: 'float', dimensions: 4 });
    expect(floats.data[0]!.embedding).toEqual(openAiVector('alpha', 4));
    expect(res.usage).toEqual({ prompt_tokens: 2, total_tokens: 2 });
  });

  it('rejects what the real API rejects: stream_options without stream, tool message without tool_calls', async () => {
    const { sdk } = await start({ reply: 'x' });
    await expect(sdk.chat.completions.create({ model: 'm', messages, stream_options: { include_usage: true } })).rejects.toMatchObject({
      status: 400,
      param: 'stream_options',
    });
    await expect(sdk.chat.completions.create({ model: 'm', messages: [{ role: 'tool', tool_call_id: 'c1', content: 'r' }] })).rejects.toMatchObject({
      status: 400,
    });
  });
});
