/**
 * Regression: `options.maxTokensField` defaulted to `max_completion_tokens` only for api.openai.com. An Azure
 * OpenAI resource (`<resource>.openai.azure.com`) serves the same models, and its reasoning models (o-series,
 * gpt-5) refuse `max_tokens` the same way, so every client that sends a limit as `max_tokens` (the translated
 * APIs always do: `/v1/messages` `max_tokens`, `/v1/responses` `max_output_tokens`, Gemini `maxOutputTokens`)
 * got a 400 from an Azure channel unless its config named the field. The gateway has no Azure channel kind: the
 * channel's base URL host says it.
 *
 * A real gateway in this process and the project's fake OpenAI upstream standing in for an Azure OpenAI resource
 * that refuses `max_tokens`: the resource's host name resolves to the fake's loopback address for this process
 * (node:dns `lookup`, which every socket the gateway opens resolves through), so the channel's `baseUrl` is an
 * Azure host as in production, and the requests are real HTTP over real sockets. The official SDKs call it.
 */
import dns from 'node:dns';
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { tokenFieldOf } from '../../src/providers/openai/index.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, cleanupDirs, sdk, startGw } from '../helpers/env.js';

const AZURE_HOST = 'contoso-eastus2.openai.azure.com';
const realLookup = dns.lookup;
let gw: Gateway;
let azure: OpenAiFake;

beforeAll(async () => {
  // the Azure resource's name, and only it, resolves to the fake (which listens on 127.0.0.1)
  dns.lookup = ((host: string, ...rest: unknown[]) =>
    (realLookup as (...a: unknown[]) => unknown)(host.toLowerCase() === AZURE_HOST ? '127.0.0.1' : host, ...rest)) as typeof dns.lookup;
  azure = await startOpenAiUpstream({ reply: 'ok', refuseTokenField: 'max_tokens' });
  const port = new URL(azure.baseUrl).port;
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      // Azure OpenAI's v1 API: https://<resource>.openai.azure.com/openai/v1 (the fake answers under any prefix ending /chat/completions)
      { name: 'azure', provider: 'openai', baseUrl: `http://${AZURE_HOST}:${port}/v1`, apiKey: 'sk-fake-openai', models: ['o4-mini'] },
    ],
  });
});
afterAll(async () => {
  dns.lookup = realLookup;
  await gw?.close();
  await azure?.close();
  cleanupDirs();
});

describe('options.maxTokensField on an Azure OpenAI channel', () => {
  it('unset: a limit sent as max_tokens reaches the Azure host as max_completion_tokens (openai SDK, chat completions, both ways)', async () => {
    const client = sdk(gw);
    for (const stream of [false, true]) {
      const before = azure.requests.length;
      if (stream) {
        const s = await client.chat.completions.create({ model: 'o4-mini', stream: true, max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] });
        let text = '';
        for await (const c of s) text += c.choices[0]?.delta?.content ?? '';
        expect(text).toBe('ok');
      } else {
        const r = await client.chat.completions.create({ model: 'o4-mini', max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] });
        expect(r.choices[0]!.message.content).toBe('ok');
      }
      expect(azure.requests.length).toBe(before + 1);
      const seen = azure.lastRequest()!;
      expect(azure.requests.at(-1)!.headers.host).toBe(`${AZURE_HOST}:${new URL(azure.baseUrl).port}`);
      expect(seen.max_completion_tokens).toBe(7);
      expect(seen).not.toHaveProperty('max_tokens');
    }
  });

  it('unset: /v1/messages (Anthropic SDK), /v1/responses and Gemini reach it with the limit under max_completion_tokens', async () => {
    const anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
    const m = await anthropic.messages.create({ model: 'o4-mini', max_tokens: 7, messages: [{ role: 'user', content: 'hi' }] });
    expect(m.content).toEqual([expect.objectContaining({ type: 'text', text: 'ok' })]);
    expect(azure.lastRequest()).toMatchObject({ max_completion_tokens: 7 });
    expect(azure.lastRequest()).not.toHaveProperty('max_tokens');

    const r = await sdk(gw).responses.create({ model: 'o4-mini', max_output_tokens: 7, input: 'hi' });
    expect(r.output_text).toBe('ok');
    expect(azure.lastRequest()).toMatchObject({ max_completion_tokens: 7 });
    expect(azure.lastRequest()).not.toHaveProperty('max_tokens');

    const g = await call(gw, '/v1beta/models/o4-mini:generateContent', {
      body: { contents: [{ role: 'user', parts: [{ text: 'hi' }] }], generationConfig: { maxOutputTokens: 7 } },
    });
    expect(g.status, g.text).toBe(200);
    expect(azure.lastRequest()).toMatchObject({ max_completion_tokens: 7 });
    expect(azure.lastRequest()).not.toHaveProperty('max_tokens');
  });

  it('the default is decided by the base URL host: *.openai.azure.com (any case, a trailing dot) is OpenAI; other hosts are not', () => {
    const cfg = (baseUrl: string, options: Record<string, unknown> = {}) => ({ name: 'c', provider: 'openai', baseUrl, options }) as never;
    expect(tokenFieldOf(cfg('https://contoso.openai.azure.com/openai/v1'))).toBe('max_completion_tokens');
    expect(tokenFieldOf(cfg('https://Contoso.OpenAI.Azure.com/openai/deployments/o3'))).toBe('max_completion_tokens');
    expect(tokenFieldOf(cfg('https://contoso.openai.azure.com./openai/v1'))).toBe('max_completion_tokens');
    // not an Azure OpenAI resource's host
    expect(tokenFieldOf(cfg('https://openai.azure.com.evil.example/v1'))).toBeUndefined();
    expect(tokenFieldOf(cfg('https://contoso-openai.azure.com/v1'))).toBeUndefined();
    expect(tokenFieldOf(cfg('https://contoso.cognitiveservices.azure.com/openai/v1'))).toBeUndefined();
    // the option still wins (an Azure deployment on an older api-version that takes only max_tokens)
    expect(tokenFieldOf(cfg('https://contoso.openai.azure.com/openai/v1', { maxTokensField: 'max_tokens' }))).toBe('max_tokens');
    expect(tokenFieldOf({ name: 'c', provider: 'vllm', baseUrl: 'https://contoso.openai.azure.com/v1', options: {} } as never)).toBeUndefined();
  });
});
