/**
 * Regression: an Anthropic upstream's in-band `event: error` was mapped by a function of its own
 * (`streamError`), which left `api_error` out of Anthropic's type → status table: a streamed `api_error` reached
 * clients as `upstream_stream_error` while the same type as an HTTP answer (500) is `upstream_error`. The stream
 * now takes the one mapping every status-less upstream error takes (`reportedError`, Anthropic's types from
 * ERROR_STATUS), so each type below is, streamed, the error it is non-streamed: the same status and code before
 * the first chunk, the same retry and failover, and the same code in the error event after it.
 * A real gateway, the official openai SDK, fake Anthropic upstreams speaking the real wire format.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, channelOf, cleanupDirs, sdk, sseData, startGw } from '../helpers/env.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';

/** Anthropic's error types and the HTTP status its API answers each with (docs.anthropic.com, "Errors") */
const TYPES: Array<[string, number]> = [
  ['invalid_request_error', 400],
  ['authentication_error', 401],
  ['permission_error', 403],
  ['not_found_error', 404],
  ['request_too_large', 413],
  ['rate_limit_error', 429],
  ['api_error', 500],
  ['overloaded_error', 529],
];

let plain: Gateway;
let failover: Gateway;
const fakes: FakeUpstream[] = [];
let client: OpenAI;
let failoverClient: OpenAI;

beforeAll(async () => {
  const good = await startAnthropicUpstream({ reply: 'served by the backup' });
  fakes.push(good);
  const plainChannels: Array<Record<string, unknown>> = [];
  const failoverChannels: Array<Record<string, unknown>> = [
    channelOf(
      good,
      'good',
      TYPES.flatMap(([t]) => [`fo-http-${t}`, `fo-first-${t}`]),
      { priority: 1 },
    ),
  ];
  for (const [type, status] of TYPES) {
    const http = await startAnthropicUpstream({ failStatus: status, failMessage: `fake ${type}` });
    const first = await startAnthropicUpstream({ reply: 'never sent', inbandError: true, inbandErrorFirst: true, inbandErrorType: type });
    const mid = await startAnthropicUpstream({ reply: 'The quick brown fox', inbandError: true, inbandErrorType: type });
    fakes.push(http, first, mid);
    plainChannels.push(
      channelOf(http, `http-${type}`, [`http-${type}`]),
      channelOf(first, `first-${type}`, [`first-${type}`]),
      channelOf(mid, `mid-${type}`, [`mid-${type}`]),
    );
    failoverChannels.push(channelOf(http, `fo-http-${type}`, [`fo-http-${type}`]), channelOf(first, `fo-first-${type}`, [`fo-first-${type}`]));
  }
  plain = await startGw({ gateway: { routing: { retries: 0 } }, channels: plainChannels });
  failover = await startGw({ gateway: { routing: { retries: 1 } }, channels: failoverChannels });
  client = sdk(plain);
  failoverClient = sdk(failover);
});
afterAll(async () => {
  await plain?.close();
  await failover?.close();
  for (const f of fakes) await f.close();
  cleanupDirs();
});

const messages = [{ role: 'user' as const, content: 'hi' }];

/** status and code of the SDK's error */
async function failure(p: Promise<unknown>): Promise<{ status: number | undefined; code: unknown }> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, 'the call failed').toBeInstanceOf(OpenAI.APIError);
  const a = e as InstanceType<typeof OpenAI.APIError>;
  return { status: a.status, code: a.code };
}

/** what a failover gateway answered: the backup's text, or the error's code */
async function outcome(p: Promise<string>): Promise<string> {
  return p.then(
    (text) => text,
    (err: unknown) => `error ${String((err as InstanceType<typeof OpenAI.APIError>).code)}`,
  );
}

async function streamedText(c: OpenAI, model: string): Promise<string> {
  let text = '';
  for await (const ch of await c.chat.completions.create({ model, messages, stream: true })) text += ch.choices[0]?.delta.content ?? '';
  return text;
}

describe.each(TYPES)('%s (HTTP %d as a non-streamed answer)', (type) => {
  it('streamed, before the first chunk: the status and code it has as an HTTP answer', async () => {
    const asHttp = await failure(client.chat.completions.create({ model: `http-${type}`, messages }));
    const streamed = await failure(client.chat.completions.create({ model: `first-${type}`, messages, stream: true }));
    expect(streamed).toEqual(asHttp);
  });

  it('streamed, after the first chunk: the stream ends with that code, never [DONE]', async () => {
    const asHttp = await failure(client.chat.completions.create({ model: `http-${type}`, messages }));
    const raw = await call(plain, '/v1/chat/completions', { body: { model: `mid-${type}`, messages, stream: true } });
    expect(raw.status).toBe(200);
    const events = sseData(raw.text);
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!).error).toMatchObject({ code: asHttp.code, details: { upstreamErrorType: type } });
  });

  it('retried on another channel before the first chunk exactly when the HTTP answer is', async () => {
    const asHttp = await outcome(
      failoverClient.chat.completions.create({ model: `fo-http-${type}`, messages }).then((c) => c.choices[0]?.message.content ?? ''),
    );
    const streamed = await outcome(streamedText(failoverClient, `fo-first-${type}`));
    expect(streamed).toBe(asHttp);
    // a client error is the client's (not retried); every other type is served by the backup
    expect(asHttp).toBe(type === 'invalid_request_error' || type === 'request_too_large' ? 'error upstream_client_error' : 'served by the backup');
  });
});
