/**
 * Regression: how errors of an `openai` channel with `responsesApi` (the native Responses pass-through) were read.
 * - A streamed `response.failed` (and an `error` event) was `upstream_stream_error` whatever its `code` said, where
 *   the same failure as a non-streaming Response with `status: "failed"` is mapped by its code: a rate limit
 *   was no rate limit for the router, a client's bad prompt was held against the channel, and one that was the
 *   stream's first event (nothing of it reached the client) was relayed rather than retried elsewhere.
 * - A Responses error code that names no HTTP status (`invalid_prompt`, `invalid_image`, …,
 *   `vector_store_timeout`) was `upstream_error` (502, retried, held against the channel) even when the
 *   client's request caused it; now one table (src/providers/reported-error.ts) says which side each is on.
 * - A non-streaming Response `queued`, `in_progress` or `cancelled` to a request that did not ask for
 *   `background` was relayed as if it were the answer.
 * - The `Retry-After` of a 200 stream whose first event is an in-band rate-limit error was not read: neither
 *   the client's 429 nor the router's cooldown had it (on /v1/chat/completions and /v1/responses alike).
 * One real gateway process, small upstreams speaking the Responses and chat wire formats, the official openai
 * SDK as the client.
 */
import OpenAI from 'openai';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { adminGet, call, channelHealth, cleanupDirs, rejectionOf, startProcess, type GatewayProcess } from '../helpers/env.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';

const RATE_MESSAGE = 'Rate limit reached for gpt-4.1 in organization org-fake on tokens per min (TPM). Please try again in 9s.';
const FIXTURE = readFileSync(fileURLToPath(new URL('./fixtures/openai-responses-text.sse', import.meta.url)), 'utf8');
/** the recorded stream's Response (response.created's), as the API sends it */
const CREATED = (JSON.parse(FIXTURE.split('\n\n')[0]!.split('\ndata: ')[1]!) as { response: Record<string, unknown> }).response;

const failedEvent = (error: { code: string; message: string }) =>
  `event: response.failed\ndata: ${JSON.stringify({ type: 'response.failed', sequence_number: 0, response: { ...CREATED, status: 'failed', error } })}\n\n`;

interface Scripted {
  baseUrl: string;
  count(): number;
  server: Server;
}

/** Answers every request with 200, `headers` and `body` (an SSE text or a JSON text); counts the requests. */
async function scripted(body: string, headers: Record<string, string> = { 'content-type': 'text/event-stream' }): Promise<Scripted> {
  let n = 0;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      n++;
      res.writeHead(200, headers).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, count: () => n, server };
}

/** A non-streaming Response as the API sends it, with `extra` over its fields. */
const response = (extra: Record<string, unknown>) => JSON.stringify({ ...CREATED, status: 'completed', output: [], ...extra });
const JSON_TYPE = { 'content-type': 'application/json' };

let gw: GatewayProcess;
const servers: Scripted[] = [];
const fakes: ResponsesFake[] = [];
let spare: ResponsesFake;
let midRate: ResponsesFake;
let firstBusy: Scripted;
let firstImage: Scripted;
let openai: OpenAI;

beforeAll(async () => {
  const up = async (body: string, headers?: Record<string, string>) => {
    const s = await scripted(body, headers);
    servers.push(s);
    return s;
  };
  const fake = async (opts: Parameters<typeof startResponsesUpstream>[0]) => {
    const f = await startResponsesUpstream(opts);
    fakes.push(f);
    return f;
  };
  spare = await fake({});
  midRate = await fake({ failAfterEvents: 4, failure: { code: 'rate_limit_exceeded', message: RATE_MESSAGE } });
  const midPrompt = await fake({ failAfterEvents: 4, failure: { code: 'invalid_prompt', message: 'Invalid prompt: your prompt was flagged.' } });
  firstBusy = await up(failedEvent({ code: 'server_error', message: 'The model failed' }));
  firstImage = await up(failedEvent({ code: 'invalid_image', message: 'Invalid image.' }));
  const firstRate = await up(
    `event: error\ndata: ${JSON.stringify({ type: 'error', sequence_number: 0, code: 'rate_limit_exceeded', message: RATE_MESSAGE, param: null })}\n\n`,
    {
      'content-type': 'text/event-stream',
      'retry-after': '9',
    },
  );
  const chatFirstRate = await up(
    `data: ${JSON.stringify({ error: { message: RATE_MESSAGE, type: 'tokens', param: null, code: 'rate_limit_exceeded' } })}\n\n`,
    {
      'content-type': 'text/event-stream',
      'retry-after': '9',
    },
  );
  const rsImage = await up(
    response({ status: 'failed', error: { code: 'invalid_image_url', message: 'Error while downloading https://example.com/a.png.' } }),
    JSON_TYPE,
  );
  const rsVector = await up(response({ status: 'failed', error: { code: 'vector_store_timeout', message: 'File search timed out.' } }), JSON_TYPE);
  const rsQueued = await up(response({ status: 'queued' }), JSON_TYPE);
  const rsCancelled = await up(response({ status: 'cancelled' }), JSON_TYPE);
  const rsRunning = await up(response({ status: 'in_progress' }), JSON_TYPE);

  const ch = (name: string, baseUrl: string, model: string, priority = 0, responsesApi = true) => ({
    name,
    provider: 'openai',
    baseUrl,
    apiKey: 'sk-x',
    models: [model],
    priority,
    ...(responsesApi ? { options: { responsesApi: true } } : {}),
  });
  gw = await startProcess({
    // one retry, so a retryable failure before anything reached the client goes to the spare; no ejection by
    // count, so each test reads the channel's failures (a Retry-After still takes a channel out)
    gateway: { routing: { retries: 1, health: { consecutiveFailures: 100, minRequests: 1000 } } },
    channels: [
      ch('rs-mid-rate', midRate.baseUrl, 'rs-mid-rate'),
      ch('rs-mid-prompt', midPrompt.baseUrl, 'rs-mid-prompt'),
      ch('rs-first-busy', firstBusy.baseUrl, 'rs-first-busy'),
      ch('rs-first-busy-spare', spare.baseUrl, 'rs-first-busy', 1),
      ch('rs-first-image', firstImage.baseUrl, 'rs-first-image'),
      ch('rs-first-image-spare', spare.baseUrl, 'rs-first-image', 1),
      ch('rs-first-rate', firstRate.baseUrl, 'rs-first-rate'),
      ch('oa-first-rate', chatFirstRate.baseUrl, 'oa-first-rate', 0, false),
      ch('rs-image', rsImage.baseUrl, 'rs-image'),
      ch('rs-image-spare', spare.baseUrl, 'rs-image', 1),
      ch('rs-vector', rsVector.baseUrl, 'rs-vector'),
      ch('rs-queued', rsQueued.baseUrl, 'rs-queued'),
      ch('rs-queued-spare', spare.baseUrl, 'rs-queued', 1),
      ch('rs-queued-alone', rsQueued.baseUrl, 'rs-queued-alone'),
      ch('rs-cancelled', rsCancelled.baseUrl, 'rs-cancelled'),
      ch('rs-running', rsRunning.baseUrl, 'rs-running'),
    ],
  });
  openai = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
});
afterAll(async () => {
  await gw?.stop();
  for (const f of fakes) await f.close();
  for (const s of servers) await new Promise<void>((resolve) => s.server.close(() => resolve()));
  cleanupDirs();
});

const health = (channel: string) => channelHealth(gw.url, channel);

async function state(name: string): Promise<{ state: string; reason: string | null }> {
  const { channels } = await adminGet<{ channels: Array<{ id: string; health: { state: string; reason: string | null } }> }>(gw.url, '/admin/channels');
  return channels.find((c) => c.id === `local/${name}`)!.health;
}

/** What the SDK's responses.stream ends with: its final Response, or the error it raised. */
async function streamed(model: string): Promise<{ events: string[]; error?: unknown; final?: OpenAI.Responses.Response }> {
  const events: string[] = [];
  const s = openai.responses.stream({ model, input: 'hi' });
  try {
    for await (const e of s) events.push(e.type);
    return { events, final: await s.finalResponse() };
  } catch (error) {
    return { events, error };
  }
}

describe('a streamed response.failed is the error its code names', () => {
  it('rate_limit_exceeded mid-stream: relayed as sent, and held against the channel as rate_limited (not upstream_stream_error)', async () => {
    const before = await health('rs-mid-rate');
    const r = await call(gw, '/v1/responses', { body: { model: 'rs-mid-rate', input: 'hi', stream: true } });
    expect(r.status).toBe(200);
    expect(r.text).toMatch(/event: response\.failed\ndata: .*"code":"rate_limit_exceeded"/);
    const after = await health('rs-mid-rate');
    expect(after.consecutiveFailures).toBe(before.consecutiveFailures + 1);
    expect(after.lastError).toBe(`RATE_LIMITED: channel rs-mid-rate: upstream reported rate_limit_exceeded mid-stream: ${RATE_MESSAGE}`);
  });

  it('invalid_prompt mid-stream: relayed as sent, and not held against the channel (the client’s request caused it)', async () => {
    const before = await health('rs-mid-prompt');
    const { events } = await streamed('rs-mid-prompt');
    expect(events).toContain('response.output_item.added');
    expect(events.at(-1)).toBe('response.failed');
    const after = await health('rs-mid-prompt');
    expect(after.consecutiveFailures).toBe(before.consecutiveFailures);
    expect(after.lastError).toBeNull();
  });

  it('server_error as the first event: nothing reached the client, so it is retried on the spare, whose stream the client gets', async () => {
    const spared = spare.count();
    const { final, error } = await streamed('rs-first-busy');
    expect(error).toBeUndefined();
    expect(final?.status).toBe('completed');
    expect(final?.output_text.length).toBeGreaterThan(0);
    expect(firstBusy.count()).toBe(1);
    expect(spare.count()).toBe(spared + 1);
    expect((await health('rs-first-busy')).lastError).toBe(
      'UPSTREAM_ERROR: channel rs-first-busy: upstream reported server_error mid-stream: The model failed',
    );
  });

  it('invalid_image as the first event: the client’s 400 (upstream_client_error), not retried, not held against the channel', async () => {
    const spared = spare.count();
    const err = await rejectionOf(openai.responses.create({ model: 'rs-first-image', input: 'hi', stream: true }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error' });
    expect((err as Error).message).toContain('upstream reported invalid_image mid-stream: Invalid image.');
    expect(spare.count()).toBe(spared);
    expect((await health('rs-first-image')).consecutiveFailures).toBe(0);
  });
});

describe('a 200 stream whose first event is an in-band rate limit: its Retry-After is read', () => {
  it('/v1/responses (an `error` event): 429 with the upstream’s Retry-After, the channel out for that long', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-first-rate', input: 'hi', stream: true }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('9');
    expect((err as Error).message).toContain(RATE_MESSAGE);
    expect(await state('rs-first-rate')).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 9s' });
  });

  it('/v1/chat/completions (a `data: {"error": …}` chunk): the same', async () => {
    const err = await rejectionOf(openai.chat.completions.create({ model: 'oa-first-rate', messages: [{ role: 'user', content: 'hi' }], stream: true }));
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('9');
    expect(await state('oa-first-rate')).toMatchObject({ state: 'ejected', reason: 'upstream asked to retry after 9s' });
  });
});

describe('a non-streaming failed Response: its code from the one table', () => {
  it('invalid_image_url: the client’s 400 (upstream_client_error), not retried on the spare, not held against the channel', async () => {
    const spared = spare.count();
    const err = await rejectionOf(openai.responses.create({ model: 'rs-image', input: 'hi' }));
    expect(err).toBeInstanceOf(OpenAI.BadRequestError);
    expect(err).toMatchObject({ status: 400, code: 'upstream_client_error', type: 'invalid_request_error' });
    expect((err as Error).message).toContain('upstream reported invalid_image_url in a 2xx reply: Error while downloading https://example.com/a.png.');
    expect(spare.count()).toBe(spared);
    expect((await health('rs-image')).consecutiveFailures).toBe(0);
  });

  it('vector_store_timeout: the service’s side, an upstream_error (502) held against the channel', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-vector', input: 'hi' }));
    expect(err).toMatchObject({ status: 502, code: 'upstream_error' });
    expect((err as Error).message).toContain('channel rs-vector: upstream reported vector_store_timeout in a 2xx reply: File search timed out.');
    expect((await health('rs-vector')).lastError).toBe(
      'UPSTREAM_ERROR: channel rs-vector: upstream reported vector_store_timeout in a 2xx reply: File search timed out.',
    );
  });
});

describe('a non-streaming Response that is not finished', () => {
  it('queued to a request that did not ask for background: no answer (upstream_bad_response), retried on the spare', async () => {
    const spared = spare.count();
    const out = await openai.responses.create({ model: 'rs-queued', input: 'hi' });
    expect(out.status).toBe('completed');
    expect(spare.count()).toBe(spared + 1);
    expect((await health('rs-queued')).lastError).toBe(
      'UPSTREAM_BAD_RESPONSE: channel rs-queued: upstream answered a request that did not ask for background with a Response still "queued"',
    );
  });

  it('queued to a background request: the answer, relayed as sent', async () => {
    const out = await openai.responses.create({ model: 'rs-queued-alone', input: 'hi', background: true });
    expect(out.status).toBe('queued');
    expect(out.id).toBe(CREATED.id);
  });

  it('in_progress to a request that did not ask for background, no spare: upstream_bad_response (502)', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-running', input: 'hi' }));
    expect(err).toMatchObject({ status: 502, code: 'upstream_bad_response' });
    expect((err as Error).message).toContain('with a Response still "in_progress"');
  });

  it('cancelled to a request that did not ask for background: upstream_error (502)', async () => {
    const err = await rejectionOf(openai.responses.create({ model: 'rs-cancelled', input: 'hi' }));
    expect(err).toMatchObject({ status: 502, code: 'upstream_error' });
    expect((err as Error).message).toContain('channel rs-cancelled: upstream cancelled the response (status "cancelled")');
  });
});
