/**
 * Regression: the translating edges (/v1/messages, /v1/responses, /v1beta) held a field only to its JSON type,
 * so values no upstream takes went upstream, or were silently replaced, instead of being refused in the edge's
 * own format: a number written `1e999` (JSON.parse reads Infinity, sent up as null), a token limit of -1 or
 * 1e300, a tool with an empty name (the mock then "called" it and the edge answered 502 upstream_bad_response),
 * a tool schema that is a string (replaced by an empty schema without a word), `"store": "no"` (taken as true:
 * the conversation was kept), `text.format` json_schema without a schema, `text: 5`, a Gemini text part that is
 * not a string (refused as an unsupported part type), and a turn with nothing in it (`content: []`, Gemini
 * `parts: []` or only thought parts), which went up as a request with no message. Each is now 400
 * invalid_request naming the client's field, and the upstream (an OpenAI-compatible fake that records every
 * request) never sees it. A real gateway process; the official SDKs where they send such a body.
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

const msg = { model: 'm', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };
const resp = { model: 'm', input: 'hi' };
const gem = { contents: [{ role: 'user', parts: [{ text: 'hi' }] }] };
const GEN = '/v1beta/models/m:generateContent';
/** a body with `"<key>": 1e999` appended at its top level (or inside `inner`), which JSON.stringify cannot write */
const withInfinity = (body: object, key: string, inner?: string): string => {
  const s = JSON.stringify(inner ? { ...body, [inner]: { __x: 0 } } : body);
  return inner ? s.replace('{"__x":0}', `{"${key}":1e999}`) : s.replace(/}$/, `,"${key}":1e999}`);
};

describe('translating edges refuse what no upstream takes, before it goes up', () => {
  it('/v1/messages', async () => {
    const before = up.count();
    const cases: Array<[string | object, string]> = [
      [withInfinity(msg, 'temperature'), 'temperature'],
      [{ ...msg, max_tokens: 1e300 }, 'max_tokens'],
      [{ ...msg, tools: [{ name: 't', input_schema: 'object' }] }, 'tools.0.input_schema'],
      [{ ...msg, tools: [{ name: 't', input_schema: [] }] }, 'tools.0.input_schema'],
      [{ ...msg, messages: [{ role: 'user', content: [] }] }, 'messages'],
    ];
    for (const [body, param] of cases) expectAnthropicInvalid(await call(gw, '/v1/messages', { body }), param);
    const sdk = new Anthropic({ apiKey: 'unused', baseURL: gw.url, maxRetries: 0 });
    const err = await sdk.messages
      .create({ ...msg, messages: [{ role: 'user', content: 'hi' }], tools: [{ name: '', input_schema: { type: 'object' } }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    expect((err as Error).message).toContain('tools.0.name: required, a non-empty string');
    expect(up.count()).toBe(before);
    // a tool without input_schema still gets the empty object schema
    expect((await call(gw, '/v1/messages', { body: { ...msg, tools: [{ name: 't' }] } })).status).toBe(200);
    expect(up.count()).toBe(before + 1);
  });

  it('/v1/responses', async () => {
    const before = up.count();
    const cases: Array<[string | object, string]> = [
      [withInfinity(resp, 'top_p'), 'top_p'],
      [{ ...resp, max_output_tokens: -1 }, 'max_output_tokens'],
      [{ ...resp, max_output_tokens: 1.5 }, 'max_output_tokens'],
      [{ ...resp, store: 'no' }, 'store'],
      [{ ...resp, text: 5 }, 'text'],
      [{ ...resp, text: { format: { type: 'json_schema', name: 'x' } } }, 'text.format.schema'],
      [{ ...resp, tools: [{ type: 'function', name: '' }] }, 'tools[0].name'],
      [{ model: 'm', instructions: 'be brief', input: [] }, 'input'],
    ];
    for (const [body, param] of cases) expectOpenAiError(await call(gw, '/v1/responses', { body }), 400, 'invalid_request', param);
    const sdk = new OpenAI({ apiKey: 'unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    const err = await sdk.responses
      .create({ ...resp, tools: [{ type: 'function', name: 'f', parameters: 'object' as unknown as Record<string, unknown>, strict: false }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('tools[0].parameters');
    expect(up.count()).toBe(before);
    expect((await sdk.responses.create({ ...resp, store: false, text: { format: { type: 'text' } } })).status).toBe('completed');
    expect(up.count()).toBe(before + 1);
  });

  it('/v1beta generateContent', async () => {
    const before = up.count();
    const cases: Array<[string | object, string]> = [
      [withInfinity(gem, 'temperature', 'generationConfig'), 'generationConfig.temperature'],
      [{ ...gem, generationConfig: { maxOutputTokens: -5 } }, 'generationConfig.maxOutputTokens'],
      [{ ...gem, tools: [{ functionDeclarations: [{ name: '' }] }] }, 'tools[0].functionDeclarations[0].name'],
      [{ ...gem, tools: [{ functionDeclarations: [{ name: 'f', parameters: 'OBJECT' }] }] }, 'tools[0].functionDeclarations[0].parameters'],
      [{ contents: [{ role: 'user', parts: [] }] }, 'contents'],
      [{ contents: [{ role: 'user', parts: [{ text: 'thinking…', thought: true }] }] }, 'contents'],
      [{ contents: [{ role: 'user', parts: [{ text: 5 }] }] }, 'contents[0].parts[0].text'],
    ];
    for (const [body, param] of cases) expectGeminiInvalid(await call(gw, GEN, { body }), param);
    expect(up.count()).toBe(before);
    expect((await call(gw, GEN, { body: gem })).status).toBe(200);
    expect(up.count()).toBe(before + 1);
  });
});
