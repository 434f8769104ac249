/**
 * Regression: an OpenAI-compatible upstream's non-streaming 200 holding both `choices` and a non-null `error`
 * object (as some proxies answer an upstream's failure) was relayed to the client as a success, while the same
 * object as a stream chunk ended the stream with the error. Now the reply follows the stream's rule
 * (`answerErrorOf` in src/providers/reported-error.ts): an `error` that reads as one is the error it reports,
 * mapped by its code as every reported error is, so the router fails over on it and the client gets it in its
 * surface's format; an `error` that reads as none (`{}`) leaves the answer a success. One real gateway process,
 * upstreams that answer 200 with such bodies, the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelHealth, channelOf, cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

const RATE_MESSAGE = 'Rate limit reached for gpt-4.1 on tokens per min (TPM). Please try again in 1.5s.';

/** A chat completion as OpenAI sends it, with `extra` members beside its choices. */
const answer = (extra: Record<string, unknown>, choices: unknown[] = [{ index: 0, message: { role: 'assistant', content: '' }, finish_reason: 'stop' }]) =>
  JSON.stringify({ id: 'chatcmpl-err-1', object: 'chat.completion', created: 1_764_547_200, model: 'gpt-4.1', choices, ...extra });

let gw: GatewayProcess;
const fixed: FixedReplyUpstream[] = [];
let spare: OpenAiFake;
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const fake = async (body: string) => {
    const f = await startFixedReplyUpstream(() => body);
    fixed.push(f);
    return f.baseUrl;
  };
  spare = await startOpenAiUpstream({ reply: 'from the spare' });
  const ch = (name: string, baseUrl: string, model: string) => ({ name, provider: 'openai', baseUrl, apiKey: 'sk-x', models: [model] });
  gw = await startProcess({
    // one retry, so a retryable failure reaches the spare; no ejections, so each test reads the channel's failure count
    gateway: { routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      ch(
        'busy',
        await fake(answer({ error: { message: 'The server had an error while processing your request.', type: 'server_error', code: 'server_error' } }, [])),
        'busy',
      ),
      { ...channelOf(spare, 'busy-spare', ['busy']), priority: 1 },
      ch('rate', await fake(answer({ error: { message: RATE_MESSAGE, type: 'requests', param: null, code: 'rate_limit_exceeded' } })), 'rate'),
      ch('empty-error', await fake(answer({ error: {} })), 'empty-error'),
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of fixed) await f.close();
  await spare?.close();
  cleanupDirs();
});

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('a 200 chat completion with `choices` and an `error` object', () => {
  it('rate_limit_exceeded beside choices: rate_limited (429) with the upstream’s message, not a success', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('rate')));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', error: { details: { upstreamErrorType: 'rate_limit_exceeded' } } });
    expect((err as Error).message).toContain(`channel rate: upstream reported rate_limit_exceeded in a 2xx reply: ${RATE_MESSAGE}`);
  });

  it('the same on /v1/messages: the error in Anthropic’s format', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('rate'), max_tokens: 16 }));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as Error).message).toContain('upstream reported rate_limit_exceeded in a 2xx reply');
  });

  it('server_error beside choices: counted against the channel and retried on the spare, whose answer the client gets', async () => {
    const before = (await channelHealth(gw.url, 'busy')).consecutiveFailures;
    const out = await openai.chat.completions.create(chat('busy'));
    expect(out.choices[0]?.message.content).toBe('from the spare');
    expect(spare.count('/chat/completions')).toBe(1);
    const after = await channelHealth(gw.url, 'busy');
    expect(after.consecutiveFailures).toBe(before + 1);
    expect(after.lastError).toContain('upstream reported server_error in a 2xx reply');
  });

  it('an `error` that reads as none ({}) leaves the answer a success, relayed as sent', async () => {
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer x' },
      body: JSON.stringify(chat('empty-error')),
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(answer({ error: {} }));
  });
});
