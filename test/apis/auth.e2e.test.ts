/**
 * Client auth on the inbound APIs: each takes its own header (x-api-key or Bearer on /v1/messages, Bearer
 * on /v1/responses, x-goog-api-key or ?key= on /v1beta) against gateway.auth.tokens, and a refusal comes
 * back in that API's error shape. `?key=` is honoured only on /v1beta.
 */
import Anthropic from '@anthropic-ai/sdk';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, cleanupDirs, startGw } from '../helpers/env.js';

const TOKEN = 'sy-client-token-4c1d9e';
let gw: Gateway;
beforeAll(async () => {
  gw = await startGw({ gateway: { auth: { tokens: [TOKEN] } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

const msg = { model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] };
const gem = { contents: [{ parts: [{ text: 'hi' }] }] };

describe('inbound API auth', () => {
  it('/v1/messages: x-api-key or Bearer; otherwise 401 authentication_error in Anthropic shape', async () => {
    const sdk = new Anthropic({ apiKey: TOKEN, baseURL: gw.url, maxRetries: 0 });
    expect((await sdk.messages.create({ ...msg, messages: [{ role: 'user', content: 'hi' }] })).type).toBe('message');
    expect((await call(gw, '/v1/messages', { body: msg, headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    const bad = await call(gw, '/v1/messages', { body: msg, headers: { 'x-api-key': 'wrong' } });
    expect(bad.status).toBe(401);
    expect(bad.json).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
    expect(bad.text).not.toContain(TOKEN);
    expect((await call(gw, `/v1/messages?key=${TOKEN}`, { body: msg })).status).toBe(401);
    await expect(
      new Anthropic({ apiKey: 'nope', baseURL: gw.url, maxRetries: 0 }).messages.create({ ...msg, messages: [{ role: 'user', content: 'hi' }] }),
    ).rejects.toBeInstanceOf(Anthropic.AuthenticationError);
  });

  it('/v1/responses: Bearer; otherwise 401 in OpenAI shape', async () => {
    expect((await call(gw, '/v1/responses', { body: { model: 'mock-1', input: 'hi' }, headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
    const bad = await call(gw, '/v1/responses', { body: { model: 'mock-1', input: 'hi' } });
    expect(bad.status).toBe(401);
    expect(bad.json.error).toMatchObject({ type: 'authentication_error', code: 'unauthorized' });
  });

  it('/v1beta: x-goog-api-key or ?key=; otherwise 401 UNAUTHENTICATED in Google shape', async () => {
    expect((await call(gw, '/v1beta/models/mock-1:generateContent', { body: gem, headers: { 'x-goog-api-key': TOKEN } })).status).toBe(200);
    expect((await call(gw, `/v1beta/models/mock-1:generateContent?key=${TOKEN}`, { body: gem })).status).toBe(200);
    const bad = await call(gw, '/v1beta/models/mock-1:generateContent?key=wrong', { body: gem });
    expect(bad.status).toBe(401);
    expect(bad.json).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
    expect((await call(gw, '/v1beta/models')).status).toBe(401);
  });
});
