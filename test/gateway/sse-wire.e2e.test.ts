/**
 * SSE as upstreams may legally write it, relayed so that clients read the same events: a value spread over
 * several `data:` lines, a byte order mark before the first event; and an upstream's in-band error that echoes
 * the channel's key never reaches the client with it (native Responses streams included).
 */
import OpenAI from 'openai';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startFixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import { call, startGw } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const KEY = 'sk-sse-wire-canary-0123456789abcdef';
const chunk = (content: string) =>
  JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content }, finish_reason: null }] });
const multiLine = (json: string) => json.replace('"object"', '\ndata: "object"').replace('"choices"', '\ndata:"choices"');

let gw: Gateway;
const { ups, trackGateway } = stopAfterAll();

beforeAll(async () => {
  const split = await startFixedReplyUpstream(
    () => `data: ${multiLine(chunk('Hi'))}\n\ndata: ${multiLine(chunk(' there'))}\n\ndata: [DONE]\n\n`,
    'text/event-stream',
  );
  const bom = await startFixedReplyUpstream(() => `\uFEFFdata: ${chunk('FIRST ')}\n\ndata: ${chunk('Hello')}\n\ndata: [DONE]\n\n`, 'text/event-stream');
  const failing = await startFixedReplyUpstream(
    () =>
      `event: response.created\ndata: {"type":"response.created","response":{"id":"resp_1","status":"in_progress","output":[]}}\n\n` +
      `event: response.failed\ndata: {"type":"response.failed","response":{"id":"resp_1","status":"failed","error":{"code":"server_error","message":"bad key Bearer ${KEY}"}}}\n\n`,
    'text/event-stream',
  );
  ups.push(split, bom, failing);
  gw = await startGw({
    gateway: { routing: { retries: 0 } },
    channels: [
      { name: 'split', provider: 'openai', baseUrl: split.baseUrl, apiKey: KEY, models: ['split-1'] },
      { name: 'bom', provider: 'openai', baseUrl: bom.baseUrl, apiKey: KEY, models: ['bom-1'] },
      { name: 'failing', provider: 'openai', baseUrl: failing.baseUrl, apiKey: KEY, models: ['failing-1'], options: { responsesApi: true } },
    ],
  });
  trackGateway(gw);
});

async function streamed(model: string): Promise<string> {
  const client = new OpenAI({ apiKey: 'x', baseURL: `${gw.url}/v1`, maxRetries: 0 });
  let text = '';
  for await (const c of await client.chat.completions.create({ model, stream: true, messages: [{ role: 'user', content: 'hi' }] }))
    text += c.choices[0]?.delta?.content ?? '';
  return text;
}

describe('SSE from upstreams, relayed', () => {
  it('a value over several data: lines reaches the client as the same value (each line a data: line again)', async () => {
    expect(await streamed('split-1')).toBe('Hi there');
    const raw = await call(gw, '/v1/chat/completions', { body: { model: 'split-1', stream: true, messages: [{ role: 'user', content: 'hi' }] } });
    // no line of the body is a bare fragment: each is a field, or the blank line that ends an event
    for (const line of raw.text.split('\n')) expect(line === '' || line.startsWith('data:')).toBe(true);
  });

  it('a byte order mark before the first event is dropped, not the first event', async () => {
    expect(await streamed('bom-1')).toBe('FIRST Hello');
  });

  it("an upstream's error event that echoes the channel key reaches the client scrubbed (native Responses stream)", async () => {
    const r = await call(gw, '/v1/responses', { body: { model: 'failing-1', input: 'hi', stream: true } });
    expect(r.text).toContain('response.failed');
    expect(r.text).not.toContain(KEY);
    expect(r.text).toContain('[REDACTED]');
  });
});
