/**
 * Regression: on native pass-through (`/v1/responses` to an `openai` channel with `responsesApi`, `/v1/messages`
 * to an `anthropic` channel) the upstream's own error event is relayed to the client as sent, scrubbed, but its
 * message was bounded only by the channel's `maxResponseBytes`: a 5,000-character message reached the client
 * whole, while every other upstream text the gateway relays is cut to RELAYED_TEXT_MAX (1,000) characters. Now
 * each message in the event (`response.error.message`, `message`, `error.message`) is scrubbed, then cut with
 * `cutText` (`…` where cut), and the event keeps its other members and stays valid JSON
 * (`relayedErrorEvent`, src/providers/reported-error.ts). One real gateway process, fake upstreams speaking each
 * wire format, echoing the channel's key in the message; the official SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import { call, sseData, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startResponsesUpstream } from '../fakes/responses-upstream.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';

// the channels' key, echoed at the start of each long message: no generic key shape, so only the gateway's
// knowledge of its configured secrets can redact it
const KEY = 'native-bound-key-8e3c5a1f9b7d2046';
const LONG = `Incorrect API key provided: ${KEY}. ${'The request could not be completed; '.repeat(140)}END`;
/** what the client is sent instead: the key redacted, then cut to 1000 characters with `…` */
const CUT = `${LONG.replace(KEY, '[REDACTED]').slice(0, 1000)}…`;

let gw: GatewayProcess;
const { track, trackGateway } = stopAfterAll();
let openai: OpenAI;
let anthropic: Anthropic;

beforeAll(async () => {
  expect(LONG.length).toBeGreaterThan(5_000);
  const failed = track(await startResponsesUpstream({ failAfterEvents: 3, failure: { code: 'server_error', message: LONG } }));
  const flat = track(await startResponsesUpstream({ failAfterEvents: 3, errorEvent: { code: 'server_error', message: LONG, param: null } }));
  const nested = track(
    await startResponsesUpstream({ failAfterEvents: 3, errorEvent: { error: { type: 'server_error', code: 'server_error', message: LONG, param: null } } }),
  );
  const short = track(await startResponsesUpstream({ failAfterEvents: 3, errorEvent: { code: 'server_error', message: `short: ${KEY}`, param: null } }));
  const an = track(await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true, inbandErrorMessage: LONG }));
  const rs = (name: string, up: { baseUrl: string }) => ({
    name,
    provider: 'openai',
    baseUrl: up.baseUrl,
    apiKey: KEY,
    models: [name],
    options: { responsesApi: true },
  });
  gw = await startProcess({
    gateway: { routing: { retries: 0 } },
    channels: [
      rs('rs-failed', failed),
      rs('rs-flat', flat),
      rs('rs-nested', nested),
      rs('rs-short', short),
      { name: 'an', provider: 'anthropic', baseUrl: an.channel.baseUrl, apiKey: KEY, models: ['an'] },
    ],
  });
  trackGateway(gw);
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  anthropic = new Anthropic({ apiKey: 'x', baseURL: gw.url, maxRetries: 0 });
});

/** The last SSE event of a raw body: its `event:` name and parsed data (JSON.parse throws on invalid JSON). */
function lastEvent(text: string): { event: string | undefined; data: Record<string, unknown> } {
  const b = text
    .split('\n\n')
    .filter((x) => x.trim())
    .at(-1)!;
  return { event: /^event: (.+)$/m.exec(b)?.[1], data: JSON.parse(sseData(`${b}\n\n`)[0]!) as Record<string, unknown> };
}

const stream = (model: string) => call(gw, '/v1/responses', { body: { model, input: 'x', stream: true } });

describe('native /v1/responses: a long message in the upstream’s own failure event', () => {
  it('response.failed: response.error.message cut to 1000 characters after the key is redacted; the rest of the event kept', async () => {
    const r = await stream('rs-failed');
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(KEY);
    const { event, data } = lastEvent(r.text);
    expect(event).toBe('response.failed');
    expect(data).toMatchObject({ type: 'response.failed', sequence_number: 3, response: { status: 'failed', error: { code: 'server_error', message: CUT } } });
    expect((data.response as { id: string }).id).toMatch(/^resp_/);
  });

  it('an `error` event, message at the top level as the API reference has it: cut the same, its code, param and sequence_number kept', async () => {
    const r = await stream('rs-flat');
    expect(r.text).not.toContain(KEY);
    expect(lastEvent(r.text)).toEqual({ event: 'error', data: { type: 'error', sequence_number: 3, code: 'server_error', message: CUT, param: null } });
    // the SDK hands this shape over as the stream's last event
    const seen: Array<{ type: string }> = [];
    for await (const e of openai.responses.stream({ model: 'rs-flat', input: 'x' })) seen.push(e);
    expect(seen.at(-1)).toEqual({ type: 'error', sequence_number: 3, code: 'server_error', message: CUT, param: null });
  });

  it('an `error` event with the message under `error`, as the API has been seen to send it: cut the same', async () => {
    const r = await stream('rs-nested');
    expect(r.text).not.toContain(KEY);
    expect(lastEvent(r.text).data).toEqual({
      type: 'error',
      sequence_number: 3,
      error: { type: 'server_error', code: 'server_error', message: CUT, param: null },
    });
  });

  it('a short message is relayed byte for byte but for the redacted key', async () => {
    const r = await stream('rs-short');
    expect(r.text).toContain(`event: error\ndata: {"type":"error","sequence_number":3,"code":"server_error","message":"short: [REDACTED]","param":null}\n\n`);
  });
});

describe('native /v1/messages: a long message in the upstream’s own error event', () => {
  it('error.message cut to 1000 characters after the key is redacted; the SDK raises it with its type', async () => {
    const r = await call(gw, '/v1/messages', { body: { model: 'an', max_tokens: 32, stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    expect(r.status).toBe(200);
    expect(r.text).not.toContain(KEY);
    const upstreamError = { type: 'error', error: { type: 'overloaded_error', message: CUT } };
    expect(lastEvent(r.text)).toEqual({ event: 'error', data: upstreamError });
    const err = await anthropic.messages
      .stream({ model: 'an', max_tokens: 32, messages: [{ role: 'user', content: 'hi' }] })
      .finalMessage()
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Anthropic.APIError);
    expect((err as InstanceType<typeof Anthropic.APIError>).error).toEqual(upstreamError);
  });
});
