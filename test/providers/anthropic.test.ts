import Anthropic from '@anthropic-ai/sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { createAnthropicProvider } from '../../src/providers/anthropic/index.js';
import { toMessagesRequest } from '../../src/providers/anthropic/request.js';
import { toChatCompletion } from '../../src/providers/anthropic/response.js';
import { anthropicStream } from '../../src/providers/anthropic/stream.js';
import type { MessagesResponse, StopReason } from '../../src/providers/anthropic/wire.js';
import type { StreamChunk } from '../../src/providers/provider.js';
import { GatewayError } from '../../src/wire/errors.js';
import type { ChatCompletionChunk, ChatRequest } from '../../src/wire/openai.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { collect, runConformance } from './conformance.js';
import { gatewayErrorOf, gatewayErrorOfCall } from '../helpers/gateway-error.js';

runConformance({ name: 'anthropic', create: createAnthropicProvider, start: startAnthropicUpstream, supportsEmbeddings: false, reportsCacheUsage: true });

const opts = () => ({ signal: new AbortController().signal, requestId: 'req_a1' });
const req = (over: Partial<ChatRequest>): ChatRequest => ({ model: 'claude-x', messages: [{ role: 'user', content: 'hi' }], ...over });

describe('anthropic provider against the fake upstream', () => {
  const open: Array<{ close(): Promise<void> }> = [];
  afterEach(async () => {
    while (open.length) await open.pop()!.close();
  });

  it('posts to /v1/messages with x-api-key, anthropic-version (overridable) and a Messages body', async () => {
    const up = await startAnthropicUpstream({ reply: 'ok' });
    const p = createAnthropicProvider({ ...up.channel, headers: { 'x-extra': '1' }, options: { anthropicVersion: '2024-01-01' } });
    open.push(up, p);
    await p.chat(req({ stream_options: { include_usage: true }, n: 1, max_tokens: 99 }), opts());
    expect(up.lastPath()).toBe('/v1/messages');
    expect(up.lastHeaders()).toMatchObject({ 'x-api-key': 'sk-ant-fake', 'anthropic-version': '2024-01-01', 'x-extra': '1' });
    expect(up.lastRequest()).toEqual({ model: 'claude-x', max_tokens: 99, messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }] });
  });

  it('streams text then a tool call: tool_calls index counts tool_use blocks from 0', async () => {
    const up = await startAnthropicUpstream({
      reply: 'Let me look.',
      toolCall: { id: 'toolu_1', name: 'find', arguments: '{"q":"x"}' },
      usage: { input: 3, output: 9 },
    });
    const p = createAnthropicProvider(up.channel);
    open.push(up, p);
    const { chunks, raw } = await collect(await p.chat(req({ stream: true }), opts()));
    expect(chunks.map((c) => c.choices[0]?.delta.content ?? '').join('')).toBe('Let me look.');
    const calls = chunks.flatMap((c) => c.choices[0]?.delta.tool_calls ?? []);
    expect(new Set(calls.map((c) => c.index))).toEqual(new Set([0]));
    expect(raw.at(-1)!.usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 9, total_tokens: 12 });
  });

  it('fake check: the official SDK reassembles the fake stream into the same message as the JSON answer', async () => {
    const up = await startAnthropicUpstream({ reply: 'one two', toolCall: { id: 'toolu_2', name: 'f', arguments: '{"a":[1,2],"b":"c d"}' } });
    open.push(up);
    const sdk = new Anthropic({ apiKey: 'k', baseURL: up.channel.baseUrl!, maxRetries: 0 });
    const params = { model: 'm', max_tokens: 10, messages: [{ role: 'user' as const, content: 'hi' }] };
    const streamed = await sdk.messages.stream(params).finalMessage();
    expect(streamed).toMatchObject(await sdk.messages.create(params));
  });

  it('rejects an unmappable request before calling upstream', async () => {
    const up = await startAnthropicUpstream({ reply: 'ok' });
    const p = createAnthropicProvider(up.channel);
    open.push(up, p);
    const bad = req({
      messages: [{ role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{oops' } }] }],
    });
    const e = await gatewayErrorOf(p.chat(bad, opts()));
    expect([e.code, e.param]).toEqual(['INVALID_REQUEST', 'messages[0].tool_calls[0].function.arguments']);
    expect(up.lastRequest()).toBeUndefined();
  });
});

describe('request mapping', () => {
  it('hoists system/developer into `system` and merges consecutive same-role turns', () => {
    const out = toMessagesRequest(
      req({
        messages: [
          { role: 'system', content: 'A' },
          { role: 'user', content: 'one' },
          { role: 'developer', content: [{ type: 'text', text: 'B' }] },
          { role: 'user', content: [{ type: 'text', text: 'two' }] },
          { role: 'assistant', content: 'x' },
          { role: 'assistant', content: '' },
          { role: 'assistant', content: 'y' },
        ],
      }),
    );
    expect(out.system).toBe('A\n\nB');
    expect(out.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'text', text: 'one' },
          { type: 'text', text: 'two' },
        ],
      },
      {
        role: 'assistant',
        content: [
          { type: 'text', text: 'x' },
          { type: 'text', text: 'y' },
        ],
      },
    ]);
  });

  it('maps tool_calls to tool_use and merges tool results (first) into one user turn', () => {
    const out = toMessagesRequest(
      req({
        messages: [
          { role: 'user', content: 'go' },
          {
            role: 'assistant',
            content: 'sure',
            tool_calls: [
              { id: 't1', type: 'function', function: { name: 'a', arguments: '{"k":1}' } },
              { id: 't2', type: 'function', function: { name: 'b', arguments: '' } },
            ],
          },
          { role: 'tool', tool_call_id: 't1', content: 'r1' },
          { role: 'tool', tool_call_id: 't2', content: [{ type: 'text', text: 'r2' }] },
          { role: 'user', content: 'and?' },
        ],
      }),
    );
    expect(out.messages[1]).toEqual({
      role: 'assistant',
      content: [
        { type: 'text', text: 'sure' },
        { type: 'tool_use', id: 't1', name: 'a', input: { k: 1 } },
        { type: 'tool_use', id: 't2', name: 'b', input: {} },
      ],
    });
    expect(out.messages[2]).toEqual({
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: 't1', content: 'r1' },
        { type: 'tool_result', tool_use_id: 't2', content: 'r2' },
        { type: 'text', text: 'and?' },
      ],
    });
    const late = toMessagesRequest(
      req({
        messages: [
          { role: 'user', content: 'note' },
          { role: 'tool', tool_call_id: 't9', content: 'r9' },
        ],
      }),
    );
    expect(late.messages).toEqual([
      {
        role: 'user',
        content: [
          { type: 'tool_result', tool_use_id: 't9', content: 'r9' },
          { type: 'text', text: 'note' },
        ],
      },
    ]);
    expect(() =>
      toMessagesRequest(req({ messages: [{ role: 'assistant', tool_calls: [{ id: 'z', type: 'function', function: { name: 'f', arguments: '[1]' } }] }] })),
    ).toThrow(/must be a JSON object/);
  });

  it('maps images: data URL → base64 source, https → url source, anything else rejected', () => {
    const img = (url: string) =>
      req({
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'see' },
              { type: 'image_url', image_url: { url } },
            ],
          },
        ],
      });
    expect(toMessagesRequest(img('data:image/png;base64,iVBORw0K')).messages[0]!.content).toEqual([
      { type: 'text', text: 'see' },
      { type: 'image', source: { type: 'base64', media_type: 'image/png', data: 'iVBORw0K' } },
    ]);
    expect((toMessagesRequest(img('https://x.test/a.jpg')).messages[0]!.content as unknown[])[1]).toEqual({
      type: 'image',
      source: { type: 'url', url: 'https://x.test/a.jpg' },
    });
    expect(() => toMessagesRequest(img('ftp://x/a.png'))).toThrow(GatewayError);
  });

  it('refuses a malformed part as OpenAI’s API does, by the rule every translating channel shares', () => {
    const part = (p: Record<string, unknown>) =>
      gatewayErrorOfCall(() => toMessagesRequest(req({ messages: [{ role: 'user', content: [{ type: 'text', text: 'see' }, p] }] } as Partial<ChatRequest>)));
    const bare = part({ type: 'image_url', image_url: 'data:image/png;base64,iVBORw0K' });
    expect({ code: bare.code, param: bare.param, message: bare.message }).toEqual({
      code: 'INVALID_REQUEST',
      param: 'messages[0].content[1].image_url',
      message: `Invalid type for 'messages[0].content[1].image_url': expected an object {"url": …}, but got a string instead.`,
    });
    // a text part without text was dropped without a word; in a system message its text read as ""
    expect(part({ type: 'text' })).toMatchObject({ code: 'INVALID_REQUEST', param: 'messages[0].content[1].text' });
    const sys = gatewayErrorOfCall(() =>
      toMessagesRequest(req({ messages: [{ role: 'system', content: [{ type: 'text', text: 7 }] }] } as unknown as Partial<ChatRequest>)),
    );
    expect(sys).toMatchObject({ code: 'INVALID_REQUEST', param: 'messages[0].content[0].text' });
  });

  it('maps tools, tool_choice, limits and sampling; drops unknown fields', () => {
    const tools: ChatRequest['tools'] = [{ type: 'function', function: { name: 'f', description: 'd', parameters: { type: 'object' } } }];
    const choice = (tool_choice: ChatRequest['tool_choice'], extra: Partial<ChatRequest> = {}) =>
      toMessagesRequest(req({ tools, tool_choice, ...extra })).tool_choice;
    expect(choice('auto')).toEqual({ type: 'auto' });
    expect(choice('none')).toEqual({ type: 'none' });
    expect(choice('required')).toEqual({ type: 'any' });
    expect(choice({ type: 'function', function: { name: 'f' } }, { parallel_tool_calls: false })).toEqual({
      type: 'tool',
      name: 'f',
      disable_parallel_tool_use: true,
    });
    const out = toMessagesRequest(
      req({
        tools,
        max_tokens: 10,
        max_completion_tokens: 20,
        temperature: 0.5,
        top_p: 0.9,
        stop: 'END',
        stream: true,
        seed: 1,
        logprobs: true,
        response_format: { type: 'text' },
      }),
    );
    expect(out).toEqual({
      model: 'claude-x',
      messages: [{ role: 'user', content: [{ type: 'text', text: 'hi' }] }],
      tools: [{ name: 'f', description: 'd', input_schema: { type: 'object' } }],
      max_tokens: 20,
      temperature: 0.5,
      top_p: 0.9,
      stop_sequences: ['END'],
      stream: true,
    });
    expect(toMessagesRequest(req({})).max_tokens).toBe(4096);
    expect(toMessagesRequest(req({}), { defaultMaxTokens: 77 }).max_tokens).toBe(77);
  });
});

describe('response mapping', () => {
  const msg = (over: Partial<MessagesResponse>): MessagesResponse => ({
    id: 'msg_1',
    type: 'message',
    role: 'assistant',
    model: 'claude-x',
    content: [{ type: 'text', text: 'hi' }],
    stop_reason: 'end_turn',
    stop_sequence: null,
    usage: { input_tokens: 1, output_tokens: 1 },
    ...over,
  });

  it.each<[StopReason, string]>([
    ['end_turn', 'stop'],
    ['stop_sequence', 'stop'],
    ['pause_turn', 'stop'],
    ['max_tokens', 'length'],
    ['model_context_window_exceeded', 'length'],
    ['tool_use', 'tool_calls'],
    ['refusal', 'content_filter'],
  ])('stop_reason %s → finish_reason %s', (stop, finish) => {
    expect(toChatCompletion(msg({ stop_reason: stop }), 'c', 'claude-requested').choices[0]!.finish_reason).toBe(finish);
  });

  it('joins text, maps tool_use and counts cached input in prompt_tokens', () => {
    const out = toChatCompletion(
      msg({
        content: [
          { type: 'thinking', thinking: 'hmm', signature: 's' },
          { type: 'text', text: 'a' },
          { type: 'tool_use', id: 'tu', name: 'f', input: { x: [1] } },
          { type: 'text', text: 'b' },
        ],
        usage: { input_tokens: 5, cache_creation_input_tokens: 100, cache_read_input_tokens: 40, output_tokens: 7 },
      }),
      'c',
      'claude-requested',
    );
    expect(out.choices[0]!.message).toEqual({
      role: 'assistant',
      content: 'ab',
      reasoning_content: 'hmm',
      tool_calls: [{ id: 'tu', type: 'function', function: { name: 'f', arguments: '{"x":[1]}' } }],
    });
    expect(out.usage).toEqual({
      prompt_tokens: 145,
      completion_tokens: 7,
      total_tokens: 152,
      prompt_tokens_details: { cached_tokens: 40 },
      cache_creation_input_tokens: 100,
      cache_read_input_tokens: 40,
    });
    expect(() => toChatCompletion({ type: 'message' } as unknown as MessagesResponse, 'c', 'claude-requested')).toThrow(/no content array/);
  });
});

/** Recorded-shape Messages stream: text block, then a tool_use block (Anthropic index 1). */
const ev = (type: string, data: object) => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;
const HEAD =
  ev('message_start', {
    message: {
      id: 'msg_01S',
      type: 'message',
      role: 'assistant',
      model: 'claude-x',
      content: [],
      stop_reason: null,
      stop_sequence: null,
      usage: { input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 30, output_tokens: 1 },
    },
  }) +
  ev('content_block_start', { index: 0, content_block: { type: 'text', text: '' } }) +
  ev('ping', {}) +
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'Checking ' } }) +
  ev('content_block_delta', { index: 0, delta: { type: 'text_delta', text: 'now.' } });
const TAIL =
  ev('content_block_stop', { index: 0 }) +
  ev('content_block_start', { index: 1, content_block: { type: 'tool_use', id: 'toolu_9', name: 'wx', input: {} } }) +
  ['', '{"city": ', '"Os', 'lo"}'].map((p) => ev('content_block_delta', { index: 1, delta: { type: 'input_json_delta', partial_json: p } })).join('') +
  ev('content_block_stop', { index: 1 }) +
  ev('message_delta', { delta: { stop_reason: 'tool_use', stop_sequence: null }, usage: { output_tokens: 25 } });
const FULL = HEAD + TAIL + ev('message_stop', {});

/** the text as a byte source, cut every `size` bytes (splits events, lines and JSON) */
async function* bytes(text: string, size = 7, fail?: Error): AsyncGenerator<Uint8Array> {
  const b = Buffer.from(text);
  for (let i = 0; i < b.length; i += size) yield b.subarray(i, i + size);
  if (fail) throw fail;
}
const run = async (text: string, fail?: Error) => {
  const raw: StreamChunk[] = [];
  const err = await (async () => {
    for await (const c of anthropicStream(bytes(text, 7, fail), 'c', { model: 'claude-requested' }, 1)) raw.push(c);
  })().then(
    () => undefined,
    (e: unknown) => e as GatewayError,
  );
  return { raw, chunks: raw.map((c) => JSON.parse(c.data) as ChatCompletionChunk), err };
};

describe('stream translation', () => {
  it('translates the recorded sequence: role, text, tool call, finish, usage last', async () => {
    const { chunks, raw, err } = await run(FULL);
    expect(err).toBeUndefined();
    expect(chunks.every((c) => c.id === 'msg_01S' && c.model === 'claude-x' && c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0]!.choices[0]!.delta).toEqual({ role: 'assistant', content: '' });
    expect(chunks.slice(1, 3).map((c) => c.choices[0]!.delta.content)).toEqual(['Checking ', 'now.']);
    expect(chunks[3]!.choices[0]!.delta.tool_calls).toEqual([{ index: 0, id: 'toolu_9', type: 'function', function: { name: 'wx', arguments: '' } }]);
    const args = chunks
      .flatMap((c) => c.choices[0]?.delta.tool_calls ?? [])
      .map((t) => t.function?.arguments ?? '')
      .join('');
    expect(JSON.parse(args)).toEqual({ city: 'Oslo' });
    expect(chunks.at(-2)!.choices[0]).toMatchObject({ delta: {}, finish_reason: 'tool_calls' });
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(raw.at(-1)!.usage).toEqual({
      prompt_tokens: 42,
      completion_tokens: 25,
      total_tokens: 67,
      prompt_tokens_details: { cached_tokens: 30 },
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 30,
    });
    expect(raw.filter((c) => c.usage)).toHaveLength(1);
  });

  it('yields each chunk as its event arrives (no buffering to the end)', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const src = (async function* () {
      yield HEAD;
      await gate;
      yield TAIL + ev('message_stop', {});
    })();
    const it = anthropicStream(src, 'c', { model: 'claude-requested' })[Symbol.asyncIterator]();
    expect((await it.next()).value).toBeDefined(); // role
    expect(JSON.parse((await it.next()).value!.data).choices[0].delta.content).toBe('Checking ');
    release();
    let n = 0;
    while (!(await it.next()).done) n++;
    expect(n).toBeGreaterThan(3);
  });

  it('maps thinking_delta to reasoning_content and ignores signature_delta', async () => {
    const text =
      HEAD.split('event: content_block_start')[0]! +
      ev('content_block_start', { index: 0, content_block: { type: 'thinking', thinking: '' } }) +
      ev('content_block_delta', { index: 0, delta: { type: 'thinking_delta', thinking: 'Let me think' } }) +
      ev('content_block_delta', { index: 0, delta: { type: 'signature_delta', signature: 'EqQB' } }) +
      ev('message_stop', {});
    const { chunks, err } = await run(text);
    expect(err).toBeUndefined();
    expect(chunks.map((c) => c.choices[0]?.delta)).toEqual([{ role: 'assistant', content: '' }, { reasoning_content: 'Let me think' }, undefined]);
  });

  it.each([
    ['overloaded_error', 'UPSTREAM_ERROR'],
    ['rate_limit_error', 'RATE_LIMITED'],
    // api_error is the 500 it is as an HTTP answer; a type that names no status is a broken stream
    ['api_error', 'UPSTREAM_ERROR'],
    ['some_future_error', 'UPSTREAM_STREAM_ERROR'],
  ])('an error event (%s) throws %s after the chunks already relayed', async (type, code) => {
    const { chunks, err } = await run(HEAD + ev('error', { error: { type, message: 'boom' } }));
    expect(chunks.map((c) => c.choices[0]?.delta.content).join('')).toBe('Checking now.');
    expect(err).toBeInstanceOf(GatewayError);
    expect([err!.code, err!.retryable]).toEqual([code, true]);
  });

  it('throws on a missing message_stop, a non-JSON event, and a broken transport', async () => {
    expect((await run(HEAD + TAIL)).err?.code).toBe('UPSTREAM_STREAM_ERROR');
    expect((await run(HEAD + 'event: content_block_delta\ndata: {"type":"content_blo\n\n' + TAIL)).err?.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect((await run(HEAD, Object.assign(new Error('reset'), { code: 'ECONNRESET' }))).err?.code).toBe('UPSTREAM_STREAM_ERROR');
    expect((await run(HEAD, Object.assign(new Error('aborted'), { name: 'AbortError' }))).err?.code).toBe('CANCELLED');
    expect((await run(TAIL)).err?.code).toBe('UPSTREAM_BAD_RESPONSE');
  });
});
