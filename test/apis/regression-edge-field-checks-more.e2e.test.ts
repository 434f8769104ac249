/**
 * Regression: fields the translating edges took without a check, left by the first pass over them
 * (regression-edge-field-checks). Gemini `:countTokens` checked only that the body was an object, so `contents: 5`
 * or a `generateContentRequest` with malformed contents got an estimate (200); a Gemini `systemInstruction` part
 * that is not text was dropped without a word; an Anthropic `tool_use` block whose `input` is not an object went
 * up as arguments no tool takes; `metadata` as a string (Anthropic, Responses) was ignored; a Responses
 * `tool_choice` of "required" or a function without any function tool was ignored (the model then answered
 * without the call the client required), and a Responses input message with `content: []` went up as an empty
 * user message. Each is now 400 invalid_request naming the client's field, in the edge's own format, before the
 * upstream (an OpenAI-compatible fake that records every request) sees anything. A real gateway process; the
 * official SDKs where they send such a body.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelOf, expectAnthropicInvalid, expectGeminiInvalid, expectOpenAiError, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

let gw: GatewayProcess;
let up: OpenAiFake;
const started = stopAfterAll();

beforeAll(async () => {
  up = started.track(await startOpenAiUpstream({ reply: 'fine' }));
  gw = started.trackGateway(await startProcess({ channels: [channelOf(up, 'oai', ['m'])] }));
}, 30_000);

const COUNT = '/v1beta/models/m:countTokens';
const GEN = '/v1beta/models/m:generateContent';
const hi = [{ role: 'user', parts: [{ text: 'hi' }] }];

describe('the edges refuse wrong-typed fields they used to take or ignore', () => {
  it('Gemini countTokens is held to the generateContent rules (the contents form)', async () => {
    const cases: Array<[object, string]> = [
      [{ contents: 5 }, 'contents'],
      [{ contents: [] }, 'contents'],
      [{ contents: [{ role: 'user', parts: [{ text: 5 }] }] }, 'contents[0].parts[0].text'],
      [{ contents: [{ role: 'robot', parts: [{ text: 'x' }] }] }, 'contents[0].role'],
      [{ contents: hi, tools: [{ functionDeclarations: [{ name: '' }] }] }, 'tools[0].functionDeclarations[0].name'],
    ];
    for (const [body, param] of cases) expectGeminiInvalid(await call(gw, COUNT, { body }), param);
  });

  it('Gemini countTokens checks a generateContentRequest alike; what generateContent takes is counted', async () => {
    const cases: Array<[object, string]> = [
      [{ generateContentRequest: 5 }, 'generateContentRequest'],
      [{ generateContentRequest: { model: 'models/m', contents: 'hi' } }, 'generateContentRequest.contents'],
      [{ generateContentRequest: { model: 'models/m', contents: [null] } }, 'generateContentRequest.contents[0]'],
      [{ generate_content_request: { contents: hi, generationConfig: { maxOutputTokens: -1 } } }, 'generateContentRequest.generationConfig.maxOutputTokens'],
      [{ contents: hi, generateContentRequest: { contents: hi } }, 'contents'],
    ];
    for (const [body, param] of cases) expectGeminiInvalid(await call(gw, COUNT, { body }), param);
    // what generateContent takes is counted, a fileData part (no chat form) included
    for (const body of [
      { contents: hi },
      { generateContentRequest: { model: 'models/m', contents: hi, systemInstruction: { parts: [{ text: 'brief' }] } } },
      { contents: [{ role: 'user', parts: [{ fileData: { mimeType: 'application/pdf', fileUri: 'https://example.com/a.pdf' } }] }] },
    ]) {
      const r = await call(gw, COUNT, { body });
      expect(r.status, r.text).toBe(200);
      expect(r.json.totalTokens).toBeGreaterThan(0);
    }
  });

  it('Gemini systemInstruction parts must be text', async () => {
    const before = up.count();
    for (const parts of [['be brief'], [{ text: 'ok' }, { inlineData: { mimeType: 'image/png', data: 'AAAA' } }]]) {
      const r = await call(gw, GEN, { body: { contents: hi, systemInstruction: { parts } } });
      expectGeminiInvalid(r, `systemInstruction.parts[${parts.length - 1}]`);
    }
    expect(up.count()).toBe(before);
  });

  it('/v1/messages: tool_use input must be an object', async () => {
    const before = up.count();
    const call1 = (input: unknown) => ({
      model: 'm',
      max_tokens: 16,
      messages: [
        { role: 'user', content: 'weather?' },
        { role: 'assistant', content: [{ type: 'tool_use', id: 'tu_1', name: 'weather', input }] },
        { role: 'user', content: [{ type: 'tool_result', tool_use_id: 'tu_1', content: 'sunny' }] },
      ],
    });
    for (const input of ['{"city":"Paris"}', [1], 5, null])
      expectAnthropicInvalid(await call(gw, '/v1/messages', { body: call1(input) }), 'messages.1.content.0.input');
    expectAnthropicInvalid(await call(gw, '/v1/messages/count_tokens', { body: { ...call1('x'), max_tokens: undefined } }), 'messages.1.content.0.input');
    expect(up.count()).toBe(before);
    const sdk = new Anthropic({ apiKey: 'unused', baseURL: gw.url, maxRetries: 0 });
    const ok = await sdk.messages.create(call1({ city: 'Paris' }) as Anthropic.MessageCreateParamsNonStreaming);
    expect(ok.content[0]).toMatchObject({ type: 'text', text: 'fine' });
    const sent = up.requests[up.requests.length - 1]!.body as { messages: Array<{ tool_calls?: Array<{ function: { arguments: string } }> }> };
    expect(sent.messages[1]!.tool_calls![0]!.function.arguments).toBe('{"city":"Paris"}');
  });

  it('/v1/messages: metadata must be an object, its user_id a string', async () => {
    const before = up.count();
    const base = { model: 'm', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };
    expectAnthropicInvalid(await call(gw, '/v1/messages', { body: { ...base, metadata: 'user-1' } }), 'metadata');
    expectAnthropicInvalid(await call(gw, '/v1/messages', { body: { ...base, metadata: { user_id: 7 } } }), 'metadata.user_id');
    expect(up.count()).toBe(before);
    const sdk = new Anthropic({ apiKey: 'unused', baseURL: gw.url, maxRetries: 0 });
    expect((await sdk.messages.create({ ...base, messages: [{ role: 'user', content: 'hi' }], metadata: { user_id: 'u-1' } })).content[0]).toMatchObject({
      text: 'fine',
    });
    expect((up.requests[up.requests.length - 1]!.body as { user: string }).user).toBe('u-1');
  });

  it('/v1/responses: tool_choice "required" or a function needs a function tool', async () => {
    const before = up.count();
    const cases: Array<[object, string]> = [
      [{ model: 'm', input: 'hi', tool_choice: 'required' }, 'tool_choice'],
      [{ model: 'm', input: 'hi', tool_choice: { type: 'function', name: 'f' } }, 'tool_choice'],
      [{ model: 'm', input: 'hi', tool_choice: 'always' }, 'tool_choice'],
      [{ model: 'm', input: 'hi', tools: [{ type: 'web_search' }], tool_choice: { type: 'function', name: 'f' } }, 'tool_choice'],
    ];
    for (const [body, param] of cases) expectOpenAiError(await call(gw, '/v1/responses', { body }), 400, 'invalid_request', param);
    const sdk = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const err = await sdk.responses.create({ model: 'm', input: 'hi', tool_choice: 'required' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('tool_choice');
    expect(up.count()).toBe(before);
    // "auto" and "none" without tools are taken as before
    for (const tool_choice of ['auto', 'none'] as const)
      expect((await sdk.responses.create({ model: 'm', input: 'hi', tool_choice, store: false })).status).toBe('completed');
    expect(up.count()).toBe(before + 2);
  });

  it('/v1/responses: metadata must be an object of strings', async () => {
    const before = up.count();
    expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', input: 'hi', metadata: 'run-7' } }), 400, 'invalid_request', 'metadata');
    expectOpenAiError(await call(gw, '/v1/responses', { body: { model: 'm', input: 'hi', metadata: { run: 7 } } }), 400, 'invalid_request', 'metadata.run');
    expect(up.count()).toBe(before);
    const sdk = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    expect((await sdk.responses.create({ model: 'm', input: 'hi', metadata: { run: '7' }, store: false })).status).toBe('completed');
  });

  it('/v1/responses: an input message with content [] is no turn', async () => {
    const before = up.count();
    for (const body of [
      { model: 'm', input: [{ type: 'message', role: 'user', content: [] }] },
      { model: 'm', instructions: 'be brief', input: [{ role: 'user', content: [] }] },
    ])
      expectOpenAiError(await call(gw, '/v1/responses', { body }), 400, 'invalid_request', 'input');
    expect(up.count()).toBe(before);
  });
});
