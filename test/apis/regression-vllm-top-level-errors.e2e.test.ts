/**
 * Regression: older vLLM (and OpenAI-compatible servers modelled on it) send an error as its ErrorResponse at
 * the top level, `{"object":"error","message":…,"type":"BadRequestError","param":null,"code":400}`, not under
 * `error`. As a chunk of a 200 stream it was "a chunk without choices" (upstream_bad_response, 502): retried
 * on the next channel, held against the channel, and the upstream's message lost. Now it is the in-band error
 * it is, mapped by the status its `code` names as the same HTTP answer is; as the body of an error status it
 * reads as any other (the status from the HTTP status, the message from `message`). One real gateway process,
 * fake vLLM upstreams speaking that form, the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { channelHealth, channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, VLLM_CONTEXT_MESSAGE, type OpenAiFake } from '../fakes/openai-upstream.js';

const vllm = { provider: 'vllm' as const };
let gw: GatewayProcess;
let httpFail: OpenAiFake;
let first: OpenAiFake;
let firstSpare: OpenAiFake;
let mid: OpenAiFake;
const fakes: OpenAiFake[] = [];
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const start = async (s: Parameters<typeof startOpenAiUpstream>[0]) => {
    const f = await startOpenAiUpstream({ vllmTopLevelErrors: true, ...s }, vllm);
    fakes.push(f);
    return f;
  };
  httpFail = await start({ failStatus: 400 });
  first = await start({
    reply: 'x',
    inbandError: true,
    inbandErrorFirst: true,
    inbandErrorBody: { message: VLLM_CONTEXT_MESSAGE, type: 'BadRequestError', param: null, code: 400 },
  });
  firstSpare = await start({ reply: 'from spare' });
  mid = await start({
    reply: 'one two three',
    inbandError: true,
    inbandErrorBody: { message: 'The engine is overloaded.', type: 'ServiceUnavailableError', param: null, code: 503 },
  });
  gw = await startProcess({
    // one retry, so a retryable failure before the first byte would reach the spare; no ejections, so each
    // test reads the channel's failure count
    gateway: { routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      channelOf(httpFail, 'vl-http', ['vl-http']),
      { ...channelOf(first, 'vl-first', ['vl-first']), priority: 0 },
      { ...channelOf(firstSpare, 'vl-first-spare', ['vl-first']), priority: 1 },
      channelOf(mid, 'vl-mid', ['vl-mid']),
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

const failures = (channel: string) => channelHealth(gw.url, channel);

const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('older vLLM’s top-level error inside a 200 stream', () => {
  it('before the first chunk, code 400: a 400 upstream_client_error with vLLM’s message, neither retried on the spare nor held against the channel', async () => {
    const err = await openai.chat.completions.create({ ...chat('vl-first'), stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', type: 'invalid_request_error', error: { details: { upstreamStatus: 400 } } });
    expect((err as Error).message).toContain(`channel vl-first: upstream reported status 400 mid-stream: ${VLLM_CONTEXT_MESSAGE}`);
    expect(first.count()).toBe(1);
    expect(firstSpare.count()).toBe(0);
    expect((await failures('vl-first')).consecutiveFailures).toBe(0);
  });

  it('the same on /v1/messages: an invalid_request_error in Anthropic’s format', async () => {
    const err = await anthropic.messages.create({ ...chat('vl-first'), max_tokens: 16, stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.BadRequestError);
    const e = err as InstanceType<typeof Anthropic.BadRequestError>;
    expect(e.error).toMatchObject({ type: 'error', error: { type: 'invalid_request_error' } });
    expect(e.message).toContain(VLLM_CONTEXT_MESSAGE);
    expect(firstSpare.count()).toBe(0);
  });

  it('after the first chunk, code 503: the stream ends with upstream_error (503) and vLLM’s message, held against the channel', async () => {
    const before = (await failures('vl-mid')).consecutiveFailures;
    let text = '';
    const err = await (async () => {
      for await (const c of await openai.chat.completions.create({ ...chat('vl-mid'), stream: true })) text += c.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    expect(text).toBe('one');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).toMatchObject({ code: 'upstream_error', error: { details: { upstreamStatus: 503 } } });
    expect((err as Error).message).toContain('channel vl-mid: upstream reported status 503 mid-stream: The engine is overloaded.');
    const after = await failures('vl-mid');
    expect(after.consecutiveFailures - before).toBe(1);
    expect(after.lastError).toMatch(/^UPSTREAM_ERROR: channel vl-mid: upstream reported status 503 mid-stream/);
  });
});

describe('older vLLM’s top-level error as the body of an error status', () => {
  it('is that status’s error with vLLM’s message, streamed or not', async () => {
    for (const stream of [false, true]) {
      const err = await openai.chat.completions.create({ ...chat('vl-http'), stream }).catch((e: unknown) => e);
      expect(err, `stream: ${stream}`).toBeInstanceOf(OpenAI.BadRequestError);
      expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', error: { details: { upstreamStatus: 400 } } });
      expect((err as Error).message).toContain(`channel vl-http: upstream answered 400: ${VLLM_CONTEXT_MESSAGE}`);
    }
  });
});
