/**
 * Regression: on native Responses pass-through (an `openai` channel with `options.responsesApi`), a
 * `response.failed` the gateway writes itself (the upstream's body died mid-stream) was its own: a response id
 * the gateway made (not the one the upstream's `response.created` had announced to the client) and
 * `sequence_number: 0` (after the upstream's 0…4). A client keying the stream by response id (Codex, the SDK's
 * `responses.stream` snapshot) saw a second response that failed while the first never ended, and the count went
 * back. Now the failure is the announced response's, numbered after the last event relayed.
 *
 * One gateway in process over the project's fake Responses upstream, cut after five events; read raw and with
 * the official openai SDK's `responses.stream`.
 */
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { call, cleanupDirs, sseData, startGw } from '../helpers/env.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';

let gw: Gateway;
let cut: ResponsesFake;
let client: OpenAI;

beforeAll(async () => {
  cut = await startResponsesUpstream({ cutAfterEvents: 5 });
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [{ name: 'oai-cut', provider: 'openai', baseUrl: cut.baseUrl, apiKey: 'sk-up', models: ['gpt-cut'], options: { responsesApi: true } }],
  });
  client = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
});
afterAll(async () => {
  await gw?.close();
  await cut?.close();
  cleanupDirs();
});

interface Ev {
  type: string;
  sequence_number: number;
  response?: { id: string; status: string; error: { code: string; message: string } | null };
}

describe('native Responses: the gateway’s own response.failed', () => {
  it('carries the announced response id and the next sequence number (raw SSE)', async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'gpt-cut', input: 'x', stream: true } });
    expect(r.status).toBe(200);
    const events = sseData(r.text).map((d) => JSON.parse(d) as Ev);
    expect(events.map((e) => e.type).at(-1)).toBe('response.failed');
    expect(events.filter((e) => e.type === 'response.failed')).toHaveLength(1);
    expect(events.map((e) => e.sequence_number)).toEqual(events.map((_, i) => i));
    const ids = new Set(events.filter((e) => e.response).map((e) => e.response!.id));
    expect(ids.size).toBe(1);
    expect(events[0]!.type).toBe('response.created');
    const last = events.at(-1)!;
    expect(last.response).toMatchObject({ id: events[0]!.response!.id, status: 'failed', error: { code: 'upstream_stream_error' } });
  });

  it('the SDK’s responses.stream sees one response and increasing sequence numbers', async () => {
    const seen: Ev[] = [];
    const stream = client.responses.stream({ model: 'gpt-cut', input: 'x' });
    // the SDK hands the response.failed event over as the stream's last and ends without throwing
    await expect(
      (async () => {
        for await (const e of stream) seen.push(e as unknown as Ev);
      })(),
    ).resolves.toBeUndefined();
    const last = seen.at(-1)!;
    expect(last.type).toBe('response.failed');
    expect(last.response!.id).toBe(seen[0]!.response!.id);
    expect(last.sequence_number).toBe(seen.at(-2)!.sequence_number + 1);
    for (let i = 1; i < seen.length; i++) expect(seen[i]!.sequence_number).toBeGreaterThan(seen[i - 1]!.sequence_number);
  });
});
