/**
 * Regression: the token limit's name on the way to an OpenAI-compatible upstream.
 *
 * Every inbound API sent the limit upstream as `max_tokens` (`/v1/messages` `max_tokens`, `/v1/responses`
 * `max_output_tokens`, Gemini `maxOutputTokens`), and `/v1/chat/completions` sent whichever name the client used.
 * OpenAI's reasoning models (o-series, gpt-5) refuse `max_tokens` ("Use 'max_completion_tokens' instead"), and
 * some OpenAI-compatible servers (Mistral) refuse `max_completion_tokens`, so a channel on either could not be
 * given a limit by some clients, and there was no way to say which name a channel takes. `options.maxTokensField`
 * says it; the openai provider renames the limit where it builds the upstream body, for every API alike.
 *
 * One gateway in process over three fakes of the OpenAI API: one refusing `max_tokens` (channel option
 * `max_completion_tokens`), one refusing `max_completion_tokens` (option `max_tokens`), one without the option.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { tokenFieldOf, withTokenField } from '../../src/providers/openai/index.js';
import type { ChatRequest } from '../../src/wire/openai.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, cleanupDirs, startGw, startInProcess } from '../helpers/env.js';

let gw: Gateway;
let reasoning: OpenAiFake;
let mistral: OpenAiFake;
let plain: OpenAiFake;

beforeAll(async () => {
  reasoning = await startOpenAiUpstream({ reply: 'ok', refuseTokenField: 'max_tokens' });
  mistral = await startOpenAiUpstream({ reply: 'ok', refuseTokenField: 'max_completion_tokens' });
  plain = await startOpenAiUpstream({ reply: 'ok' });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      channelOf(reasoning, 'o', ['o3'], { options: { maxTokensField: 'max_completion_tokens' } }),
      channelOf(mistral, 'mi', ['mistral-large'], { options: { maxTokensField: 'max_tokens' } }),
      channelOf(plain, 'pl', ['plain']),
    ],
  });
});
afterAll(async () => {
  await gw?.close();
  for (const f of [reasoning, mistral, plain]) await f?.close();
  cleanupDirs();
});

/** One request per inbound API, each with a token limit of 7 in that API's own field, streamed or not. */
function requests(model: string, stream: boolean): Array<[string, object]> {
  const gemini = `/v1beta/models/${model}:${stream ? 'streamGenerateContent?alt=sse' : 'generateContent'}`;
  return [
    ['/v1/chat/completions', { model, stream, max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] }],
    ['/v1/chat/completions', { model, stream, max_completion_tokens: 7, messages: [{ role: 'user', content: 'hi' }] }],
    ['/v1/messages', { model, stream, max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] }],
    ['/v1/responses', { model, stream, max_output_tokens: 7, input: 'hi' }],
    [gemini, { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 7 } }],
  ];
}

describe('options.maxTokensField', () => {
  it('max_completion_tokens: every API reaches an upstream that refuses max_tokens with the limit under its name', async () => {
    for (const stream of [false, true])
      for (const [path, body] of requests('o3', stream)) {
        const r = await call(gw, path, { body });
        expect(r.status, `${path} ${r.text}`).toBe(200);
        const seen = reasoning.lastRequest()!;
        expect(seen.max_completion_tokens, path).toBe(7);
        expect(seen, path).not.toHaveProperty('max_tokens');
      }
  });

  it('max_tokens: every API reaches an upstream that refuses max_completion_tokens with the limit under its name', async () => {
    for (const stream of [false, true])
      for (const [path, body] of requests('mistral-large', stream)) {
        const r = await call(gw, path, { body });
        expect(r.status, `${path} ${r.text}`).toBe(200);
        const seen = mistral.lastRequest()!;
        expect(seen.max_tokens, path).toBe(7);
        expect(seen, path).not.toHaveProperty('max_completion_tokens');
      }
  });

  it('unset (an OpenAI-compatible server other than api.openai.com): the limit goes under the name the request has', async () => {
    await call(gw, '/v1/chat/completions', { body: { model: 'plain', max_completion_tokens: 7, messages: [{ role: 'user', content: 'hi' }] } });
    expect(plain.lastRequest()).toMatchObject({ max_completion_tokens: 7 });
    expect(plain.lastRequest()).not.toHaveProperty('max_tokens');
    await call(gw, '/v1/messages', { body: { model: 'plain', max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] } });
    expect(plain.lastRequest()).toMatchObject({ max_tokens: 7 });
    expect(plain.lastRequest()).not.toHaveProperty('max_completion_tokens');
  });

  it('defaults by upstream: api.openai.com takes max_completion_tokens, any other server the request as it is', () => {
    const cfg = (provider: string, baseUrl?: string, options: Record<string, unknown> = {}) => ({ name: 'c', provider, baseUrl, options }) as never;
    expect(tokenFieldOf(cfg('openai'))).toBe('max_completion_tokens');
    expect(tokenFieldOf(cfg('openai', 'https://API.openai.com/v1'))).toBe('max_completion_tokens');
    expect(tokenFieldOf(cfg('openai', 'https://api.mistral.ai/v1'))).toBeUndefined();
    expect(tokenFieldOf(cfg('vllm'))).toBeUndefined();
    expect(tokenFieldOf(cfg('openai', undefined, { maxTokensField: 'max_tokens' }))).toBe('max_tokens');
    expect(() => tokenFieldOf(cfg('openai', undefined, { maxTokensField: 'max_output_tokens' }))).toThrow(/options\.maxTokensField must be/);
  });

  it('renames without copying a request that has nothing to rename; with both names, max_completion_tokens is the limit', () => {
    const req: ChatRequest = { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 5 };
    expect(withTokenField(req, 'max_completion_tokens')).toBe(req);
    const both: ChatRequest = { ...req, max_tokens: 9 };
    expect(withTokenField(both, 'max_tokens')).toEqual({ model: 'm', messages: req.messages, max_tokens: 5 });
    expect(withTokenField(both, 'max_completion_tokens')).toEqual({ model: 'm', messages: req.messages, max_completion_tokens: 5 });
    expect(both).toEqual({ ...req, max_tokens: 9 });
  });

  it('a value other than the two names stops the gateway, naming the option', async () => {
    const start = startInProcess({
      gateway: { port: 0 },
      channels: [{ name: 'x', provider: 'openai', baseUrl: plain.baseUrl, models: ['x'], options: { maxTokensField: 'max_output_tokens' } }],
    });
    await expect(start).rejects.toThrow(/options\.maxTokensField must be "max_tokens" or "max_completion_tokens"/);
  });
});
