/**
 * Regression: an Anthropic upstream's in-band `event: error` with `overloaded_error` reached /v1/messages
 * clients as `api_error` (502), while the same overload as an HTTP 529 reached them as `overloaded_error`
 * (503): Claude Code and the SDK retry an overload, not an api_error. In-band error types now map through the
 * same status mapping as HTTP answers. Both surfaces, with their official SDKs, against an Anthropic fake that
 * fails inside its stream (after the first text delta) or at its start (before message_start). Inside a native
 * /v1/messages stream the upstream's own event is relayed since (regression-inband-upstream-errors.e2e.test.ts).
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, channelOf, cleanupDirs, sdk, sseData, startGw } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

let gw: Gateway;
const fakes: FakeUpstream[] = [];
let anthropic: Anthropic;
let openai: OpenAI;

beforeAll(async () => {
  const mid = await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true });
  const first = await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true, inbandErrorFirst: true });
  const tooBig = await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true, inbandErrorType: 'request_too_large' });
  fakes.push(mid, first, tooBig);
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [channelOf(mid, 'mid', ['over-mid']), channelOf(first, 'first', ['over-first']), channelOf(tooBig, 'big', ['too-big-mid'])],
  });
  anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: gw.url, maxRetries: 0 });
  openai = sdk(gw);
});
afterAll(async () => {
  await gw?.close();
  for (const f of fakes) await f.close();
  cleanupDirs();
});

const ask = (model: string) => ({ model, max_tokens: 32, messages: [{ role: 'user' as const, content: 'hi' }] });

describe('/v1/messages: an in-band error keeps its Anthropic type', () => {
  it('overloaded_error inside the stream ends it with event: error overloaded_error (the SDK sees its type)', async () => {
    const raw = await call(gw, '/v1/messages', { body: { ...ask('over-mid'), stream: true } });
    expect(raw.status).toBe(200);
    const last = JSON.parse(sseData(raw.text).at(-1)!);
    // natively relayed: the upstream's own event (test/apis/regression-inband-upstream-errors.e2e.test.ts)
    expect(last).toEqual({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    expect(raw.text).not.toContain('message_stop');

    const err = await anthropic.messages
      .stream(ask('over-mid'))
      .finalMessage()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
  });

  it('overloaded_error before message_start is a 503 overloaded_error, as an HTTP 529 is', async () => {
    const err = await anthropic.messages.create({ ...ask('over-first'), stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.InternalServerError);
    expect((err as InstanceType<typeof Anthropic.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'overloaded_error' } });
  });

  it('other types inside the stream keep theirs too: request_too_large', async () => {
    const raw = await call(gw, '/v1/messages', { body: { ...ask('too-big-mid'), stream: true } });
    expect(JSON.parse(sseData(raw.text).at(-1)!)).toEqual({ type: 'error', error: { type: 'request_too_large', message: 'fake request_too_large' } });
  });
});

describe('/v1/chat/completions: the matching OpenAI error', () => {
  it('overloaded_error before the first chunk is a 503, as an upstream 529 is', async () => {
    const err = await openai.chat.completions
      .create({ model: 'over-first', stream: true, messages: [{ role: 'user', content: 'hi' }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect((err as InstanceType<typeof OpenAI.APIError>).status).toBe(503);
    expect((err as InstanceType<typeof OpenAI.APIError>).error).toMatchObject({
      type: 'upstream_error',
      code: 'upstream_error',
      details: { upstreamErrorType: 'overloaded_error' },
    });
  });

  it('inside the stream: the error event of the type’s status (request_too_large → upstream_client_error), never [DONE]', async () => {
    const raw = await call(gw, '/v1/chat/completions', { body: { model: 'too-big-mid', stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    const events = sseData(raw.text);
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!).error).toMatchObject({
      type: 'invalid_request_error',
      code: 'upstream_client_error',
      details: { upstreamErrorType: 'request_too_large' },
    });
  });
});
