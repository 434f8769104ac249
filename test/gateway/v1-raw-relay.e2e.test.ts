/**
 * A non-streaming answer of an OpenAI-compatible upstream reaches the client as the upstream's bytes (no
 * second serialisation), with a correct content-length, while a translated answer (Anthropic) is still
 * serialised by the gateway. A real upstream server whose JSON is pretty-printed makes the difference visible.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { call, channelOf, cleanupDirs, sdk, startGw } from '../helpers/env.js';

const PRETTY = JSON.stringify(
  {
    id: 'chatcmpl-raw-1',
    object: 'chat.completion',
    created: 1_700_000_000,
    model: 'pretty-upstream',
    choices: [{ index: 0, message: { role: 'assistant', content: 'as sent' }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 4, completion_tokens: 2, total_tokens: 6 },
    system_fingerprint: 'fp_raw',
  },
  null,
  2,
);

let upstream: FixedReplyUpstream;
let an: FakeUpstream & { close(): Promise<void> };
let gw: Gateway | undefined;

beforeAll(async () => {
  upstream = await startFixedReplyUpstream(() => PRETTY);
  an = await startAnthropicUpstream({ reply: 'translated', usage: { input: 3, output: 1 } });
  gw = await startGw({
    channels: [
      { name: 'pretty', provider: 'openai', baseUrl: upstream.baseUrl, apiKey: 'sk-upstream', models: ['pretty-model'] },
      channelOf(an, 'an', ['claude-model']),
    ],
  });
});

afterAll(async () => {
  await gw?.close();
  await an?.close();
  await upstream?.close();
  cleanupDirs();
});

describe('non-streaming relay', () => {
  it("sends an OpenAI-compatible upstream's body byte for byte", async () => {
    const r = await call(gw!, '/v1/chat/completions', { body: { model: 'pretty-model', messages: [{ role: 'user', content: 'hi' }] } });
    expect(r.status).toBe(200);
    expect(r.text).toBe(PRETTY);
    expect(r.headers.get('content-length')).toBe(String(Buffer.byteLength(PRETTY)));
    expect(r.headers.get('x-switchyard-channel')).toBe('pretty');
    const viaSdk = await sdk(gw!).chat.completions.create({ model: 'pretty-model', messages: [{ role: 'user', content: 'hi' }] });
    expect(viaSdk.choices[0]?.message.content).toBe('as sent');
    expect(viaSdk.usage?.total_tokens).toBe(6);
  });

  it('still serialises a translated answer', async () => {
    const r = await call(gw!, '/v1/chat/completions', { body: { model: 'claude-model', messages: [{ role: 'user', content: 'hi' }] } });
    expect(r.status).toBe(200);
    expect(r.json.object).toBe('chat.completion');
    expect(r.json.choices[0].message.content).toBe('translated');
    expect(r.text).toBe(JSON.stringify(r.json));
  });
});
