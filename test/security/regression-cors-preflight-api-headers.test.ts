/**
 * Regression: a preflight from an allowed browser origin allowed only `authorization, content-type, accept,
 * x-request-id, x-session-id`, so the Anthropic and Gemini APIs' browser clients (x-api-key,
 * anthropic-version, anthropic-dangerous-direct-browser-access, x-goog-api-key) and every Stainless SDK
 * (x-stainless-*) were blocked by the browser before their request was sent. The official SDKs run here
 * through a fetch that does what a browser does: a preflight naming the request's headers, the request only
 * when every one of them is allowed.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, cleanupDirs, startGw } from '../helpers/env.js';

const APP = 'http://app.example';
let gw: Gateway;
/** the header names each preflight asked for, in order */
const asked: string[][] = [];

beforeAll(async () => {
  gw = await startGw({ gateway: { allowedOrigins: [APP] }, channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }] });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

/** set by the browser itself, never by page code: not in a preflight */
const BROWSER_SET = new Set(['user-agent', 'content-length', 'host', 'connection', 'accept-encoding', 'accept']);

/** fetch as a page on APP runs it: preflight first, then the request with its Origin, refused as the browser would */
const browserFetch: typeof fetch = async (input, init) => {
  const headers = new Headers(init?.headers);
  const names = [...headers.keys()].filter((n) => !BROWSER_SET.has(n)).sort();
  asked.push(names);
  const url = input instanceof Request ? input.url : String(input);
  const pre = await fetch(url, {
    method: 'OPTIONS',
    headers: { origin: APP, 'access-control-request-method': init?.method ?? 'GET', 'access-control-request-headers': names.join(',') },
  });
  const allowed = (pre.headers.get('access-control-allow-headers') ?? '').split(',').map((h) => h.trim().toLowerCase());
  const blocked = names.filter((n) => !allowed.includes(n));
  if (pre.status !== 204 || pre.headers.get('access-control-allow-origin') !== APP || blocked.length)
    throw new TypeError(`CORS preflight refused (status ${pre.status}; not allowed: ${blocked.join(', ')})`);
  headers.set('origin', APP);
  return fetch(url, { ...init, headers });
};

describe('a preflight from an allowed origin allows what the APIs’ browser clients send', () => {
  it('the Anthropic SDK in a browser (anthropic-version, anthropic-dangerous-direct-browser-access, x-stainless-*)', async () => {
    const client = new Anthropic({ apiKey: 'sk-ant-page', baseURL: gw.url, maxRetries: 0, dangerouslyAllowBrowser: true, fetch: browserFetch });
    const msg = await client.messages.create({ model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] });
    expect(msg.type).toBe('message');
    const names = asked.at(-1)!;
    for (const h of ['anthropic-version', 'anthropic-dangerous-direct-browser-access', 'content-type']) expect(names).toContain(h);
    expect(names.some((n) => n.startsWith('x-stainless-'))).toBe(true);
  });

  it('an Anthropic client authenticating with x-api-key (Claude Code, earlier SDKs)', async () => {
    const r = await browserFetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'x-api-key': 'sk-ant-page',
        'anthropic-version': '2023-06-01',
        'anthropic-beta': 'prompt-caching-2024-07-31',
      },
      body: JSON.stringify({ model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('the openai SDK in a browser (authorization, x-stainless-*)', async () => {
    const client = new OpenAI({ apiKey: 'sk-page', baseURL: `${gw.url}/v1`, maxRetries: 0, dangerouslyAllowBrowser: true, fetch: browserFetch });
    const r = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: 'hi' }] });
    expect(r.choices[0]!.message.role).toBe('assistant');
    expect(asked.at(-1)!.some((n) => n.startsWith('x-stainless-'))).toBe(true);
  });

  it('a Gemini browser client (x-goog-api-key, x-goog-api-client)', async () => {
    const r = await browserFetch(`${gw.url}/v1beta/models/mock-1:generateContent`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-goog-api-key': 'page-key', 'x-goog-api-client': 'google-genai-sdk/1.0.0 gl-node/web' },
      body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
    });
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('a request-headers value that is not a list of header names gets the base list, never a 500; other origins stay refused', async () => {
    const odd = await call(gw, '/v1/messages', {
      method: 'OPTIONS',
      headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key, (not a name)' },
    });
    expect(odd.status).toBe(204);
    expect(odd.headers.get('access-control-allow-headers')).toBe('authorization, content-type, accept, x-request-id, x-session-id');
    expect(odd.headers.get('vary')).toBe('Origin, Access-Control-Request-Headers');
    const foreign = await call(gw, '/v1/messages', {
      method: 'OPTIONS',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key' },
    });
    expect(foreign.status).toBe(403);
    expect(foreign.headers.get('access-control-allow-headers')).toBeNull();
  });
});
