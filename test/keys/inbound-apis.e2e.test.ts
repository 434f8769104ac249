/**
 * Virtual keys on the agent-facing inbound APIs (/v1/messages, /v1/responses, /v1beta): each authenticates
 * with its own header, is admitted through the key's models and limits (a refusal in that API's own error
 * format, with Retry-After), and records usage that matches the upstream's counts exactly. The token counters
 * (count_tokens, :countTokens) are held to the key's models and request limits too, and the Gemini model list
 * to its models.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { channelOf, cleanupDirs, startGw } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';
import { admin, createKey } from './helpers.js';

const STATIC = 'static-client-token-314159';
let up: OpenAiFake;
let ant: FakeUpstream;
let gw: Gateway & { logs: string[] };

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'alpha beta gamma' });
  ant = await startAnthropicUpstream({});
  gw = await startGw({
    gateway: { auth: { tokens: [STATIC] }, keys: { refreshMs: 100 } },
    channels: [channelOf(up, 'oa', ['gpt-4o-mini', 'gpt-4o'], { pricing: { input: 1, output: 2 } }), channelOf(ant, 'ant', ['claude-x'])],
  });
});

afterAll(async () => {
  await gw?.close();
  await up?.close();
  await ant?.close();
  cleanupDirs();
});

const anthropic = (secret: string) => new Anthropic({ apiKey: secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
const openai = (secret: string) => new OpenAI({ apiKey: secret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
const gemini = (secret: string, model: string, how: 'header' | 'query') =>
  fetch(`${gw.url}/v1beta/models/${model}:generateContent${how === 'query' ? `?key=${secret}` : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(how === 'header' ? { 'x-goog-api-key': secret } : {}) },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] }),
  });
const geminiCount = (secret: string, model: string) =>
  fetch(`${gw.url}/v1beta/models/${model}:countTokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
    body: JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'how many?' }] }] }),
  });
const refusal = (p: Promise<unknown>) =>
  p.then(
    () => undefined,
    (e: unknown) => e,
  );
const hi = [{ role: 'user' as const, content: 'hi' }];

describe('virtual keys on /v1/messages, /v1/responses and /v1beta', () => {
  it('each API takes the key in its own header and records usage equal to the upstream counts', async () => {
    const k = await createKey(gw.url, { name: 'agent-apis', models: ['gpt-4o-mini'] });
    up.enqueue({ usage: { input: 11, output: 5 } }, { usage: { input: 13, output: 7 } }, { usage: { input: 17, output: 3 } });

    const m = await anthropic(k.secret).messages.create({ model: 'gpt-4o-mini', max_tokens: 64, messages: [{ role: 'user', content: 'hi' }] });
    expect(m.usage).toMatchObject({ input_tokens: 11, output_tokens: 5 });

    const stream = await openai(k.secret).responses.create({ model: 'gpt-4o-mini', input: 'hi', stream: true });
    let completedUsage: unknown;
    for await (const e of stream) if (e.type === 'response.completed') completedUsage = e.response.usage;
    expect(completedUsage).toMatchObject({ input_tokens: 13, output_tokens: 7 });

    const g = await gemini(k.secret, 'gpt-4o-mini', 'query');
    expect(g.status, await g.clone().text()).toBe(200);
    expect(((await g.json()) as { usageMetadata: unknown }).usageMetadata).toMatchObject({ promptTokenCount: 17, candidatesTokenCount: 3 });

    const u = await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`);
    expect(u.status).toBe(200);
    // cost: (11+13+17) input at 1 per million + (5+7+3) output at 2 per million
    expect(u.json.total).toMatchObject({ requests: 3, inputTokens: 41, outputTokens: 15 });
    expect(u.json.total.cost).toBeCloseTo((41 * 1 + 15 * 2) / 1e6, 12);
  });

  it('an answer the upstream did not count (no usage; a stream without the usage chunk) is charged an estimate on each API, streamed and not', async () => {
    const reply = 'alpha beta gamma';
    const geminiBody = JSON.stringify({ contents: [{ role: 'user', parts: [{ text: 'hi' }] }] });
    const cases: Array<[string, (secret: string) => Promise<void>]> = [
      [
        'messages',
        async (secret) => {
          const m = await anthropic(secret).messages.create({ model: 'gpt-4o-mini', max_tokens: 64, messages: hi });
          expect(m.content).toEqual([expect.objectContaining({ type: 'text', text: reply })]);
        },
      ],
      [
        'messages-stream',
        async (secret) => expect(await anthropic(secret).messages.stream({ model: 'gpt-4o-mini', max_tokens: 64, messages: hi }).finalText()).toBe(reply),
      ],
      ['responses', async (secret) => expect((await openai(secret).responses.create({ model: 'gpt-4o-mini', input: 'hi' })).output_text).toBe(reply)],
      [
        'responses-stream',
        async (secret) => {
          let text = '';
          for await (const e of await openai(secret).responses.create({ model: 'gpt-4o-mini', input: 'hi', stream: true }))
            if (e.type === 'response.output_text.delta') text += e.delta;
          expect(text).toBe(reply);
        },
      ],
      [
        'gemini',
        async (secret) => {
          const g = await fetch(`${gw.url}/v1beta/models/gpt-4o-mini:generateContent`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
            body: geminiBody,
          });
          expect(g.status).toBe(200);
          expect(JSON.stringify(await g.json())).toContain(reply);
        },
      ],
      [
        'gemini-stream',
        async (secret) => {
          const g = await fetch(`${gw.url}/v1beta/models/gpt-4o-mini:streamGenerateContent?alt=sse`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-goog-api-key': secret },
            body: geminiBody,
          });
          expect(g.status).toBe(200);
          expect(await g.text()).toContain('"finishReason":"STOP"');
        },
      ],
    ];
    const got: Record<string, unknown> = {};
    const want: Record<string, unknown> = {};
    for (const [name, run] of cases) {
      const k = await createKey(gw.url, { name: `uncounted-${name}` });
      up.enqueue({ reply, noUsage: true });
      await run(k.secret);
      const u = (await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`)).json.total;
      got[name] = { requests: u.requests, inputCharged: u.inputTokens > 0, outputTokens: u.outputTokens, priced: u.cost > 0 };
      // a stream: one token per chunk sent (role, three words, finish); an answer: its text at ~4 characters a token
      want[name] = { requests: 1, inputCharged: true, outputTokens: name.endsWith('-stream') ? 5 : Math.ceil(reply.length / 4), priced: true };
    }
    expect(got).toEqual(want);
  });

  it('a model the key may not use is refused in the caller format (403), before any upstream call', async () => {
    const k = await createKey(gw.url, { name: 'mini-only', models: ['gpt-4o-mini'] });
    const before = up.requests.length;
    const err = await anthropic(k.secret)
      .messages.create({ model: 'gpt-4o', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect((err as InstanceType<typeof Anthropic.PermissionDeniedError>).error).toMatchObject({ type: 'error', error: { type: 'permission_error' } });

    const g = await gemini(k.secret, 'gpt-4o', 'header');
    expect(g.status).toBe(403);
    expect(await g.json()).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } });
    expect(up.requests.length).toBe(before);
  });

  it('requests per minute hold across the APIs: the third request is a 429 in that API format with Retry-After', async () => {
    const k = await createKey(gw.url, { name: 'rpm-2', limits: { requestsPerMin: 2 } });
    const { response: first } = await anthropic(k.secret)
      .messages.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'one' }] })
      .withResponse();
    const firstHeaders = first.headers;
    const { response: second } = await openai(k.secret).responses.create({ model: 'gpt-4o-mini', input: 'two' }).withResponse();
    const secondHeaders = second.headers;

    const raw = await fetch(`${gw.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-api-key': k.secret, 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'three' }] }),
    });
    expect(raw.status).toBe(429);
    expect(Number(raw.headers.get('retry-after'))).toBeGreaterThan(0);
    // the admitted requests carried the same state in their own formats
    expect(firstHeaders.get('anthropic-ratelimit-requests-limit')).toBe('2');
    expect(firstHeaders.get('anthropic-ratelimit-requests-remaining')).toBe('1');
    expect(Date.parse(firstHeaders.get('anthropic-ratelimit-requests-reset') ?? '')).toBeGreaterThan(Date.now() - 60_000);
    expect(firstHeaders.get('x-ratelimit-limit-requests')).toBeNull();
    expect(secondHeaders.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(raw.headers.get('anthropic-ratelimit-requests-limit')).toBe('2');
    expect(await raw.json()).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });

    const g = await gemini(k.secret, 'gpt-4o-mini', 'header');
    expect(g.status).toBe(429);
    expect(await g.json()).toMatchObject({ error: { code: 429, status: 'RESOURCE_EXHAUSTED' } });
  });

  it('wrong and disabled keys get a 401 in each format; the static token still works', async () => {
    const k = await createKey(gw.url, { name: 'to-disable' });
    await admin(gw.url, 'POST', `/admin/keys/${k.id}/disable`);
    const err = await anthropic(k.secret)
      .messages.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: [{ role: 'user', content: 'hi' }] })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(Anthropic.AuthenticationError);
    const g = await gemini('sy-' + 'z'.repeat(43), 'gpt-4o-mini', 'header');
    expect(g.status).toBe(401);
    expect(await g.json()).toMatchObject({ error: { code: 401, status: 'UNAUTHENTICATED' } });
    const ok = await openai(STATIC).responses.create({ model: 'gpt-4o-mini', input: 'hi' });
    expect(ok.status).toBe('completed');
  });
});

describe('token counts and the Gemini model list under a key', () => {
  it("count_tokens and :countTokens refuse a model outside the key's globs (403 in each format) before any upstream call", async () => {
    const k = await createKey(gw.url, { name: 'count-mini-only', models: ['gpt-4o-mini'] });
    const err = await refusal(anthropic(k.secret).messages.countTokens({ model: 'claude-x', messages: hi }));
    expect(err).toBeInstanceOf(Anthropic.PermissionDeniedError);
    expect((err as InstanceType<typeof Anthropic.PermissionDeniedError>).error).toMatchObject({
      type: 'error',
      error: { type: 'permission_error', code: 'model_not_allowed' },
    });
    expect(ant.lastPath()).toBeUndefined(); // the anthropic channel's counter was never asked

    const g = await geminiCount(k.secret, 'gpt-4o');
    expect(g.status).toBe(403);
    expect(await g.json()).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } });

    // its own model is counted as before
    expect((await anthropic(k.secret).messages.countTokens({ model: 'gpt-4o-mini', messages: hi })).input_tokens).toBeGreaterThan(0);
    expect((await geminiCount(k.secret, 'gpt-4o-mini')).status).toBe(200);
    const allowed = await createKey(gw.url, { name: 'count-claude', models: ['claude-*'] });
    const up = await anthropic(allowed.secret).messages.countTokens({ model: 'claude-x', messages: hi }).withResponse();
    expect(up.response.headers.get('x-switchyard-token-count')).toBe('upstream');
    expect(ant.lastPath()).toBe('/v1/messages/count_tokens');
  });

  it('a count takes one of requestsPerMin like any request (429 in each format), spends no tokens or budget, records no usage', async () => {
    const k = await createKey(gw.url, { name: 'count-rpm-2', limits: { requestsPerMin: 2 } });
    const first = await anthropic(k.secret).messages.countTokens({ model: 'gpt-4o-mini', messages: hi }).withResponse();
    expect(first.response.headers.get('anthropic-ratelimit-requests-remaining')).toBe('1');
    const second = await geminiCount(k.secret, 'gpt-4o-mini');
    expect(second.status).toBe(200);
    expect(second.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const err = await refusal(anthropic(k.secret).messages.countTokens({ model: 'gpt-4o-mini', messages: hi }));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect(Number((err as InstanceType<typeof Anthropic.RateLimitError>).headers.get('retry-after'))).toBeGreaterThan(0);
    const g = await geminiCount(k.secret, 'gpt-4o-mini');
    expect(g.status).toBe(429);
    expect(await g.json()).toMatchObject({ error: { code: 429, status: 'RESOURCE_EXHAUSTED' } });
    // the main endpoint shares the same bucket
    expect(await refusal(anthropic(k.secret).messages.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: hi }))).toBeInstanceOf(Anthropic.RateLimitError);

    // a key whose tokens and budget are spent may still count, one count after another (each gives its lease back)
    const spent = await createKey(gw.url, { name: 'count-spent', limits: { tokensPerMin: 10, concurrent: 1 }, budget: { period: 'day', tokens: 10 } });
    up.enqueue({ usage: { input: 40, output: 20 } });
    await anthropic(spent.secret).messages.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: hi });
    expect(await refusal(anthropic(spent.secret).messages.create({ model: 'gpt-4o-mini', max_tokens: 8, messages: hi }))).toBeInstanceOf(
      Anthropic.RateLimitError,
    );
    expect((await anthropic(spent.secret).messages.countTokens({ model: 'gpt-4o-mini', messages: hi })).input_tokens).toBeGreaterThan(0);
    expect((await geminiCount(spent.secret, 'gpt-4o-mini')).status).toBe(200);

    const u = await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`);
    expect(u.json.total.requests).toBe(0);
    expect((await admin(gw.url, 'GET', `/admin/usage?key=${spent.id}&by=model`)).json.total.requests).toBe(1);
  });

  it("GET /v1beta/models with a key lists only the key's models, like /v1/models", async () => {
    const k = await createKey(gw.url, { name: 'list-mini', models: ['gpt-4o-mini', 'claude-*'] });
    const r = await fetch(`${gw.url}/v1beta/models`, { headers: { 'x-goog-api-key': k.secret } });
    expect(r.status).toBe(200);
    const names = ((await r.json()) as { models: Array<{ name: string }> }).models.map((m) => m.name).sort();
    expect(names).toEqual(['models/claude-x', 'models/gpt-4o-mini']);
    const all = await fetch(`${gw.url}/v1beta/models`, { headers: { 'x-goog-api-key': STATIC } });
    expect(((await all.json()) as { models: unknown[] }).models).toHaveLength(3);
    // one model read by name: the key's own, yes; another, the refusal a request for it gets (Google's format)
    expect((await fetch(`${gw.url}/v1beta/models/gpt-4o-mini`, { headers: { 'x-goog-api-key': k.secret } })).status).toBe(200);
    const other = await fetch(`${gw.url}/v1beta/models/gpt-4o`, { headers: { 'x-goog-api-key': k.secret } });
    expect(other.status).toBe(403);
    expect(await other.json()).toMatchObject({ error: { code: 403, status: 'PERMISSION_DENIED' } });
    expect((await fetch(`${gw.url}/v1beta/models/gpt-4o`, { headers: { 'x-goog-api-key': STATIC } })).status).toBe(200);
  });
});
