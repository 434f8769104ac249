/**
 * /v1 end to end, happy paths: the official openai SDK drives an in-process gateway whose channels point at
 * fake upstreams speaking each provider's real wire format (OpenAI, vLLM, Anthropic, Ollama) plus the
 * built-in mock. Chat (stream and not), tools, usage, request ids, channel headers, /v1/models,
 * /v1/embeddings, health endpoints and client auth.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { fakeVector, startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { openAiVector, startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { call, channelOf, chatBody, expectOpenAiError, sdk, sseData, startGw } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const WEATHER_TOOL = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'current weather',
    parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
  },
};
const TOOL_ARGS = '{"city":"Paris","unit":"celsius"}';

let gw: Gateway;
let client: OpenAI;
let oa: OpenAiFake;
let vl: OpenAiFake;
let an: FakeUpstream;
let ol: FakeUpstream;
const { ups: fakes, trackGateway } = stopAfterAll();

beforeAll(async () => {
  oa = await startOpenAiUpstream({ reply: 'Hello from the OpenAI fake.', usage: { input: 12, output: 6 } });
  vl = await startOpenAiUpstream({ reply: 'Hello from the vLLM fake.', usage: { input: 9, output: 5 } }, { provider: 'vllm' });
  an = await startAnthropicUpstream({ reply: 'Hello from the Anthropic fake.', usage: { input: 14, output: 5 } });
  ol = await startOllamaUpstream({ reply: 'Hello from the Ollama fake.', usage: { input: 8, output: 5 } });
  const oaTools = await startOpenAiUpstream({ toolCall: { id: 'call_oa_1', name: 'get_weather', arguments: TOOL_ARGS } });
  const anTools = await startAnthropicUpstream({ toolCall: { id: 'toolu_01A', name: 'get_weather', arguments: TOOL_ARGS } });
  const olTools = await startOllamaUpstream({ toolCall: { id: 'x', name: 'get_weather', arguments: TOOL_ARGS } });
  fakes.push(oa, vl, an, ol, oaTools, anTools, olTools);
  gw = await startGw({
    channels: [
      channelOf(oa, 'oa', ['gpt-4o-mini', 'shared-model', 'text-embedding-3-small', 'gpt-public'], { modelMap: { 'gpt-public': 'gpt-4o-2024-08-06' } }),
      channelOf(vl, 'vl', ['qwen2.5-7b', 'bge-m3']),
      channelOf(an, 'an', ['claude-sonnet-4-5']),
      channelOf(ol, 'ol', ['llama3', 'nomic-embed-text']),
      channelOf(oaTools, 'oa-tools', ['gpt-tools']),
      channelOf(anTools, 'an-tools', ['claude-tools']),
      channelOf(olTools, 'ol-tools', ['llama-tools']),
      { name: 'mk', provider: 'mock', models: ['mock-1', 'shared-model'] },
    ],
  });
  trackGateway(gw);
  client = sdk(gw);
});

const PROMPT = 'Say hello, please.';
const messages = [
  { role: 'system' as const, content: 'You are terse.' },
  { role: 'user' as const, content: PROMPT },
];

/** one row per provider kind: the model to ask, the channel that must answer, what it says and counts */
const KINDS = [
  {
    kind: 'openai',
    model: 'gpt-4o-mini',
    channel: 'oa',
    reply: 'Hello from the OpenAI fake.',
    usage: { prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 },
  },
  { kind: 'vllm', model: 'qwen2.5-7b', channel: 'vl', reply: 'Hello from the vLLM fake.', usage: { prompt_tokens: 9, completion_tokens: 5, total_tokens: 14 } },
  {
    kind: 'anthropic',
    model: 'claude-sonnet-4-5',
    channel: 'an',
    reply: 'Hello from the Anthropic fake.',
    usage: { prompt_tokens: 14, completion_tokens: 5, total_tokens: 19 },
  },
  { kind: 'ollama', model: 'llama3', channel: 'ol', reply: 'Hello from the Ollama fake.', usage: { prompt_tokens: 8, completion_tokens: 5, total_tokens: 13 } },
  { kind: 'mock', model: 'mock-1', channel: 'mk', reply: undefined, usage: undefined },
] as const;

describe.each(KINDS)('chat through a $kind channel (openai SDK)', ({ model, channel, reply, usage }) => {
  it('non-stream: text, finish_reason, usage, and the channel header', async () => {
    const { data, response } = await client.chat.completions.create({ model, messages }).withResponse();
    expect(response.status).toBe(200);
    expect(response.headers.get('x-switchyard-channel')).toBe(channel);
    expect(response.headers.get('x-request-id')).toMatch(/\S/);
    expect(data.object).toBe('chat.completion');
    expect(data.choices[0]!.finish_reason).toBe('stop');
    expect(data.choices[0]!.message.role).toBe('assistant');
    if (reply) expect(data.choices[0]!.message.content).toBe(reply);
    else expect(data.choices[0]!.message.content).toContain(PROMPT); // the mock answers from the prompt
    if (usage) expect(data.usage).toMatchObject(usage);
    else expect(data.usage!.total_tokens).toBe(data.usage!.prompt_tokens + data.usage!.completion_tokens);
    if (channel === 'mk') expect(response.headers.get('x-switchyard-mock')).toBe('true');
    else expect(response.headers.get('x-switchyard-mock')).toBeNull();
  });

  it('stream: chunks carry the text, finish_reason stop, and the usage chunk the client asked for', async () => {
    const { data: stream, response } = await client.chat.completions
      .create({ model, messages, stream: true, stream_options: { include_usage: true } })
      .withResponse();
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(response.headers.get('x-switchyard-channel')).toBe(channel);
    const chunks = [];
    for await (const c of stream) chunks.push(c);
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    if (reply) expect(text).toBe(reply);
    else expect(text).toContain(PROMPT);
    expect(chunks.filter((c) => c.choices[0]?.delta.content).length).toBeGreaterThan(1);
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
    const last = chunks.at(-1)!;
    expect(last.choices).toEqual([]);
    if (usage) expect(last.usage).toMatchObject(usage);
    else expect(last.usage!.completion_tokens).toBeGreaterThan(0);
    expect(chunks.filter((c) => c.usage).length).toBe(1);
  });
});

const TOOL_KINDS = [
  { kind: 'openai', model: 'gpt-tools', channel: 'oa-tools', args: JSON.parse(TOOL_ARGS), id: 'call_oa_1' },
  { kind: 'anthropic', model: 'claude-tools', channel: 'an-tools', args: JSON.parse(TOOL_ARGS), id: 'toolu_01A' },
  { kind: 'ollama', model: 'llama-tools', channel: 'ol-tools', args: JSON.parse(TOOL_ARGS), id: undefined },
  { kind: 'mock', model: 'mock-1', channel: 'mk', args: { input: 'What is the weather in Paris?' }, id: undefined },
] as const;

describe.each(TOOL_KINDS)('tool calls through a $kind channel (openai SDK)', ({ model, channel, args, id }) => {
  const ask = [{ role: 'user' as const, content: 'What is the weather in Paris?' }];

  it('non-stream: tool_calls with name and JSON arguments, finish_reason tool_calls', async () => {
    const { data, response } = await client.chat.completions.create({ model, messages: ask, tools: [WEATHER_TOOL] }).withResponse();
    expect(response.headers.get('x-switchyard-channel')).toBe(channel);
    const choice = data.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    const call = choice.message.tool_calls?.[0];
    expect(call?.type).toBe('function');
    if (call?.type !== 'function') throw new Error('expected a function tool call');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual(args);
    if (id) expect(call.id).toBe(id);
    else expect(call.id).toMatch(/\S/);
  });

  it('stream: the SDK stream helper reassembles the same tool call', async () => {
    const final = await client.chat.completions.stream({ model, messages: ask, tools: [WEATHER_TOOL] }).finalChatCompletion();
    const choice = final.choices[0]!;
    expect(choice.finish_reason).toBe('tool_calls');
    expect(choice.message.tool_calls).toHaveLength(1);
    const call = choice.message.tool_calls![0]!;
    if (call.type !== 'function') throw new Error('expected a function tool call');
    expect(call.function.name).toBe('get_weather');
    expect(JSON.parse(call.function.arguments)).toEqual(args);
    if (id) expect(call.id).toBe(id);
  });
});

describe('tool results go back upstream', () => {
  const turn = [
    { role: 'user' as const, content: 'Weather in Oslo?' },
    {
      role: 'assistant' as const,
      content: null,
      tool_calls: [{ id: 'call_77', type: 'function' as const, function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } }],
    },
    { role: 'tool' as const, tool_call_id: 'call_77', content: 'sunny, 21C' },
  ];

  it('anthropic: the tool result reaches the Messages API as a tool_result block', async () => {
    const res = await client.chat.completions.create({ model: 'claude-sonnet-4-5', messages: turn, tools: [WEATHER_TOOL] });
    expect(res.choices[0]!.message.content).toBe('Hello from the Anthropic fake.');
    const sent = an.lastRequest() as { messages: Array<{ role: string; content: Array<Record<string, unknown>> }> };
    const results = sent.messages.flatMap((m) => m.content).filter((b) => b.type === 'tool_result');
    expect(results).toHaveLength(1);
    expect(results[0]).toMatchObject({ tool_use_id: 'call_77' });
    expect(JSON.stringify(results[0])).toContain('sunny, 21C');
  });

  it('openai: the conversation is passed through as sent; mock: reports the tool result', async () => {
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: turn, tools: [WEATHER_TOOL] });
    expect((oa.lastRequest() as { messages: unknown }).messages).toEqual(turn);
    const mock = await client.chat.completions.create({ model: 'mock-1', messages: turn, tools: [WEATHER_TOOL] });
    expect(mock.choices[0]!.finish_reason).toBe('stop');
    expect(mock.choices[0]!.message.content).toContain('sunny, 21C');
  });
});

describe('request ids, pass-through and model mapping', () => {
  it('x-request-id is echoed when sent, generated when not (JSON and SSE), and forwarded upstream', async () => {
    const echoed = await call(gw, '/v1/chat/completions', { body: chatBody('gpt-4o-mini'), headers: { 'x-request-id': 'client-req-0042' } });
    expect(echoed.status).toBe(200);
    expect(echoed.headers.get('x-request-id')).toBe('client-req-0042');
    expect(oa.lastHeaders()!['x-request-id']).toBe('client-req-0042');

    const generated = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1') });
    const gid = generated.headers.get('x-request-id');
    expect(gid).toMatch(/^[A-Za-z0-9._:-]{8,}$/);
    const other = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1') });
    expect(other.headers.get('x-request-id')).not.toBe(gid);

    const streamed = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1', 'hi', { stream: true }), headers: { 'x-request-id': 'stream-req-1' } });
    expect(streamed.headers.get('x-request-id')).toBe('stream-req-1');
    const errored = await call(gw, '/v1/chat/completions', { body: '{', headers: { 'x-request-id': 'bad-req-1' } });
    expect(errored.status).toBe(400);
    expect(errored.headers.get('x-request-id')).toBe('bad-req-1');
  });

  it('every inbound API names the request id on its answers and on its errors (refused before and after the body)', async () => {
    const cases: Array<{ path: string; ok: unknown }> = [
      { path: '/v1/messages', ok: { model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] } },
      { path: '/v1/responses', ok: { model: 'mock-1', input: 'hi' } },
      { path: '/v1beta/models/mock-1:generateContent', ok: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] } },
      { path: '/v1/embeddings', ok: { model: 'mock-1', input: 'hi' } },
    ];
    for (const [i, c] of cases.entries()) {
      const ok = await call(gw, c.path, { body: c.ok, headers: { 'x-request-id': `api-ok-${i}` } });
      expect(ok.status, c.path).toBe(200);
      expect(ok.headers.get('x-request-id'), c.path).toBe(`api-ok-${i}`);
      const bad = await call(gw, c.path, { body: '{', headers: { 'x-request-id': `api-bad-${i}` } });
      expect(bad.status, c.path).toBe(400);
      expect(bad.headers.get('x-request-id'), c.path).toBe(`api-bad-${i}`);
      const unknown = await call(gw, c.path, { body: { ...(c.ok as object), model: 'no-such-model' }, headers: { 'x-request-id': `api-404-${i}` } });
      expect(unknown.headers.get('x-request-id'), c.path).toBe(`api-404-${i}`);
    }
  });

  it('unknown request fields reach an OpenAI-compatible upstream untouched', async () => {
    const body = chatBody('gpt-4o-mini', 'hi', {
      temperature: 0.2,
      top_k: 40,
      vendor_extension: { nested: [1, { deep: true }] },
      logit_bias: { '1734': -100 },
      user: 'u-1',
    });
    const r = await call(gw, '/v1/chat/completions', { body });
    expect(r.status).toBe(200);
    expect(oa.lastRequest()).toEqual(body);
  });

  it('modelMap: the public name is mapped to the upstream name', async () => {
    const r = await client.chat.completions.create({ model: 'gpt-public', messages });
    expect(r.choices[0]!.message.content).toBe('Hello from the OpenAI fake.');
    expect(oa.lastRequest()!.model).toBe('gpt-4o-2024-08-06');
  });
});

describe('usage chunk for streams', () => {
  it('asked by the client: relayed as the last chunk before [DONE]', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('gpt-4o-mini', 'hi', { stream: true, stream_options: { include_usage: true } }) });
    const events = sseData(r.text);
    expect(events.at(-1)).toBe('[DONE]');
    const usageChunk = JSON.parse(events.at(-2)!);
    expect(usageChunk.choices).toEqual([]);
    expect(usageChunk.usage).toMatchObject({ prompt_tokens: 12, completion_tokens: 6, total_tokens: 18 });
    expect(oa.lastRequest()!.stream_options).toEqual({ include_usage: true });
  });

  it('not asked: chunks carry no "usage" field at all (the upstream\'s usage:null is stripped, as OpenAI would send them)', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('gpt-4o-mini', 'hi', { stream: true }) });
    const events = sseData(r.text);
    expect(events.at(-1)).toBe('[DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e));
    expect(chunks.length).toBeGreaterThan(2);
    for (const c of chunks) expect(Object.keys(c)).not.toContain('usage');
  });

  it.each(['gpt-4o-mini', 'qwen2.5-7b', 'claude-sonnet-4-5', 'llama3', 'mock-1'])(
    'not asked (%s): the gateway still asks upstream, but strips the chunk',
    async (model) => {
      const before = oa.count('/chat/completions') + vl.count('/chat/completions');
      const stream = await client.chat.completions.create({ model, messages, stream: true });
      const chunks = [];
      for await (const c of stream) chunks.push(c);
      expect(chunks.length).toBeGreaterThan(2);
      expect(chunks.every((c) => c.choices.length === 1)).toBe(true);
      expect(chunks.every((c) => !c.usage)).toBe(true);
      expect(chunks.some((c) => c.choices[0]!.finish_reason === 'stop')).toBe(true);
      if (model === 'gpt-4o-mini' || model === 'qwen2.5-7b') {
        const up = model === 'gpt-4o-mini' ? oa : vl;
        expect(oa.count('/chat/completions') + vl.count('/chat/completions')).toBe(before + 1);
        expect(up.lastRequest()!.stream).toBe(true);
        expect(up.lastRequest()!.stream_options).toEqual({ include_usage: true });
      }
    },
  );
});

describe('GET /v1/models', () => {
  it('lists every model with the channel(s) serving it; mock channels are flagged', async () => {
    const r = await call(gw, '/v1/models');
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('list');
    const byId = new Map<string, any>(r.json.data.map((m: any) => [m.id, m]));
    const expected = [
      'gpt-4o-mini',
      'shared-model',
      'text-embedding-3-small',
      'gpt-public',
      'qwen2.5-7b',
      'bge-m3',
      'claude-sonnet-4-5',
      'llama3',
      'nomic-embed-text',
      'gpt-tools',
      'claude-tools',
      'llama-tools',
      'mock-1',
    ];
    expect([...byId.keys()].sort()).toEqual([...expected].sort());
    for (const m of byId.values()) expect(m).toMatchObject({ object: 'model', owned_by: expect.any(String) });
    expect(byId.get('shared-model').channels).toHaveLength(2);
    expect(byId.get('shared-model').channels).toEqual(
      expect.arrayContaining([
        { channel: 'oa', provider: 'openai' },
        { channel: 'mk', provider: 'mock', mock: true },
      ]),
    );
    expect(byId.get('mock-1').channels).toEqual([{ channel: 'mk', provider: 'mock', mock: true }]);
    expect(byId.get('claude-sonnet-4-5').channels).toEqual([{ channel: 'an', provider: 'anthropic' }]);
    expect(byId.get('qwen2.5-7b').channels).toEqual([{ channel: 'vl', provider: 'vllm' }]);
    expect(byId.get('llama3').channels).toEqual([{ channel: 'ol', provider: 'ollama' }]);
  });

  it('the SDK lists the same ids', async () => {
    const ids: string[] = [];
    for await (const m of client.models.list()) ids.push(m.id);
    expect(ids).toContain('mock-1');
    expect(ids).toContain('claude-sonnet-4-5');
    expect(ids).toHaveLength(13);
  });
});

describe('POST /v1/embeddings', () => {
  const EMBED = [
    { kind: 'openai', model: 'text-embedding-3-small', channel: 'oa', expected: (s: string) => openAiVector(s) },
    { kind: 'vllm', model: 'bge-m3', channel: 'vl', expected: (s: string) => openAiVector(s) },
    { kind: 'ollama', model: 'nomic-embed-text', channel: 'ol', expected: (s: string) => fakeVector(s) },
    { kind: 'mock', model: 'mock-1', channel: 'mk', expected: undefined },
  ] as const;

  it.each(EMBED)('through $kind: the SDK (base64 by default) gets the upstream vectors', async ({ model, channel, expected }) => {
    const { data, response } = await client.embeddings.create({ model, input: ['alpha', 'beta gamma'] }).withResponse();
    expect(response.headers.get('x-switchyard-channel')).toBe(channel);
    expect(data.object).toBe('list');
    expect(data.data.map((d) => d.index)).toEqual([0, 1]);
    expect(data.usage.total_tokens).toBeGreaterThan(0);
    const [a, b] = data.data.map((d) => d.embedding);
    expect(a!.length).toBeGreaterThan(0);
    expect(a).not.toEqual(b);
    if (expected) {
      expect(a).toHaveLength(expected('alpha').length);
      a!.forEach((x, i) => expect(x).toBeCloseTo(expected('alpha')[i]!, 5));
    }
    const floats = await client.embeddings.create({ model, input: 'alpha', encoding_format: 'float' });
    floats.data[0]!.embedding.forEach((x, i) => expect(x).toBeCloseTo(a![i]!, 5));
  });

  it('an anthropic-only model has no embeddings: 400 unsupported naming the model param', async () => {
    const r = await call(gw, '/v1/embeddings', { body: { model: 'claude-sonnet-4-5', input: 'x' } });
    expectOpenAiError(r, 400, 'unsupported', 'model');
    expect(r.json.error.message).toContain('claude-sonnet-4-5');
    const e = await client.embeddings.create({ model: 'claude-sonnet-4-5', input: 'x' }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(OpenAI.BadRequestError);
  });

  it('bad embeddings input is a 400 naming input', async () => {
    expectOpenAiError(await call(gw, '/v1/embeddings', { body: { model: 'mock-1', input: 42 } }), 400, 'invalid_request', 'input');
    expectOpenAiError(await call(gw, '/v1/embeddings', { body: { model: 'nope-embed', input: 'x' } }), 404, 'model_not_found', 'model');
  });
});

describe('health', () => {
  it('/healthz and /readyz answer 200 while running', async () => {
    const h = await call(gw, '/healthz');
    expect(h.status).toBe(200);
    expect(h.json).toMatchObject({ status: 'ok' });
    const r = await call(gw, '/readyz');
    expect(r.status).toBe(200);
    expect(r.json).toMatchObject({ status: 'ready' });
  });
});

describe('client auth (gateway.auth.tokens)', () => {
  let secured: Gateway;
  beforeAll(async () => {
    secured = await startGw({ gateway: { auth: { tokens: ['tok-alpha-1', 'tok-beta-2'] } }, channels: [{ name: 'mk', provider: 'mock', models: ['mock-1'] }] });
  });
  afterAll(async () => {
    await secured?.close();
  });

  it('missing token → 401 OpenAI error JSON; wrong token → 401; right token → 200', async () => {
    const missing = await call(secured, '/v1/chat/completions', { body: chatBody('mock-1') });
    expectOpenAiError(missing, 401, 'unauthorized', null);
    expect(missing.json.error.type).toBe('authentication_error');
    expectOpenAiError(await call(secured, '/v1/models'), 401, 'unauthorized');
    expectOpenAiError(
      await call(secured, '/v1/chat/completions', { body: chatBody('mock-1'), headers: { authorization: 'Bearer tok-wrong' } }),
      401,
      'unauthorized',
    );
    expectOpenAiError(
      await call(secured, '/v1/chat/completions', { body: chatBody('mock-1'), headers: { authorization: 'tok-alpha-1' } }),
      401,
      'unauthorized',
    );
    const ok = await call(secured, '/v1/chat/completions', { body: chatBody('mock-1'), headers: { authorization: 'Bearer tok-beta-2' } });
    expect(ok.status).toBe(200);
    expect(ok.json.object).toBe('chat.completion');
  });

  it('through the SDK: wrong key → AuthenticationError, right key streams', async () => {
    const bad = await sdk(secured, 'tok-nope')
      .chat.completions.create({ model: 'mock-1', messages })
      .catch((x: unknown) => x);
    expect(bad).toBeInstanceOf(OpenAI.AuthenticationError);
    const chunks = [];
    for await (const c of await sdk(secured, 'tok-alpha-1').chat.completions.create({ model: 'mock-1', messages, stream: true })) chunks.push(c);
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toContain(PROMPT);
  });

  it('health probes stay open without a token', async () => {
    expect((await call(secured, '/healthz')).status).toBe(200);
    expect((await call(secured, '/readyz')).status).toBe(200);
  });
});
