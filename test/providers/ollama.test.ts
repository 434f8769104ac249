import { Ollama } from 'ollama';
import { afterEach, describe, expect, it } from 'vitest';
import { createOllamaProvider } from '../../src/providers/ollama/index.js';
import { toOllamaChat, toOllamaEmbed } from '../../src/providers/ollama/request.js';
import { fromOllamaChat, fromOllamaEmbed } from '../../src/providers/ollama/response.js';
import { ollamaStream } from '../../src/providers/ollama/stream.js';
import type { ChannelProvider, StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../src/wire/openai.js';
import { fakeVector, startOllamaUpstream, type OllamaScenario } from '../fakes/ollama-upstream.js';
import { collect, runConformance, type FakeUpstream } from './conformance.js';
import { gatewayErrorOfCall } from '../helpers/gateway-error.js';

runConformance({ name: 'ollama', create: createOllamaProvider, start: startOllamaUpstream, supportsEmbeddings: true });

/** Recorded shape of a real `ollama` 0.6-era /api/chat stream (llama3.2), with a multi-byte character. */
const TEXT_STREAM =
  [
    '{"model":"llama3.2","created_at":"2025-05-27T22:54:55.641643123Z","message":{"role":"assistant","content":"Bonjour"},"done":false}',
    '{"model":"llama3.2","created_at":"2025-05-27T22:54:55.661643Z","message":{"role":"assistant","content":" café"},"done":false}',
    '{"model":"llama3.2","created_at":"2025-05-27T22:54:55.681643Z","message":{"role":"assistant","content":" ☕!"},"done":false}',
    '{"model":"llama3.2","created_at":"2025-05-27T22:54:55.701643Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":885095291,"load_duration":3753500,"prompt_eval_count":26,"prompt_eval_duration":328493000,"eval_count":3,"eval_duration":552222000}',
  ].join('\n') + '\n';

const TOOL_STREAM =
  [
    '{"model":"qwen3","created_at":"2025-05-27T22:54:57.641643Z","message":{"role":"assistant","content":"","tool_calls":[{"function":{"name":"get_current_weather","arguments":{"format":"celsius","location":"Paris, FR"}}}]},"done":false}',
    '{"model":"qwen3","created_at":"2025-05-27T22:54:57.741643Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":3000000000,"load_duration":1000000,"prompt_eval_count":122,"prompt_eval_duration":328493000,"eval_count":33,"eval_duration":552222000}',
  ].join('\n') + '\n';

/** Feeds a raw fixture in small byte slices, so lines and UTF-8 characters straddle reads. */
async function* bytes(raw: string, size = 7, fail?: Error): AsyncGenerator<Uint8Array> {
  const buf = Buffer.from(raw, 'utf8');
  for (let i = 0; i < buf.length; i += size) yield buf.subarray(i, i + size);
  if (fail) throw fail;
}

async function drain(it: AsyncIterable<StreamChunk>): Promise<{ raw: StreamChunk[]; chunks: ChatCompletionChunk[]; error?: unknown }> {
  const raw: StreamChunk[] = [];
  try {
    for await (const c of it) raw.push(c);
  } catch (error) {
    return { raw, chunks: raw.map((c) => JSON.parse(c.data) as ChatCompletionChunk), error };
  }
  return { raw, chunks: raw.map((c) => JSON.parse(c.data) as ChatCompletionChunk) };
}

const PNG_B64 = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

describe('ollama request mapping', () => {
  it('maps roles, text parts, data-URL images, assistant tool calls and tool results (tool_name by call id)', () => {
    const body = toOllamaChat({
      model: 'llava',
      messages: [
        { role: 'developer', content: 'be terse' },
        {
          role: 'user',
          content: [
            { type: 'text', text: 'what is this?' },
            { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_B64}` } },
            { type: 'text', text: 'and the weather?' },
          ],
        },
        {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Oslo"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '' } },
          ],
        },
        { role: 'tool', tool_call_id: 'call_b', content: '12:00' },
        { role: 'tool', tool_call_id: 'call_a', content: [{ type: 'text', text: 'sunny' }] },
      ],
    });
    expect(body.stream).toBe(false);
    expect(body.messages).toEqual([
      { role: 'system', content: 'be terse' },
      { role: 'user', content: 'what is this?\nand the weather?', images: [PNG_B64] },
      {
        role: 'assistant',
        content: '',
        tool_calls: [
          { id: 'call_a', function: { name: 'get_weather', arguments: { city: 'Oslo' } } },
          { id: 'call_b', function: { name: 'get_time', arguments: {} } },
        ],
      },
      { role: 'tool', content: '12:00', tool_name: 'get_time', tool_call_id: 'call_b' },
      { role: 'tool', content: 'sunny', tool_name: 'get_weather', tool_call_id: 'call_a' },
    ]);
  });

  it('puts images on the message they came in, whatever its role (Ollama takes `images` on every message)', () => {
    const img = { type: 'image_url', image_url: { url: `data:image/png;base64,${PNG_B64}` } };
    const body = toOllamaChat({
      model: 'llava',
      messages: [
        { role: 'system', content: [{ type: 'text', text: 'reference:' }, img] },
        { role: 'developer', content: [img] },
        { role: 'user', content: 'compare' },
        { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'shot', arguments: '{}' } }] },
        { role: 'tool', tool_call_id: 'c1', content: [{ type: 'text', text: 'taken' }, img] },
        { role: 'function', name: 'legacy', content: [img] },
      ],
    });
    expect(body.messages).toEqual([
      { role: 'system', content: 'reference:', images: [PNG_B64] },
      { role: 'system', content: '', images: [PNG_B64] },
      { role: 'user', content: 'compare' },
      { role: 'assistant', content: '', tool_calls: [{ id: 'c1', function: { name: 'shot', arguments: {} } }] },
      { role: 'tool', content: 'taken', images: [PNG_B64], tool_name: 'shot', tool_call_id: 'c1' },
      { role: 'tool', content: '', images: [PNG_B64], tool_name: 'legacy' },
    ]);
  });

  it('maps sampling options, stop, seed, json mode and structured output', () => {
    const base: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }], stream: true };
    const a = toOllamaChat({
      ...base,
      temperature: 0.2,
      top_p: 0.9,
      max_tokens: 50,
      max_completion_tokens: 64,
      stop: '\n\n',
      seed: 7,
      response_format: { type: 'json_object' },
    });
    expect(a).toMatchObject({ stream: true, format: 'json', options: { temperature: 0.2, top_p: 0.9, num_predict: 64, stop: ['\n\n'], seed: 7 } });
    expect(toOllamaChat({ ...base, max_tokens: 50, stop: ['a', 'b'] }).options).toEqual({ num_predict: 50, stop: ['a', 'b'] });
    const schema = { type: 'object', properties: { age: { type: 'integer' } } };
    expect(toOllamaChat({ ...base, response_format: { type: 'json_schema', json_schema: { name: 'x', schema } } }).format).toEqual(schema);
    const plain = toOllamaChat(base);
    expect(plain.options).toBeUndefined();
    expect(plain.format).toBeUndefined();
    expect(toOllamaChat(base, { keepAlive: '10m' }).keep_alive).toBe('10m');
  });

  it('passes tools in the OpenAI-like form; tool_choice none withholds them, a named choice narrows them', () => {
    const tools: ChatRequest['tools'] = [
      { type: 'function', function: { name: 'a', description: 'first', parameters: { type: 'object' }, strict: true } },
      { type: 'function', function: { name: 'b' } },
    ];
    const req: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'x' }], tools };
    expect(toOllamaChat(req).tools).toEqual([
      { type: 'function', function: { name: 'a', description: 'first', parameters: { type: 'object' } } },
      { type: 'function', function: { name: 'b' } },
    ]);
    expect(toOllamaChat({ ...req, tool_choice: 'none' }).tools).toBeUndefined();
    expect(toOllamaChat({ ...req, tool_choice: { type: 'function', function: { name: 'b' } } }).tools?.map((t) => t.function.name)).toEqual(['b']);
  });

  it('rejects what Ollama cannot take, naming the field', () => {
    const badArgs = gatewayErrorOfCall(() =>
      toOllamaChat({
        model: 'm',
        messages: [
          { role: 'user', content: 'x' },
          { role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"a":' } }] },
        ],
      }),
    );
    expect(badArgs.code).toBe('INVALID_REQUEST');
    expect(badArgs.param).toBe('messages[1].tool_calls[0].function.arguments');
    const remote = gatewayErrorOfCall(() =>
      toOllamaChat({ model: 'm', messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://x/y.png' } }] }] }),
    );
    expect(remote.code).toBe('UNSUPPORTED');
    expect(remote.param).toBe('messages[0].content[0].image_url.url');
    // a malformed part is malformed (OpenAI's API refuses it too), not a part Ollama cannot take
    const part = (p: Record<string, unknown>) =>
      gatewayErrorOfCall(() => toOllamaChat({ model: 'm', messages: [{ role: 'user', content: [p] }] } as ChatRequest));
    const bare = part({ type: 'image_url', image_url: `data:image/png;base64,${PNG_B64}` });
    expect({ code: bare.code, param: bare.param, message: bare.message }).toEqual({
      code: 'INVALID_REQUEST',
      param: 'messages[0].content[0].image_url',
      message: `Invalid type for 'messages[0].content[0].image_url': expected an object {"url": …}, but got a string instead.`,
    });
    expect(part({ type: 'image_url', image_url: { url: null } })).toMatchObject({ code: 'INVALID_REQUEST', param: 'messages[0].content[0].image_url.url' });
    expect(part({ type: 'text', text: ['a'] })).toMatchObject({ code: 'INVALID_REQUEST', param: 'messages[0].content[0].text' });
    expect(gatewayErrorOfCall(() => toOllamaEmbed({ model: 'e', input: [[1, 2]] })).param).toBe('input');
  });
});

describe('ollama response mapping', () => {
  it('maps text, usage, created and done_reason length', () => {
    const c = fromOllamaChat(
      {
        model: 'llama3.2',
        created_at: '2024-12-06T00:46:58.265747Z',
        message: { role: 'assistant', content: 'Hi!' },
        done: true,
        done_reason: 'length',
        prompt_eval_count: 34,
        eval_count: 12,
      },
      'ch',
      'asked',
    );
    expect(c).toMatchObject({
      object: 'chat.completion',
      model: 'llama3.2',
      created: 1733446018,
      usage: { prompt_tokens: 34, completion_tokens: 12, total_tokens: 46 },
    });
    expect(c.choices[0]).toMatchObject({ message: { role: 'assistant', content: 'Hi!' }, finish_reason: 'length' });
  });

  it('maps tool calls: object arguments to strings, ids kept or synthesised, finish_reason tool_calls', () => {
    const c = fromOllamaChat(
      {
        model: 'm',
        created_at: '2024-07-22T20:33:28.123648Z',
        message: {
          role: 'assistant',
          content: '',
          tool_calls: [{ function: { name: 'f', arguments: { x: 1 } } }, { id: 'srv_9', function: { name: 'g', arguments: { y: 'z' } } }],
        },
        done: true,
        done_reason: 'stop',
      },
      'ch',
      'm',
    );
    const msg = c.choices[0]!.message;
    expect(c.choices[0]!.finish_reason).toBe('tool_calls');
    expect(msg.content).toBeNull();
    expect(msg.tool_calls).toEqual([
      { id: 'call_0', type: 'function', function: { name: 'f', arguments: '{"x":1}' } },
      { id: 'srv_9', type: 'function', function: { name: 'g', arguments: '{"y":"z"}' } },
    ]);
    // the reply has no counts: none are made up (a 0 would be charged as a count)
    expect(c.usage).toEqual({});
  });

  it('rejects a reply without a message, and maps embeddings (float and base64)', () => {
    expect(gatewayErrorOfCall(() => fromOllamaChat({ model: 'm', done: true }, 'ch', 'm')).code).toBe('UPSTREAM_BAD_RESPONSE');
    const up = {
      model: 'e',
      embeddings: [
        [0.5, -0.25],
        [1, 0],
      ],
      prompt_eval_count: 6,
    };
    expect(fromOllamaEmbed(up, { model: 'e', input: ['a', 'b'] }, 'ch')).toEqual({
      object: 'list',
      model: 'e',
      data: [
        { object: 'embedding', index: 0, embedding: [0.5, -0.25] },
        { object: 'embedding', index: 1, embedding: [1, 0] },
      ],
      usage: { prompt_tokens: 6, total_tokens: 6 },
    });
    const b64 = fromOllamaEmbed(up, { model: 'e', input: ['a', 'b'], encoding_format: 'base64' }, 'ch').data[0]!.embedding as string;
    expect(Array.from(new Float32Array(Uint8Array.from(Buffer.from(b64, 'base64')).buffer))).toEqual([0.5, -0.25]);
    expect(gatewayErrorOfCall(() => fromOllamaEmbed(up, { model: 'e', input: 'one' }, 'ch')).code).toBe('UPSTREAM_BAD_RESPONSE');
  });
});

describe('ollama stream mapping (recorded NDJSON)', () => {
  it('yields role first, one chunk per piece, finish, then usage last', async () => {
    const { raw, chunks, error } = await drain(ollamaStream(bytes(TEXT_STREAM), 'ch', 'asked'));
    expect(error).toBeUndefined();
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? null)).toEqual(['Bonjour', ' café', ' ☕!', null, null]);
    expect(chunks[0]!.choices[0]!.delta.role).toBe('assistant');
    expect(chunks[3]!.choices[0]!.finish_reason).toBe('stop');
    expect(chunks.slice(0, 3).every((c) => c.choices[0]!.finish_reason === null)).toBe(true);
    expect(new Set(chunks.map((c) => c.id)).size).toBe(1);
    expect(chunks.every((c) => c.model === 'llama3.2' && c.object === 'chat.completion.chunk' && c.created === 1748386495)).toBe(true);
    expect(chunks[4]!.choices).toEqual([]);
    expect(raw[4]!.usage).toEqual({ prompt_tokens: 26, completion_tokens: 3, total_tokens: 29 });
    expect(chunks[4]!.usage).toEqual(raw[4]!.usage);
    expect(raw.slice(0, 4).every((c) => c.usage === undefined)).toBe(true);
  });

  it('turns a tool call into one complete tool_calls delta and finish_reason tool_calls', async () => {
    const { raw, chunks } = await drain(ollamaStream(bytes(TOOL_STREAM, 11), 'ch', 'asked'));
    expect(chunks[0]!.choices[0]!.delta.tool_calls).toEqual([
      { index: 0, id: 'call_0', type: 'function', function: { name: 'get_current_weather', arguments: '{"format":"celsius","location":"Paris, FR"}' } },
    ]);
    expect(chunks[1]!.choices[0]!.finish_reason).toBe('tool_calls');
    expect(raw[raw.length - 1]!.usage).toEqual({ prompt_tokens: 122, completion_tokens: 33, total_tokens: 155 });
  });

  it('throws UPSTREAM_STREAM_ERROR when the body ends without done:true (after relaying what came)', async () => {
    const cut = TEXT_STREAM.split('\n').slice(0, 2).join('\n') + '\n';
    const { chunks, error } = await drain(ollamaStream(bytes(cut), 'ch', 'm'));
    expect(chunks.map((c) => c.choices[0]?.delta.content)).toEqual(['Bonjour', ' café']);
    expect((error as GatewayError).code).toBe('UPSTREAM_STREAM_ERROR');
  });

  it('throws on an error line, a non-JSON line, and a transport failure', async () => {
    const first = TEXT_STREAM.split('\n')[0]!;
    const errLine = await drain(ollamaStream(bytes(`${first}\n{"error":"model runner crashed"}\n`), 'ch', 'm'));
    expect(errLine.chunks).toHaveLength(1);
    expect((errLine.error as GatewayError).code).toBe('UPSTREAM_STREAM_ERROR');
    expect((errLine.error as GatewayError).message).toContain('model runner crashed');
    const garbage = await drain(ollamaStream(bytes(`${first}\n<html>oops</html>\n`), 'ch', 'm'));
    expect((garbage.error as GatewayError).code).toBe('UPSTREAM_BAD_RESPONSE');
    const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
    const broken = await drain(ollamaStream(bytes(`${first}\n`, 7, reset), 'ch', 'm'));
    expect((broken.error as GatewayError).code).toBe('UPSTREAM_STREAM_ERROR');
  });
});

describe('ollama provider against the fake server', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  const setup = async (s: OllamaScenario, over: Partial<FakeUpstream['channel']> = {}): Promise<{ up: FakeUpstream; p: ChannelProvider }> => {
    const up = await startOllamaUpstream(s);
    const p = createOllamaProvider({ ...up.channel, ...over });
    open.push(up, p);
    return { up, p };
  };
  const opts = () => ({ signal: new AbortController().signal, requestId: 'req_ollama_1' });

  it('posts the native body to /api/chat with the configured headers and bearer key', async () => {
    const { up, p } = await setup({ reply: 'ok' }, { apiKey: 'sk-proxy', headers: { 'x-team': 'blue' } });
    await p.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], temperature: 0 }, opts());
    expect(up.lastPath()).toBe('/api/chat');
    expect(up.lastRequest()).toEqual({ model: 'llama3.2', messages: [{ role: 'user', content: 'hi' }], stream: false, options: { temperature: 0 } });
    expect(up.lastHeaders()).toMatchObject({ authorization: 'Bearer sk-proxy', 'x-team': 'blue', 'x-request-id': 'req_ollama_1' });
  });

  it('relays stream lines as they arrive, not at the end', async () => {
    const { p } = await setup({ reply: 'w1 w2 w3 w4', lineDelayMs: 150 });
    const out = await p.chat({ model: 'm', messages: [{ role: 'user', content: 'go' }], stream: true }, opts());
    if (!out.stream) throw new Error('expected a stream');
    const at: number[] = [];
    for await (const c of out.chunks) if (JSON.parse(c.data).choices[0]?.delta.content) at.push(Date.now());
    expect(at).toHaveLength(4);
    expect(at[3]! - at[0]!).toBeGreaterThanOrEqual(300);
  });

  it('rejects a request it cannot map before sending anything', async () => {
    const { up, p } = await setup({});
    const bad: ChatRequest = {
      model: 'm',
      messages: [{ role: 'assistant', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: 'nope' } }] }],
    };
    await expect(p.chat(bad, opts())).rejects.toMatchObject({ code: 'INVALID_REQUEST' });
    expect(up.lastRequest()).toBeUndefined();
  });

  it('embeds through /api/embed with usage from prompt_eval_count', async () => {
    const { up, p } = await setup({});
    const res = await p.embeddings!({ model: 'nomic-embed-text', input: ['alpha beta', 'gamma'] }, opts());
    expect(up.lastPath()).toBe('/api/embed');
    expect(up.lastRequest()).toEqual({ model: 'nomic-embed-text', input: ['alpha beta', 'gamma'] });
    expect(res.data.map((d) => d.embedding)).toEqual([fakeVector('alpha beta'), fakeVector('gamma')]);
    expect(res.usage).toEqual({ prompt_tokens: 5, total_tokens: 5 });
  });

  it('streams through the whole stack: collect() sees the text and usage', async () => {
    const { p } = await setup({ reply: 'alpha beta', usage: { input: 3, output: 2 } });
    const { chunks, raw } = await collect(await p.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true }, opts()));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('alpha beta');
    expect(raw.at(-1)!.usage).toEqual({ prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 });
  });
});

describe('the fake speaks real Ollama (driven by the official ollama client)', () => {
  const open: FakeUpstream[] = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });
  const start = async (s: OllamaScenario) => {
    const up = await startOllamaUpstream(s);
    open.push(up);
    return { up, client: new Ollama({ host: up.channel.baseUrl! }) };
  };

  it('chat stream, tool call, embed and tags parse with ollama-js', async () => {
    const { client } = await start({ reply: 'The sky is blue.', usage: { input: 9, output: 4 } });
    const parts = [];
    for await (const part of await client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'why?' }], stream: true })) parts.push(part);
    expect(parts.map((p) => p.message.content).join('')).toBe('The sky is blue.');
    expect(parts.length).toBeGreaterThan(2);
    expect(parts.at(-1)).toMatchObject({ done: true, done_reason: 'stop', prompt_eval_count: 9, eval_count: 4 });
    const emb = await client.embed({ model: 'nomic-embed-text', input: ['a', 'b'] });
    expect(emb.embeddings).toEqual([fakeVector('a'), fakeVector('b')]);
    expect((await client.list()).models[0]!.details.family).toBe('llama');

    const tool = await start({ toolCall: { id: 'x', name: 'get_weather', arguments: '{"city":"Paris"}' } });
    const res = await tool.client.chat({ model: 'llama3.2', messages: [{ role: 'user', content: 'weather?' }] });
    expect(res.message.tool_calls?.[0]?.function).toEqual({ name: 'get_weather', arguments: { city: 'Paris' } });
  });

  it('errors: status bodies and in-stream error lines are what ollama-js expects', async () => {
    const failing = await start({ failStatus: 500 });
    await expect(failing.client.chat({ model: 'm', messages: [] })).rejects.toMatchObject({ status_code: 500, error: expect.stringContaining('llama runner') });
    const inband = await start({ reply: 'a b c', inbandError: true });
    const it = await inband.client.chat({ model: 'm', messages: [{ role: 'user', content: 'x' }], stream: true });
    await expect(
      (async () => {
        for await (const _ of it) void _;
      })(),
    ).rejects.toThrow(/unexpected EOF/);
  });
});
