/**
 * Regression: an error an upstream sends inside its 200 stream reached clients as the gateway's own error.
 * - Native Responses pass-through: the upstream's `error` event (code, message, param, sequence_number) was
 *   replaced by the gateway's response.failed (`upstream_stream_error`), as its `response.failed` had been.
 * - Native Messages pass-through: the upstream's `event: error` was replaced by the gateway's (its message
 *   `channel …: upstream reported …`, plus a `code`), so the SDK did not see the upstream's message.
 * - An OpenAI-compatible chat stream's `data: {"error": …}` carries no status: a rate limit, an overload or a
 *   context-length error there was `upstream_stream_error` (502, retried elsewhere), never what the same
 *   answer as an HTTP status is (429 rate_limited, 503, 400 upstream_client_error).
 * Now the native ones are relayed as sent, scrubbed (the attempt still counts as failed, as before), and the
 * chat one maps through the status its code or type names. One real gateway process, fake upstreams speaking
 * each wire format, the official SDKs as clients; every fake echoes the key it was sent in its error message.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, channelHealth, channelOf, sseData, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';

// the channels' keys, each echoed by its upstream in an error message; none has a generic key shape, so only the
// gateway's knowledge of its configured secrets can redact them
const RS_KEY = 'responses-key-5c8e1f3a9d7b2064';
const AN_KEY = 'anthropic-key-7d2f9c4e1a8b3e60';
const OA_KEY = 'openai-key-3b9f6d1c8e2a5047';
const RATE_MESSAGE =
  'Rate limit reached for gpt-4.1 in organization org-fake on tokens per min (TPM): Limit 30000, Used 30000, Requested 12. Please try again in 1.5s.';
const FLAT = { code: 'rate_limit_exceeded', message: RATE_MESSAGE, param: null };
const NESTED = { error: { type: 'invalid_request_error', code: 'invalid_api_key', message: `Incorrect API key provided: ${RS_KEY}.`, param: null } };

let gw: GatewayProcess;
let rsFlat: ResponsesFake;
let rsSpare: ResponsesFake;
let oaCtxFirst: OpenAiFake;
let oaSpare: OpenAiFake;
const { track, trackGateway } = stopAfterAll();
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  rsFlat = track(await startResponsesUpstream({ failAfterEvents: 4, errorEvent: FLAT }));
  const rsNested = track(await startResponsesUpstream({ failAfterEvents: 2, errorEvent: NESTED }));
  rsSpare = track(await startResponsesUpstream());
  const anOver = track(
    await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true, inbandErrorMessage: `Overloaded (request sent with x-api-key ${AN_KEY})` }),
  );
  const anSpare = track(await startAnthropicUpstream({ reply: 'spare' }));
  const oaRate = track(
    await startOpenAiUpstream(
      {
        reply: 'one two three',
        inbandError: true,
        inbandErrorBody: {
          message: `Rate limit reached for key ${OA_KEY}. Please try again in 20s.`,
          type: 'requests',
          param: null,
          code: 'rate_limit_exceeded',
        },
      },
      { apiKey: OA_KEY },
    ),
  );
  const oaOverFirst = track(
    await startOpenAiUpstream({
      reply: 'x',
      inbandError: true,
      inbandErrorFirst: true,
      inbandErrorBody: { message: 'Overloaded', type: 'overloaded_error', param: null, code: null },
    }),
  );
  oaCtxFirst = track(
    await startOpenAiUpstream({
      reply: 'x',
      inbandError: true,
      inbandErrorFirst: true,
      inbandErrorBody: {
        message: "This model's maximum context length is 128000 tokens. However, your messages resulted in 130000 tokens.",
        type: 'invalid_request_error',
        param: 'messages',
        code: 'context_length_exceeded',
      },
    }),
  );
  oaSpare = track(await startOpenAiUpstream({ reply: 'from spare' }));
  const responses = (name: string, up: ResponsesFake, model: string, extra: Record<string, unknown> = {}) => ({
    name,
    provider: 'openai',
    baseUrl: up.baseUrl,
    apiKey: RS_KEY,
    models: [model],
    options: { responsesApi: true },
    ...extra,
  });
  gw = await startProcess({
    gateway: {
      // one retry, so a retryable failure before the first byte would reach the spare; no ejections, so each
      // test reads the channel's failure count
      routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } },
    },
    channels: [
      responses('rs-flat', rsFlat, 'rs-flat', { priority: 0 }),
      responses('rs-flat-spare', rsSpare, 'rs-flat', { priority: 1 }),
      responses('rs-nested', rsNested, 'rs-nested'),
      { ...channelOf(anOver, 'an-over', ['an-over']), apiKey: AN_KEY, priority: 0 },
      { ...channelOf(anSpare, 'an-over-spare', ['an-over']), priority: 1 },
      channelOf(oaRate, 'oa-rate', ['oa-rate']),
      channelOf(oaOverFirst, 'oa-over-first', ['oa-over-first']),
      { ...channelOf(oaCtxFirst, 'oa-ctx-first', ['oa-ctx']), priority: 0 },
      { ...channelOf(oaSpare, 'oa-ctx-spare', ['oa-ctx']), priority: 1 },
    ],
  });
  trackGateway(gw);
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});

const health = (channel: string) => channelHealth(gw.url, channel);

/** The SSE events of a raw body: `event:` name and parsed data. */
function events(text: string): Array<{ event: string | undefined; data: Record<string, unknown> }> {
  return text
    .split('\n\n')
    .filter((b) => b.trim())
    .map((b) => ({ event: /^event: (.+)$/m.exec(b)?.[1], data: JSON.parse(sseData(`${b}\n\n`)[0]!) as Record<string, unknown> }));
}

const ask = (model: string) => ({ model, max_tokens: 32, messages: [{ role: 'user' as const, content: 'hi' }] });
const chat = (model: string) => ({ model, messages: [{ role: 'user' as const, content: 'hi' }] });

describe("native /v1/responses: the upstream's error event", () => {
  it('is the stream’s end as the upstream sent it (the SDK’s responses.stream sees its code, message, param, sequence_number); the attempt counts as failed and is not retried', async () => {
    const before = await health('rs-flat');
    const body = { model: 'rs-flat', input: 'x', stream: true };
    const direct = await call({ url: rsFlat.baseUrl }, '/responses', { body });
    const r = await call(gw, '/v1/responses', { body });
    expect(r.status).toBe(200);
    expect(r.text).toBe(direct.text);
    expect(events(r.text).at(-1)).toEqual({ event: 'error', data: { type: 'error', sequence_number: 4, ...FLAT } });
    expect(r.text).not.toMatch(/^event: response\.(failed|completed)$/m);

    const seen: Array<{ type: string; sequence_number: number }> = [];
    for await (const e of openai.responses.stream({ model: 'rs-flat', input: 'x' })) seen.push(e);
    expect(seen.at(-1)).toEqual({ type: 'error', sequence_number: 4, code: 'rate_limit_exceeded', message: RATE_MESSAGE, param: null });
    expect(seen.map((e) => e.type)).not.toContain('response.completed');

    const after = await health('rs-flat');
    expect(after.consecutiveFailures - before.consecutiveFailures).toBe(2);
    expect(after.lastError).toMatch(/^RATE_LIMITED: channel rs-flat: upstream reported rate_limit_exceeded mid-stream: Rate limit reached/);
    expect(rsSpare.count()).toBe(0);
  });

  it('in the shape the API has been seen to send (under `error`): the SDK raises it with its code and type, the echoed key redacted', async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'rs-nested', input: 'x', stream: true } });
    expect(r.text).not.toContain(RS_KEY);
    const redacted = { error: { ...NESTED.error, message: 'Incorrect API key provided: [REDACTED].' } };
    expect(events(r.text).at(-1)).toEqual({ event: 'error', data: { type: 'error', sequence_number: 2, ...redacted } });

    const err = await (async () => {
      for await (const e of openai.responses.stream({ model: 'rs-nested', input: 'x' })) void e;
    })().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).toMatchObject({ code: 'invalid_api_key', type: 'invalid_request_error', message: 'Incorrect API key provided: [REDACTED].' });
    expect((await health('rs-nested')).lastError).toMatch(
      /^UPSTREAM_ERROR: channel rs-nested: upstream reported invalid_api_key mid-stream: Incorrect API key provided: \[REDACTED\]\.$/,
    );
  });
});

describe("native /v1/messages: the upstream's error event after message_start", () => {
  it('is relayed as sent: the SDK’s messages.stream raises overloaded_error with the upstream’s message, the echoed key redacted; counted as before (503), not retried', async () => {
    const before = await health('an-over');
    const r = await call(gw, '/v1/messages', { body: { ...ask('an-over'), stream: true } });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(AN_KEY);
    expect(r.text).not.toContain('message_stop');
    const upstreamError = { type: 'error', error: { type: 'overloaded_error', message: 'Overloaded (request sent with x-api-key [REDACTED])' } };
    expect(events(r.text).at(-1)).toEqual({ event: 'error', data: upstreamError });

    const err = await anthropic.messages
      .stream(ask('an-over'))
      .finalMessage()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    const e = err as InstanceType<typeof Anthropic.APIError>;
    expect(e.type).toBe('overloaded_error');
    expect(e.error).toEqual(upstreamError);

    const after = await health('an-over');
    expect(after.consecutiveFailures - before.consecutiveFailures).toBe(2);
    expect(after.lastError).toMatch(/^UPSTREAM_ERROR: channel an-over: upstream reported overloaded_error mid-stream: Overloaded/);
    expect((await health('an-over-spare')).windowRequests).toBe(0);
  });
});

describe('/v1/chat/completions: an OpenAI-compatible in-band error is the error of the status it names', () => {
  it('rate_limit_exceeded inside the stream: rate_limited / rate_limit_error, as an upstream 429, the echoed key redacted; held against the channel as a 429 is', async () => {
    const before = await health('oa-rate');
    let text = '';
    const err = await (async () => {
      for await (const c of await openai.chat.completions.create({ ...chat('oa-rate'), stream: true })) text += c.choices[0]?.delta.content ?? '';
    })().catch((e: unknown) => e);
    expect(text).toBe('one');
    expect(err).toBeInstanceOf(OpenAI.APIError);
    expect(err).toMatchObject({ code: 'rate_limited', type: 'rate_limit_error' });
    const e = err as InstanceType<typeof OpenAI.APIError>;
    expect(e.message).toContain('Rate limit reached for key [REDACTED]. Please try again in 20s.');
    expect(e.message).not.toContain(OA_KEY);
    expect(e.error).toMatchObject({ details: { upstreamErrorType: 'rate_limit_exceeded' } });
    const after = await health('oa-rate');
    expect(after.consecutiveFailures - before.consecutiveFailures).toBe(1);
    expect(after.lastError).toMatch(/^RATE_LIMITED: channel oa-rate: upstream reported rate_limit_exceeded mid-stream/);
  });

  it('overloaded_error before the first chunk: a 503, as an upstream 503 or 529 is', async () => {
    const err = await openai.chat.completions.create({ ...chat('oa-over-first'), stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);
    expect(err).toMatchObject({ status: 503, code: 'upstream_error', error: { details: { upstreamErrorType: 'overloaded_error' } } });
    expect((await health('oa-over-first')).lastError).toMatch(/^UPSTREAM_ERROR: /);
  });

  it('context_length_exceeded before the first chunk: a 400 upstream_client_error, neither retried on the spare nor held against the channel, as an upstream 400 is', async () => {
    const spare = oaSpare.count();
    const err = await openai.chat.completions.create({ ...chat('oa-ctx'), stream: true }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', type: 'invalid_request_error' });
    expect((err as Error).message).toContain("This model's maximum context length is 128000 tokens.");
    expect(oaSpare.count()).toBe(spare);
    expect(oaCtxFirst.count()).toBe(1);
    expect((await health('oa-ctx-first')).consecutiveFailures).toBe(0);
  });

  it('on /v1/responses over the chat channel, response.failed carries rate_limit_exceeded with the upstream’s retry hint (what Codex reads)', async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'oa-rate', input: 'x', stream: true } });
    const last = events(r.text).at(-1)!;
    expect(last.event).toBe('response.failed');
    expect((last.data.response as { error: unknown }).error).toEqual({
      code: 'rate_limit_exceeded',
      message: 'channel oa-rate: upstream reported rate_limit_exceeded mid-stream: Rate limit reached for key [REDACTED]. Please try again in 20s.',
    });
  });
});

describe('logs', () => {
  it('the gateway logged the failed streams, and no key the upstreams echoed', () => {
    const logs = gw.logs();
    expect(logs).toContain('stream ended with an error');
    for (const key of [RS_KEY, AN_KEY, OA_KEY]) expect(logs).not.toContain(key);
  });
});
