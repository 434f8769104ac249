/**
 * Regression: an OpenAI-compatible upstream that answers a non-streaming request with 200 and an error object
 * as the body (`{"error":{"message","type","code"}}`, as some OpenAI-compatible servers and proxies do; older
 * vLLM's `{"object":"error","message",…,"code":400}`) was `upstream_bad_response` "upstream reply has no
 * choices" (502): retried on the next channel and held against this one whatever the error was, and the
 * upstream's message lost. Now it is the error it reports, mapped from its `code`, else its `type`, as the same
 * error inside a stream is (and so as the HTTP answer of that status is: code, retry, health), with the
 * upstream's message, scrubbed and bounded. One real gateway process, fake OpenAI and vLLM upstreams speaking
 * their wire formats, the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelHealth, channelOf, cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, VLLM_CONTEXT_MESSAGE, type OpenAiFake, type OpenAiScenario } from '../fakes/openai-upstream.js';

// the OpenAI channels' key, echoed by the upstream in one message: no generic key shape, so only the gateway's
// knowledge of its configured secrets can redact it
const OA_KEY = 'openai-key-4e1b7c9d2f6a8035';
const RATE_MESSAGE =
  'Rate limit reached for gpt-4.1 in organization org-fake on tokens per min (TPM): Limit 30000, Used 30000, Requested 12. Please try again in 1.5s.';
const CONTEXT_MESSAGE =
  "This model's maximum context length is 128000 tokens. However, your messages resulted in 130417 tokens. Please reduce the length of the messages.";

let gw: GatewayProcess;
const fakes: OpenAiFake[] = [];
const up: Record<string, OpenAiFake> = {};
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const start = async (name: string, s: OpenAiScenario, provider: 'openai' | 'vllm') => {
    const f = await startOpenAiUpstream(s, provider === 'openai' ? { apiKey: OA_KEY } : { provider: 'vllm' });
    fakes.push(f);
    up[name] = f;
    return f;
  };
  const oa = (name: string, errorInReply?: Record<string, unknown>) => start(name, errorInReply ? { errorInReply } : { reply: `from ${name}` }, 'openai');
  const vl = (name: string, errorInReply?: Record<string, unknown>) =>
    start(name, errorInReply ? { errorInReply, vllmTopLevelErrors: true } : { reply: `from ${name}` }, 'vllm');
  await oa('oa-rate', { message: RATE_MESSAGE, type: 'requests', param: null, code: 'rate_limit_exceeded' });
  await oa('oa-ctx', { message: CONTEXT_MESSAGE, type: 'invalid_request_error', param: 'messages', code: 'context_length_exceeded' });
  await oa('oa-ctx-spare');
  await oa('oa-odd', { message: `proxy failure; upstream said: Incorrect API key provided: ${OA_KEY}. ${'x'.repeat(5000)}`, type: 'proxy_error' });
  await oa('oa-odd-spare');
  await vl('vl-ctx', { message: VLLM_CONTEXT_MESSAGE, type: 'BadRequestError', param: null, code: 400 });
  await vl('vl-busy', { message: 'The engine is overloaded.', type: 'ServiceUnavailableError', param: null, code: 503 });
  await vl('vl-busy-spare');
  const ch = (name: string, model: string, priority = 0) => ({ ...channelOf(up[name]!, name, [model]), priority });
  gw = await startProcess({
    // one retry, so a retryable failure reaches the spare; no ejections, so each test reads the channel's failure count
    gateway: { routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      ch('oa-rate', 'oa-rate'),
      ch('oa-ctx', 'oa-ctx'),
      ch('oa-ctx-spare', 'oa-ctx', 1),
      ch('oa-odd', 'oa-odd'),
      ch('oa-odd-spare', 'oa-odd', 1),
      ch('vl-ctx', 'vl-ctx'),
      ch('vl-busy', 'vl-busy'),
      ch('vl-busy-spare', 'vl-busy', 1),
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of fakes) await f.close();
  cleanupDirs();
});

const health = (channel: string) => channelHealth(gw.url, channel);

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('OpenAI-compatible: a 200 whose body is {"error": …}', () => {
  it('rate_limit_exceeded: rate_limited (429) with the upstream’s message, held against the channel as an upstream 429 is', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('oa-rate')));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect(err).toMatchObject({ status: 429, code: 'rate_limited', error: { details: { upstreamErrorType: 'rate_limit_exceeded' } } });
    expect((err as Error).message).toContain(`channel oa-rate: upstream reported rate_limit_exceeded in a 2xx reply: ${RATE_MESSAGE}`);
    // each attempt (the one retry may ask it again: no Retry-After came) counts, as an upstream 429 does
    const h = await health('oa-rate');
    expect(h.consecutiveFailures).toBeGreaterThanOrEqual(1);
    expect(h.consecutiveFailures).toBe(up['oa-rate']!.count());
    expect(h.lastError).toMatch(/^RATE_LIMITED: channel oa-rate: upstream reported rate_limit_exceeded in a 2xx reply/);
  });

  it('context_length_exceeded: a 400 upstream_client_error, neither retried on the spare nor held against the channel', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('oa-ctx')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', type: 'invalid_request_error' });
    expect((err as Error).message).toContain(`channel oa-ctx: upstream reported context_length_exceeded in a 2xx reply: ${CONTEXT_MESSAGE}`);
    expect(up['oa-ctx']!.count()).toBe(1);
    expect(up['oa-ctx-spare']!.count()).toBe(0);
    expect((await health('oa-ctx')).consecutiveFailures).toBe(0);
  });

  it('the same on /v1/messages over that channel: Anthropic’s invalid_request_error with the upstream’s message', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...chat('oa-ctx'), max_tokens: 16 }));
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.BadRequestError>;
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(e.message).toContain(CONTEXT_MESSAGE);
    expect(up['oa-ctx-spare']!.count()).toBe(0);
  });

  it('a type that names no status: upstream_error (502) as an unknown upstream status is, retried on the spare; the message scrubbed and bounded', async () => {
    const r = await openai.chat.completions.create(chat('oa-odd'));
    expect(r.choices[0]!.message.content).toBe('from oa-odd-spare');
    const h = await health('oa-odd');
    expect(h.consecutiveFailures).toBe(1);
    expect(h.lastError).toMatch(
      /^UPSTREAM_ERROR: channel oa-odd: upstream reported an error in a 2xx reply: proxy failure; upstream said: Incorrect API key provided: /,
    );
    expect(h.lastError).not.toContain(OA_KEY);
    expect(h.lastError!.length).toBeLessThan(1200);
    expect(h.lastError!.endsWith('x…')).toBe(true);
  });
});

describe('vLLM: a 200 whose body is its top-level {"object":"error", …}', () => {
  it('code 400: a 400 upstream_client_error with vLLM’s message', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('vl-ctx')));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', error: { details: { upstreamStatus: 400 } } });
    expect((err as Error).message).toContain(`channel vl-ctx: upstream reported status 400 in a 2xx reply: ${VLLM_CONTEXT_MESSAGE}`);
    expect((await health('vl-ctx')).consecutiveFailures).toBe(0);
  });

  it('code 503: retried on the spare, which answers; held against the channel as an upstream 503 is', async () => {
    const r = await openai.chat.completions.create(chat('vl-busy'));
    expect(r.choices[0]!.message.content).toBe('from vl-busy-spare');
    const h = await health('vl-busy');
    expect(h.consecutiveFailures).toBe(1);
    expect(h.lastError).toBe('UPSTREAM_ERROR: channel vl-busy: upstream reported status 503 in a 2xx reply: The engine is overloaded.');
  });
});

describe('embeddings: a 200 whose body is an error object', () => {
  it('is the error it reports, as a chat reply’s is', async () => {
    const err = await rejectionOf(openai.embeddings.create({ model: 'vl-ctx', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect((err as Error).message).toContain(`channel vl-ctx: upstream reported status 400 in a 2xx reply: ${VLLM_CONTEXT_MESSAGE}`);
  });
});

describe('logs', () => {
  it('hold no key the upstream echoed', () => {
    expect(gw.logs()).not.toContain(OA_KEY);
  });
});
