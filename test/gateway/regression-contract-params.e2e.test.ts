/**
 * Chat fields that change the answer's shape or contract (src/wire/chat-contract.ts) are honoured or refused,
 * never dropped: real gateway processes, fake upstreams speaking each provider's wire, the official openai and
 * Anthropic SDKs as clients.
 *
 * Regressions (each failed before the fix): an `anthropic` channel dropped `n`, `logprobs`/`top_logprobs`,
 * `response_format` and `modalities`/`audio` (one choice, no log probabilities, free prose, text for speech); an
 * `ollama` channel dropped `n`, `logprobs` and `audio`, offered the tools without forcing a call for tool_choice
 * "required" or a named function; the `mock` dropped `n`, `logprobs`,
 * `response_format` and `modalities`. A model served by a channel that honours the field and one that does not
 * went to whichever the strategy picked; a peer's channel got the request forwarded whatever it could do. Now:
 * only a candidate that honours it is used; none left is `400 unsupported` naming the field, in the inbound API's
 * format, before any upstream is called and without touching any channel's health. The values that ask for
 * nothing (`n: 1`, `logprobs: false`, `response_format: {type: "text"}`, tool_choice auto/none) and what a
 * translating channel does honour are still served (guards against refusing too much: they passed before the
 * fix too).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelHealth, channelOf, rejectionOf, startProcess, waitForBridgeOpen, wsUrl, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream, type OllamaFake } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

const started = stopAfterAll();
let gw: GatewayProcess;
let anthropic: FakeUpstream;
let ollama: OllamaFake;
let openai: OpenAiFake;
let client: OpenAI;

const messages = [{ role: 'user' as const, content: 'hello' }];
const tools = [{ type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }];
const schema = { type: 'json_schema' as const, json_schema: { name: 'w', schema: { type: 'object', properties: { city: { type: 'string' } } } } };

beforeAll(async () => {
  anthropic = started.track(await startAnthropicUpstream({ reply: 'from anthropic' }));
  ollama = started.track(await startOllamaUpstream({ reply: 'from ollama' }));
  openai = started.track(await startOpenAiUpstream({ reply: 'from openai' }));
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_contract', routing: { retries: 0 } },
      channels: [
        // `both` and `mix-ol`: the translating channel is the preferred tier, the OpenAI-compatible one the fallback
        channelOf(anthropic, 'an', ['claude', 'both']),
        channelOf(ollama, 'ol', ['llama', 'mix-ol']),
        channelOf(openai, 'oa', ['both', 'mix-ol'], { priority: 1 }),
        { name: 'mk', provider: 'mock', models: ['mock-1'] },
      ],
    }),
  );
  client = new OpenAI({ apiKey: 'sk-client-unused', baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
}, 60_000);

type Body = Omit<OpenAI.ChatCompletionCreateParamsNonStreaming, 'model' | 'messages'>;

/** The SDK's error for a request the gateway must refuse. */
async function refused(model: string, extra: Body): Promise<InstanceType<typeof OpenAI.BadRequestError>> {
  const err = await rejectionOf(client.chat.completions.create({ model, messages, ...extra }));
  expect(err, JSON.stringify(extra)).toBeInstanceOf(OpenAI.BadRequestError);
  return err as InstanceType<typeof OpenAI.BadRequestError>;
}

const REFUSED: Array<[string, string, string, Body, string]> = [
  ['anthropic', 'claude', 'an', { n: 3 }, 'n'],
  ['anthropic', 'claude', 'an', { logprobs: true }, 'logprobs'],
  ['anthropic', 'claude', 'an', { logprobs: true, top_logprobs: 2 }, 'logprobs'],
  ['anthropic', 'claude', 'an', { top_logprobs: 2 }, 'top_logprobs'],
  ['anthropic', 'claude', 'an', { response_format: { type: 'json_object' } }, 'response_format'],
  ['anthropic', 'claude', 'an', { response_format: schema }, 'response_format'],
  ['anthropic', 'claude', 'an', { modalities: ['text', 'audio'], audio: { voice: 'alloy', format: 'wav' } }, 'modalities'],
  ['ollama', 'llama', 'ol', { n: 2 }, 'n'],
  ['ollama', 'llama', 'ol', { logprobs: true }, 'logprobs'],
  ['ollama', 'llama', 'ol', { tools, tool_choice: 'required' }, 'tool_choice'],
  ['ollama', 'llama', 'ol', { tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } }, 'tool_choice'],
  ['ollama', 'llama', 'ol', { audio: { voice: 'alloy', format: 'wav' } }, 'audio'],
  ['mock', 'mock-1', 'mk', { n: 2 }, 'n'],
  ['mock', 'mock-1', 'mk', { logprobs: true }, 'logprobs'],
  ['mock', 'mock-1', 'mk', { response_format: { type: 'json_object' } }, 'response_format'],
  ['mock', 'mock-1', 'mk', { response_format: schema }, 'response_format'],
  ['mock', 'mock-1', 'mk', { modalities: ['audio'] }, 'modalities'],
];

describe('a contract field the only channel cannot honour', () => {
  it.each(REFUSED)(
    '%s (%s): %j → 400 unsupported naming %s … before any upstream call, not held against the channel',
    async (_p, model, channel, extra, param) => {
      const up = channel === 'an' ? anthropic : channel === 'ol' ? ollama : undefined;
      const before = up?.lastRequest();
      const health = await channelHealth(gw.url, channel);
      const err = await refused(model, extra);
      expect(err.status).toBe(400);
      expect(err.code).toBe('unsupported');
      expect(err.param).toBe(param);
      expect(err.message).toContain(`${param}: no channel serving model "${model}" can give`);
      if (up) expect(up.lastRequest()).toBe(before);
      expect(await channelHealth(gw.url, channel)).toEqual(health);
    },
  );

  it('a stream is refused the same way, as JSON before any event', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: { model: 'llama', messages, stream: true, tools, tool_choice: 'required' } });
    expect(r.status).toBe(400);
    expect(r.headers.get('content-type')).toMatch(/^application\/json/);
    expect(r.json.error).toMatchObject({ code: 'unsupported', param: 'tool_choice', type: 'invalid_request_error' });
  });
});

describe('the values that ask for nothing', () => {
  it.each([
    ['claude', anthropicUp],
    ['llama', ollamaUp],
    ['mock-1', () => undefined],
  ])('%s: n 1, logprobs false, response_format text, tool_choice auto/none are served', async (model, upstream) => {
    const plain = await client.chat.completions.create({ model, messages, n: 1, logprobs: false, response_format: { type: 'text' } });
    expect(plain.choices).toHaveLength(1);
    expect(plain.choices[0]!.message.content).toBeTruthy();
    for (const tool_choice of ['auto', 'none'] as const) {
      const r = await client.chat.completions.create({ model, messages, tools, tool_choice, parallel_tool_calls: true });
      expect(r.choices).toHaveLength(1);
    }
    const up = upstream();
    if (up) expect(up.lastRequest()).toBeDefined();
  });

  it('what a translating channel does honour is served: anthropic forces a call and one call, ollama takes a JSON schema', async () => {
    await client.chat.completions.create({ model: 'claude', messages, tools, tool_choice: 'required', parallel_tool_calls: false });
    expect(anthropic.lastRequest()!.tool_choice).toEqual({ type: 'any', disable_parallel_tool_use: true });
    await client.chat.completions.create({ model: 'claude', messages, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } } });
    expect(anthropic.lastRequest()!.tool_choice).toEqual({ type: 'tool', name: 'get_weather' });
    await client.chat.completions.create({ model: 'llama', messages, response_format: schema });
    expect(ollama.lastRequest()!.format).toEqual(schema.json_schema.schema);
    await client.chat.completions.create({ model: 'llama', messages, response_format: { type: 'json_object' } });
    expect(ollama.lastRequest()!.format).toBe('json');
    const forced = await client.chat.completions.create({ model: 'mock-1', messages, tools, tool_choice: 'required', parallel_tool_calls: false });
    expect(forced.choices[0]!.message.tool_calls).toHaveLength(1);
  });

  it('ollama serves parallel_tool_calls: false (it cannot hold the model to one call, and agents such as Codex send it for every model they do not know)', async () => {
    const r = await client.chat.completions.create({ model: 'llama', messages, tools, tool_choice: 'auto', parallel_tool_calls: false });
    expect(r.choices).toHaveLength(1);
    expect(ollama.lastRequest()!.tools).toHaveLength(tools.length);
  });
});

function anthropicUp(): FakeUpstream {
  return anthropic;
}
function ollamaUp(): FakeUpstream {
  return ollama;
}

describe('a model served by a channel that honours the field and one that does not', () => {
  it('sends the request to the one that honours it, whatever the tiers say; a request asking nothing keeps the preferred tier', async () => {
    const before = anthropic.lastRequest();
    const sent = openai.count('/chat/completions');
    for (let i = 0; i < 3; i++) {
      const r = await client.chat.completions.create({ model: 'both', messages, n: 3, logprobs: true });
      expect(r.choices[0]!.message.content).toBe('from openai');
    }
    expect(openai.count('/chat/completions')).toBe(sent + 3);
    expect(openai.requests.at(-1)!.body).toMatchObject({ n: 3, logprobs: true });
    expect(anthropic.lastRequest()).toBe(before);
    const plain = await client.chat.completions.create({ model: 'both', messages, n: 1 });
    expect(plain.choices[0]!.message.content).toBe('from anthropic');

    const olBefore = ollama.lastRequest();
    const forced = await client.chat.completions.create({ model: 'mix-ol', messages, tools, tool_choice: 'required' });
    expect(forced.choices[0]!.message.content).toBe('from openai');
    expect(openai.requests.at(-1)!.body).toMatchObject({ tool_choice: 'required' });
    expect(ollama.lastRequest()).toBe(olBefore);
    // what ollama honours stays on ollama
    const json = await client.chat.completions.create({ model: 'mix-ol', messages, response_format: schema });
    expect(json.choices[0]!.message.content).toBe('from ollama');
  });
});

describe('through the other edges, in their own error format', () => {
  it('/v1/messages (Anthropic SDK): tool_choice any or tool to an ollama model → 400 invalid_request_error naming the field', async () => {
    const sdk = new Anthropic({ apiKey: 'sk-ant-client', baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
    const weather = { name: 'get_weather', input_schema: { type: 'object' as const, properties: { city: { type: 'string' } } } };
    const before = ollama.lastRequest();
    for (const [tool_choice, param] of [
      [{ type: 'any' }, 'tool_choice'],
      [{ type: 'tool', name: 'get_weather' }, 'tool_choice'],
    ] as const) {
      const err = await rejectionOf(sdk.messages.create({ model: 'llama', max_tokens: 64, messages, tools: [weather], tool_choice }));
      expect(err).toBeInstanceOf(Anthropic.BadRequestError);
      const e = err as InstanceType<typeof Anthropic.BadRequestError>;
      expect(e.status).toBe(400);
      expect(e.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error', code: 'unsupported' } });
      expect((e.error as { error: { message: string } }).error.message.startsWith(`${param}: `)).toBe(true);
    }
    expect(ollama.lastRequest()).toBe(before);
    // disable_parallel_tool_use (parallel_tool_calls: false) is served on ollama (docs/apis.md)
    const one = await sdk.messages.create({
      model: 'llama',
      max_tokens: 64,
      messages,
      tools: [weather],
      tool_choice: { type: 'auto', disable_parallel_tool_use: true },
    });
    expect(one.type).toBe('message');
    // the same on an anthropic channel (native pass-through) is served
    const ok = await sdk.messages.create({ model: 'claude', max_tokens: 64, messages, tools: [weather], tool_choice: { type: 'any' } });
    expect(ok.type).toBe('message');
  });

  it('/v1/responses (openai SDK) and Gemini: a JSON answer asked of an anthropic model → 400 in that format', async () => {
    const err = await rejectionOf(client.responses.create({ model: 'claude', input: 'hi', text: { format: { type: 'json_object' } } }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'unsupported', param: 'response_format' });
    const before = anthropic.lastRequest();
    const g = await call(gw, '/v1beta/models/claude:generateContent', {
      body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { responseMimeType: 'application/json' } },
    });
    expect(g.status, g.text).toBe(400);
    expect(g.json.error).toMatchObject({ code: 400, status: 'INVALID_ARGUMENT', details: [expect.objectContaining({ reason: 'UNSUPPORTED' })] });
    expect(g.json.error.message).toMatch(/^response_format: /);
    expect(anthropic.lastRequest()).toBe(before);
  });
});

describe('over the bridge', () => {
  it("a peer's channel that announced what it refuses is not sent such a request; one that honours it is", async () => {
    const peerAnthropic = started.track(await startAnthropicUpstream({ reply: 'from the peer' }));
    const b = started.trackGateway(
      await startProcess({
        gateway: { id: 'gw_contract_b', bridge: { enabled: true, allowedTokens: ['contract-token-123456'], shareChannels: ['pan'] } },
        channels: [channelOf(peerAnthropic, 'pan', ['remote-claude'])],
      }),
    );
    const a = started.trackGateway(
      await startProcess({
        gateway: {
          id: 'gw_contract_a',
          routing: { retries: 0 },
          bridges: [{ name: 'b', url: wsUrl(b.url), token: 'contract-token-123456', reconnectInterval: 100 }],
        },
        channels: [],
      }),
    );
    await waitForBridgeOpen(a.url);
    const viaA = new OpenAI({ apiKey: 'sk-client-unused', baseURL: `${a.url}/v1`, maxRetries: 0, timeout: 15_000 });
    const ok = await viaA.chat.completions.create({ model: 'remote-claude', messages, n: 1 });
    expect(ok.choices[0]!.message.content).toBe('from the peer');
    const before = peerAnthropic.lastRequest();
    const err = await rejectionOf(viaA.chat.completions.create({ model: 'remote-claude', messages, n: 3 }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'unsupported', param: 'n' });
    expect(peerAnthropic.lastRequest()).toBe(before);
  }, 60_000);
});
