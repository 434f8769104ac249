/**
 * Regression: an upstream that answers a non-streaming request with 200, a `Retry-After` header and a rate-limit
 * error object as the body (as some OpenAI-compatible proxies and Anthropic-compatible servers do) was read as
 * the rate limit it reports (rate_limited), but its Retry-After was not read: the error had no retryAfterSec, so
 * the client's answer had no Retry-After header and the router neither took the channel out for that long nor
 * kept from asking it again. Now the Retry-After of a 2xx answer whose body is an error object is read by the
 * one reading an error status's uses (`retryAfterOf`, src/providers/upstream.ts), on every non-streaming path.
 * One real gateway process, upstreams speaking the OpenAI and Anthropic wire formats, the official SDKs and
 * plain fetch as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';

const RATE_MESSAGE = 'Rate limit reached for gpt-4.1 in organization org-fake on requests per min (RPM). Please try again in 7s.';
const OA_RATE = { error: { message: RATE_MESSAGE, type: 'requests', param: null, code: 'rate_limit_exceeded' } };
const AN_RATE = { type: 'error', error: { type: 'rate_limit_error', message: 'Number of request tokens has exceeded your per-minute rate limit' } };
const CHOICES_RATE = {
  id: 'chatcmpl-rl-1',
  object: 'chat.completion',
  created: 1_764_547_200,
  model: 'gpt-4.1',
  choices: [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }],
  ...OA_RATE,
};

/** Answers every request with 200, `retry-after: <retryAfter>` and `body`; counts the requests. */
async function rateLimited(body: unknown, retryAfter: string): Promise<{ baseUrl: string; count: () => number; server: Server }> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(200, { 'content-type': 'application/json', 'retry-after': retryAfter }).end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, count: () => n, server };
}

let gw: GatewayProcess;
const ups: Array<Awaited<ReturnType<typeof rateLimited>>> = [];
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const up = async (body: unknown, retryAfter = '7') => {
    const u = await rateLimited(body, retryAfter);
    ups.push(u);
    return u.baseUrl;
  };
  gw = await startProcess({
    // retries allowed: a channel that asked to wait is not asked again within the request
    gateway: { routing: { retries: 2 } },
    channels: [
      { name: 'oa', provider: 'openai', baseUrl: `${await up(OA_RATE)}/v1`, apiKey: 'sk-x', models: ['oa'] },
      { name: 'oa-choices', provider: 'openai', baseUrl: `${await up(CHOICES_RATE)}/v1`, apiKey: 'sk-x', models: ['oa-choices'] },
      {
        name: 'oa-date',
        provider: 'openai',
        baseUrl: `${await up(OA_RATE, new Date(Date.now() + 3_600_000).toUTCString())}/v1`,
        apiKey: 'sk-x',
        models: ['oa-date'],
      },
      { name: 'an', provider: 'anthropic', baseUrl: await up(AN_RATE), apiKey: 'sk-ant-x', models: ['an'] },
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const u of ups) await new Promise<void>((resolve) => u.server.close(() => resolve()));
  cleanupDirs();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

async function channel(name: string): Promise<{ state: string; reason: string | null }> {
  const r = await fetch(`${gw.url}/admin/channels`);
  const { channels } = (await r.json()) as { channels: Array<{ id: string; health: { state: string; reason: string | null } }> };
  return channels.find((c) => c.id === `local/${name}`)!.health;
}

describe('a 200 whose body is a rate-limit error, with Retry-After', () => {
  it('{"error": …} on /v1/chat/completions: 429 with the upstream’s Retry-After, the channel out for that long and not asked again', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('oa')));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('7');
    // retries: 2, one candidate: it asked to wait, so it was asked once
    expect(ups[0]!.count()).toBe(1);
    expect(await channel('oa')).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 7s' });
  });

  it('an answer with choices and that error beside them: the same', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('oa-choices')));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('7');
    expect(ups[1]!.count()).toBe(1);
  });

  it('Retry-After as an HTTP date is read as the non-2xx path reads it (seconds until then)', async () => {
    const err = await rejectionOf(openai.embeddings.create({ model: 'oa-date', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const sec = Number((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after'));
    expect(sec).toBeGreaterThan(3_500);
    expect(sec).toBeLessThanOrEqual(3_600);
  });

  it('Anthropic’s {"type":"error"} on the native /v1/messages: 429 with the Retry-After, in Anthropic’s format', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('an'), max_tokens: 16 }));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as InstanceType<typeof Anthropic.RateLimitError>).headers.get('retry-after')).toBe('7');
    expect(ups[3]!.count()).toBe(1);
  });
});
