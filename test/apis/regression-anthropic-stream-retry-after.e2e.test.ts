/**
 * Regression: the `Retry-After` of a 200 Anthropic stream whose events hold an in-band `error`
 * (`rate_limit_error`, `overloaded_error`) was not read, on the translated path (/v1/chat/completions to an
 * `anthropic` channel) nor on the native pass-through (/v1/messages to one): an error that was the stream's first
 * event answered 429 without Retry-After, and neither it nor one after message_start gave the router a cooldown,
 * so the channel was asked again at once. It is read now (`retryAfterOf`), only once an in-band error is found, as
 * on the OpenAI-compatible relay and the Responses pass-through (regression-responses-stream-errors.e2e.test.ts).
 * One real gateway process, a fake Anthropic upstream, the official openai and Anthropic SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { adminGet, channelOf, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startAnthropicUpstream, type AnthropicScenario } from '../fakes/anthropic-upstream.js';

let gw: GatewayProcess;
const started = stopAfterAll();
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  const fake = async (s: AnthropicScenario) => {
    const f = await startAnthropicUpstream({ reply: 'The quick brown fox', streamRetryAfter: '9', ...s });
    started.track(f);
    return f;
  };
  const firstRate = await fake({ inbandError: true, inbandErrorFirst: true, inbandErrorType: 'rate_limit_error' });
  const midBusy = await fake({ inbandError: true, inbandErrorType: 'overloaded_error' });
  const fine = await fake({});
  // one channel a test: a Retry-After takes its channel out
  const channels = ['oa-first-rate', 'an-first-rate', 'oa-mid-busy', 'an-mid-busy'].map((name) =>
    channelOf(name.endsWith('first-rate') ? firstRate : midBusy, name, [name]),
  );
  gw = started.trackGateway(
    await startProcess({
      // no ejection by count, so only a Retry-After takes a channel out
      gateway: { routing: { retries: 0, health: { consecutiveFailures: 100, minRequests: 1000 } } },
      channels: [...channels, channelOf(fine, 'oa-fine', ['oa-fine']), channelOf(fine, 'an-fine', ['an-fine'])],
    }),
  );
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'sk-ant-client', baseURL: gw.url, maxRetries: 0 });
});

async function state(name: string): Promise<{ state: string; reason: string | null }> {
  const { channels } = await adminGet<{ channels: Array<{ id: string; health: { state: string; reason: string | null } }> }>(gw.url, '/admin/channels');
  return channels.find((c) => c.id === `local/${name}`)!.health;
}

const chat = (model: string) => ({ model, stream: true as const, messages: [{ role: 'user' as const, content: 'hi' }] });
const messages = (model: string) => ({ model, max_tokens: 32, messages: [{ role: 'user' as const, content: 'hi' }] });
const EJECTED = { state: 'ejected', reason: 'upstream asked to retry after 9s' };

describe('rate_limit_error as the stream’s first event: a 429 with the upstream’s Retry-After, the channel out for that long', () => {
  it('/v1/chat/completions (translated)', async () => {
    const err = await rejectionOf(openai.chat.completions.create(chat('oa-first-rate')));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('9');
    expect((err as Error).message).toContain('upstream reported rate_limit_error mid-stream: fake rate_limit_error');
    expect(await state('oa-first-rate')).toMatchObject(EJECTED);
  });

  it('/v1/messages (native pass-through)', async () => {
    const err = await rejectionOf(anthropic.messages.create({ ...messages('an-first-rate'), stream: true }));
    expect(err).toBeInstanceOf(Anthropic.RateLimitError);
    expect((err as InstanceType<typeof Anthropic.RateLimitError>).headers.get('retry-after')).toBe('9');
    expect((err as InstanceType<typeof Anthropic.RateLimitError>).error).toMatchObject({ type: 'error', error: { type: 'rate_limit_error' } });
    expect(await state('an-first-rate')).toMatchObject(EJECTED);
  });
});

describe('overloaded_error after message_start: the client’s stream ends with the error, the channel out for the Retry-After', () => {
  it('/v1/chat/completions (translated)', async () => {
    const seen: string[] = [];
    const err = await rejectionOf(
      (async () => {
        for await (const c of await openai.chat.completions.create(chat('oa-mid-busy'))) seen.push(c.choices[0]?.delta.content ?? '');
      })(),
    );
    expect(seen.join('')).toBe('The ');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect((err as Error).message).toContain('upstream reported overloaded_error mid-stream: Overloaded');
    expect(await state('oa-mid-busy')).toMatchObject(EJECTED);
  });

  it('/v1/messages (native pass-through)', async () => {
    const stream = anthropic.messages.stream(messages('an-mid-busy'));
    const err = await rejectionOf(stream.finalMessage());
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toMatchObject({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } });
    expect(await state('an-mid-busy')).toMatchObject(EJECTED);
  });
});

describe('a 200 stream with a Retry-After and no error: the header is not acted on', () => {
  it('/v1/chat/completions and /v1/messages answer in full, the channels stay in', async () => {
    let text = '';
    for await (const c of await openai.chat.completions.create(chat('oa-fine'))) text += c.choices[0]?.delta.content ?? '';
    expect(text).toBe('The quick brown fox');
    const msg = await anthropic.messages.stream(messages('an-fine')).finalMessage();
    expect(msg.content).toEqual([{ type: 'text', text: 'The quick brown fox' }]);
    expect((await state('oa-fine')).state).not.toBe('ejected');
    expect((await state('an-fine')).state).not.toBe('ejected');
  });
});
