/**
 * Regression: the Gemini surface read `generation_config` in snake_case but none of the keys inside it
 * (`max_output_tokens`, `stop_sequences`, `top_p`, `response_mime_type`, `response_schema`, …), nor
 * `parameters_json_schema` in a function declaration: the settings were dropped without a word, though
 * Google's REST API (proto JSON) takes both spellings and docs/apis.md says the gateway does. Raw REST, as
 * Python and curl callers send it, to an openai fake that records what reached it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, channelOf, cleanupDirs, startGw } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

let gw: Gateway;
let up: OpenAiFake;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: '{"city":"Paris"}' });
  gw = await startGw({ channels: [channelOf(up, 'oai', ['gem'])] });
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  cleanupDirs();
});

const contents = [{ role: 'user', parts: [{ text: 'Weather?' }] }];
const schema = { type: 'OBJECT', properties: { city: { type: 'STRING' } } };

describe('Gemini snake_case keys reach the upstream', () => {
  it('generation_config: max_output_tokens, stop_sequences, top_p, temperature, response_mime_type + response_schema', async () => {
    const r = await call(gw, '/v1beta/models/gem:generateContent', {
      body: {
        contents,
        generation_config: {
          temperature: 0.3,
          top_p: 0.5,
          max_output_tokens: 77,
          stop_sequences: ['END'],
          response_mime_type: 'application/json',
          response_schema: schema,
        },
      },
    });
    expect(r.status, r.text).toBe(200);
    expect(up.lastRequest()).toMatchObject({
      temperature: 0.3,
      top_p: 0.5,
      max_tokens: 77,
      stop: ['END'],
      response_format: { type: 'json_schema', json_schema: { schema: { type: 'object', properties: { city: { type: 'string' } } } } },
    });
  });

  it('response_json_schema, candidate_count and a malformed snake_case value are read too', async () => {
    const ok = await call(gw, '/v1beta/models/gem:generateContent', {
      body: { contents, generation_config: { response_mime_type: 'application/json', response_json_schema: { type: 'object' } } },
    });
    expect(ok.status, ok.text).toBe(200);
    expect(up.lastRequest()!.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'response', schema: { type: 'object' } } });
    const two = await call(gw, '/v1beta/models/gem:generateContent', { body: { contents, generation_config: { candidate_count: 2 } } });
    expect(two.status).toBe(400);
    expect(two.json.error).toMatchObject({ status: 'INVALID_ARGUMENT', details: [expect.objectContaining({ reason: 'UNSUPPORTED' })] });
    const bad = await call(gw, '/v1beta/models/gem:generateContent', { body: { contents, generation_config: { top_p: 'high' } } });
    expect(bad.status).toBe(400);
    expect(bad.json.error.message).toContain('topP');
  });

  it('function_declarations with parameters_json_schema, and tool_config allowed_function_names', async () => {
    const params = { type: 'object', properties: { city: { type: 'string', enum: ['Paris', 'Rome'] } }, required: ['city'] };
    const r = await call(gw, '/v1beta/models/gem:generateContent', {
      body: {
        contents,
        tools: [{ function_declarations: [{ name: 'get_weather', description: 'Weather', parameters_json_schema: params }] }],
        tool_config: { function_calling_config: { mode: 'ANY', allowed_function_names: ['get_weather'] } },
      },
    });
    expect(r.status, r.text).toBe(200);
    expect(up.lastRequest()).toMatchObject({
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: params } }],
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
    });
  });
});
