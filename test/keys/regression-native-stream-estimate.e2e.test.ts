/**
 * Regression: a native pass-through stream (/v1/messages to an `anthropic` channel, /v1/responses to an
 * `openai` channel with `responsesApi`) whose upstream did not count was charged one output token per event
 * relayed (message_start, content_block_start, ping, content_block_stop, message_delta; response.created,
 * response.in_progress, response.output_item.added, …), not per content chunk: 9 for 4 text deltas on
 * Messages, 9 for 2 on Responses. Only the events that carry output (Messages' content_block_delta, Responses'
 * `*.delta`) are content chunks now, so the output estimate is the number of deltas the client was sent. Real
 * gateway process, the official SDKs, fake upstreams that leave the count out.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startResponsesUpstream, type ResponsesFake } from '../fakes/responses-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { channelOf, cleanupDirs, startProcess, type GatewayProcess } from '../helpers/env.js';
import { admin, createKey } from './helpers.js';

const reply = 'alpha beta gamma delta';

let ant: FakeUpstream;
let rs: ResponsesFake;
let gw: GatewayProcess;

beforeAll(async () => {
  // `null`: message_delta keeps its usage object (the SDK's stream reader needs one), with null counts
  ant = await startAnthropicUpstream({ reply, uncounted: 'null' });
  rs = await startResponsesUpstream({ omitUsage: true });
  gw = await startProcess({
    gateway: { keys: { refreshMs: 100 }, usage: { flushIntervalMs: 50 } },
    channels: [
      channelOf(ant, 'ant', ['claude-x']),
      { name: 'rs', provider: 'openai', baseUrl: rs.baseUrl, apiKey: 'sk-up', models: ['gpt-rs'], options: { responsesApi: true } },
    ],
  });
});

afterAll(async () => {
  await gw?.stop();
  await Promise.all([ant?.close(), rs?.close()]);
  cleanupDirs();
});

async function totalOf(keyId: string) {
  return (await admin(gw.url, 'GET', `/admin/usage?key=${keyId}&by=model`)).json.total;
}

describe('an uncounted native stream is charged one output token per delta the client was sent', () => {
  it('/v1/messages to an anthropic channel: content_block_delta events only', async () => {
    const k = await createKey(gw.url, { name: 'native-messages' });
    const client = new Anthropic({ apiKey: k.secret, baseURL: gw.url, maxRetries: 0, timeout: 15_000 });
    const types: string[] = [];
    let text = '';
    for await (const ev of await client.messages.create({ model: 'claude-x', max_tokens: 64, stream: true, messages: [{ role: 'user', content: 'hi' }] })) {
      types.push(ev.type);
      if (ev.type === 'content_block_delta' && ev.delta.type === 'text_delta') text += ev.delta.text;
    }
    expect(text).toBe(reply);
    const deltas = types.filter((t) => t === 'content_block_delta').length;
    expect(deltas).toBe(reply.split(' ').length);
    // the stream had more events than deltas: the defect charged them all
    expect(types.length).toBeGreaterThan(deltas + 2);
    const t = await totalOf(k.id);
    expect({ requests: t.requests, estimated: t.estimated, outputTokens: t.outputTokens }).toEqual({ requests: 1, estimated: 1, outputTokens: deltas });
  });

  it('/v1/responses to a responsesApi channel: response.output_text.delta events only', async () => {
    const k = await createKey(gw.url, { name: 'native-responses' });
    const client = new OpenAI({ apiKey: k.secret, baseURL: `${gw.url}/v1`, maxRetries: 0, timeout: 15_000 });
    const types: string[] = [];
    let text = '';
    for await (const ev of await client.responses.create({ model: 'gpt-rs', input: 'hi', stream: true })) {
      types.push(ev.type);
      if (ev.type === 'response.output_text.delta') text += ev.delta;
    }
    expect(text).toBe('Hi there!');
    expect(types.at(-1)).toBe('response.completed');
    const deltas = types.filter((t) => t === 'response.output_text.delta').length;
    expect(deltas).toBe(2);
    expect(types.length).toBeGreaterThan(deltas + 2);
    const t = await totalOf(k.id);
    expect({ requests: t.requests, estimated: t.estimated, outputTokens: t.outputTokens }).toEqual({ requests: 1, estimated: 1, outputTokens: deltas });
  });
});
