/**
 * An `openai` channel with `options.responsesApi: true`: /v1/responses passes through natively — the
 * client's body (reasoning items with encrypted_content, include, store, text controls) reaches the
 * upstream untouched apart from `model`, the recorded event sequence comes back verbatim, the gateway's
 * store still answers previous_response_id (sent up as the whole history), and a cut is response.failed.
 */
import { readFileSync } from 'node:fs';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, cleanupDirs, startGw } from '../helpers/env.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';

let gw: Gateway;
let up: ResponsesFake;
let cut: ResponsesFake;
let ctx: ResponsesFake;
let echo: ResponsesFake;
const ECHOED_KEY = 'sk-native-echoed-key-5f2c9d7a1b';
let client: OpenAI;
const FIXTURE = readFileSync(new URL('./fixtures/openai-responses-text.sse', import.meta.url), 'utf8');

beforeAll(async () => {
  up = await startResponsesUpstream();
  cut = await startResponsesUpstream({ cutAfterEvents: 5 });
  ctx = await startResponsesUpstream({
    failAfterEvents: 4,
    failure: { code: 'context_length_exceeded', message: 'Your input exceeds the context window of this model. Please adjust your input and try again.' },
  });
  // an upstream whose failure echoes the key it was sent (some do, in "invalid key" messages)
  echo = await startResponsesUpstream({ failAfterEvents: 2, failure: { code: 'invalid_api_key', message: `Incorrect API key provided: ${ECHOED_KEY}` } });
  gw = await startGw({
    channels: [
      {
        name: 'oai-native',
        provider: 'openai',
        baseUrl: up.baseUrl,
        apiKey: 'sk-up',
        models: ['gpt-native'],
        modelMap: { 'gpt-native': 'gpt-4.1' },
        options: { responsesApi: true },
      },
      { name: 'oai-cut', provider: 'openai', baseUrl: cut.baseUrl, apiKey: 'sk-up', models: ['gpt-cut'], options: { responsesApi: true } },
      { name: 'oai-ctx', provider: 'openai', baseUrl: ctx.baseUrl, apiKey: 'sk-up', models: ['gpt-ctx'], options: { responsesApi: true } },
      { name: 'oai-echo', provider: 'openai', baseUrl: echo.baseUrl, apiKey: ECHOED_KEY, models: ['gpt-echo'], options: { responsesApi: true } },
      // one model on a native channel and a translating one (the mock, preferred by priority); one on the mock only
      { name: 'oai-both', provider: 'openai', baseUrl: up.baseUrl, apiKey: 'sk-up', models: ['gpt-both'], priority: 1, options: { responsesApi: true } },
      { name: 'mock-both', provider: 'mock', models: ['gpt-both', 'mock-only'], priority: 0 },
    ],
  });
  client = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.close();
  await up?.close();
  await cut?.close();
  await ctx?.close();
  await echo?.close();
  cleanupDirs();
});

describe('native Responses pass-through', () => {
  it('the body reaches the upstream untouched but for the mapped model; the stream comes back verbatim', async () => {
    const body = {
      model: 'gpt-native',
      instructions: 'You are Codex.',
      input: [
        { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'gAAAAB-opaque' },
        { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'hi' }] },
      ],
      tools: [{ type: 'custom', name: 'apply_patch', description: 'patch', format: { type: 'grammar', syntax: 'lark', definition: 'start: x' } }],
      tool_choice: 'auto',
      parallel_tool_calls: false,
      reasoning: { effort: 'medium', summary: 'auto' },
      store: false,
      stream: true,
      include: ['reasoning.encrypted_content'],
      prompt_cache_key: 'conv-1',
    };
    const r = await call(gw, '/v1/responses', { body });
    expect(r.status).toBe(200);
    expect(r.text).toBe(FIXTURE);
    expect(up.lastRequest()).toEqual({ ...body, model: 'gpt-4.1' });
    expect(up.lastHeaders()!.authorization).toBe('Bearer sk-up');
  });

  it('non-stream answers the upstream response; previous_response_id is answered from the gateway store', async () => {
    const first = await client.responses.create({ model: 'gpt-native', input: 'My name is Ada.' });
    expect(first.id).toBe('resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452d3795b');
    expect(first.output_text).toBe('Hi there!');
    expect((await client.responses.retrieve(first.id)).output_text).toBe('Hi there!');
    await client.responses.create({ model: 'gpt-native', input: 'And now?', previous_response_id: first.id });
    const sent = up.lastRequest()!;
    expect(sent.previous_response_id).toBeUndefined();
    expect(JSON.stringify(sent.input)).toContain('My name is Ada.');
    expect(JSON.stringify(sent.input)).toContain('Hi there!');
    expect(JSON.stringify(sent.input)).toContain('And now?');
  });

  it('an upstream cut mid-stream ends with response.failed', async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'gpt-cut', input: 'x', stream: true } });
    const types = [...r.text.matchAll(/^event: (.+)$/gm)].map((m) => m[1]);
    expect(types.at(-1)).toBe('response.failed');
    expect(types).not.toContain('response.completed');
  });

  it("the upstream's response.failed is the stream's end, verbatim (its id, sequence_number and error.code); context_length_exceeded is the client's error, not held against the channel", async () => {
    const body = { model: 'gpt-ctx', input: 'x', stream: true };
    const direct = await call({ url: ctx.baseUrl }, '/responses', { body });
    const before = gw.router.healthOf('local/oai-ctx');
    const r = await call(gw, '/v1/responses', { body });
    expect(r.status).toBe(200);
    expect(r.text).toBe(direct.text);
    expect(r.text.match(/^event: response\.failed$/gm)).toHaveLength(1);
    const health = gw.router.healthOf('local/oai-ctx');
    expect(health.consecutiveFailures).toBe(before.consecutiveFailures);
    expect(health.lastError).toBe(before.lastError);

    // what Codex and the SDK act on: the upstream's code, on the upstream's response
    const events: Array<{ type: string; sequence_number: number; response?: { id: string; error: { code: string } | null } }> = [];
    for await (const e of await client.responses.create({ model: 'gpt-ctx', input: 'x', stream: true })) events.push(e);
    const last = events.at(-1)!;
    expect(last.type).toBe('response.failed');
    expect(last.sequence_number).toBe(4);
    expect(last.response).toMatchObject({ id: events[0]!.response!.id, error: { code: 'context_length_exceeded' } });
    expect(events.filter((e) => e.type === 'response.failed')).toHaveLength(1);
  });

  it("the relayed response.failed is scrubbed of the channel's key when the upstream echoes it", async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'gpt-echo', input: 'x', stream: true } });
    expect(r.text.match(/^event: response\.failed$/gm)).toHaveLength(1);
    expect(r.text).not.toContain(ECHOED_KEY);
    expect(r.text).toContain('Incorrect API key provided: [REDACTED]');
    expect(r.text).toContain('"code":"invalid_api_key"');
  });

  it('an item the chat form has no place for goes only to a native channel, whole; with none it is refused', async () => {
    const input = [
      { type: 'computer_call', id: 'cu_1', call_id: 'call_1', action: { type: 'screenshot' }, status: 'completed' },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'what now?' }] },
    ];
    // the mock has the better priority, but cannot take the item: the native channel serves it, untouched
    for (let i = 0; i < 3; i++) {
      const r = await call(gw, '/v1/responses', { body: { model: 'gpt-both', input } });
      expect(r.status).toBe(200);
      expect(r.headers.get('x-switchyard-channel')).toBe('oai-both');
      expect(up.lastRequest()).toMatchObject({ input });
    }
    // a request the chat form holds whole still follows priority
    const plain = await call(gw, '/v1/responses', { body: { model: 'gpt-both', input: 'hello' } });
    expect(plain.headers.get('x-switchyard-channel')).toBe('mock-both');
    const refused = await call(gw, '/v1/responses', { body: { model: 'mock-only', input } });
    expect(refused.status).toBe(400);
    expect(refused.json.error).toMatchObject({ code: 'unsupported', param: 'input[0].type' });
  });
});
