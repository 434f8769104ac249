/**
 * Local routing end to end: priority tiers, retry on another channel before the first byte (never the same
 * failed one while another exists), `retries: 0` surfacing the failure, and no retry once a stream has
 * started. Requests are counted on each fake upstream.
 */
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { call, channelOf, chatBody, contentOf, sdk, settle, sseData, startGw } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const CHAT = '/chat/completions';
let c400: OpenAiFake,
  p0: OpenAiFake,
  p1: OpenAiFake,
  f500: OpenAiFake,
  fHang: OpenAiFake,
  good: OpenAiFake,
  bad1: OpenAiFake,
  bad2: OpenAiFake,
  cut: OpenAiFake,
  spare: OpenAiFake;
let channels: Array<Record<string, unknown>>;
const { track } = stopAfterAll();
const gateways: Gateway[] = [];
const counts = (...f: OpenAiFake[]) => f.map((x) => x.count(CHAT));

/** a fresh gateway per test, so no routing/health state carries over between tests */
async function fresh(retries: number): Promise<Gateway> {
  const g = await startGw({ gateway: { routing: { retries, firstByteTimeoutMs: 400 } }, channels });
  gateways.push(g);
  return g;
}

beforeAll(async () => {
  const start = async (s: Parameters<typeof startOpenAiUpstream>[0]) => {
    return track(await startOpenAiUpstream(s));
  };
  p0 = await start({ reply: 'from p0' });
  p1 = await start({ reply: 'from p1' });
  f500 = await start({ failStatus: 500 });
  fHang = await start({ hang: true });
  good = await start({ reply: 'from good', usage: { input: 3, output: 2 } });
  bad1 = await start({ failStatus: 500 });
  bad2 = await start({ failStatus: 500 });
  cut = await start({ reply: 'one two three four', cutAfterChunks: 1 });
  spare = await start({ reply: 'from spare' });
  c400 = await start({ failStatus: 400 });
  channels = [
    // p1 is listed first: config order must not beat priority
    channelOf(p1, 'p1', ['prio'], { priority: 1 }),
    channelOf(p0, 'p0', ['prio'], { priority: 0 }),
    channelOf(f500, 'f500', ['failover'], { priority: 0 }),
    channelOf(fHang, 'f-hang', ['failover-hang'], { priority: 0 }),
    channelOf(good, 'good', ['failover', 'failover-hang', 'two-bad-one-good'], { priority: 1 }),
    channelOf(bad1, 'bad1', ['two-bad', 'two-bad-one-good'], { priority: 0 }),
    channelOf(bad2, 'bad2', ['two-bad', 'two-bad-one-good'], { priority: 0 }),
    channelOf(cut, 'cut', ['cut-after-first'], { priority: 0 }),
    channelOf(spare, 'spare', ['cut-after-first', 'client-error'], { priority: 1 }),
    channelOf(c400, 'c400', ['client-error'], { priority: 0 }),
  ];
});

afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

describe('local routing', () => {
  it('the lower priority value wins, whatever the config order', async () => {
    const gw = await fresh(2);
    const [a0, a1] = counts(p0, p1);
    for (let i = 0; i < 4; i++) {
      const { data, response } = await sdk(gw)
        .chat.completions.create({ model: 'prio', messages: [{ role: 'user', content: `q${i}` }] })
        .withResponse();
      expect(data.choices[0]!.message.content).toBe('from p0');
      expect(response.headers.get('x-switchyard-channel')).toBe('p0');
    }
    expect(counts(p0, p1)).toEqual([a0! + 4, a1!]);
  });

  it('a failing first channel (500) is retried on the other: success, and only ONE attempt hit the failing one', async () => {
    const gw = await fresh(2);
    const [f0, g0] = counts(f500, good);
    const { data, response } = await sdk(gw)
      .chat.completions.create({ model: 'failover', messages: [{ role: 'user', content: 'x' }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe('from good');
    expect(response.headers.get('x-switchyard-channel')).toBe('good');
    expect(counts(f500, good)).toEqual([f0! + 1, g0! + 1]);
  });

  it('the same failover works for a stream (nothing was sent to the client yet)', async () => {
    const gw = await fresh(2);
    const [f0, g0] = counts(f500, good);
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('failover', 'x', { stream: true, stream_options: { include_usage: true } }) });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-switchyard-channel')).toBe('good');
    const events = sseData(r.text);
    expect(events.at(-1)).toBe('[DONE]');
    expect(contentOf(events.slice(0, -1))).toBe('from good');
    expect(JSON.parse(events.at(-2)!).usage).toMatchObject({ prompt_tokens: 3, completion_tokens: 2 });
    expect(counts(f500, good)).toEqual([f0! + 1, g0! + 1]);
  });

  it('an upstream that does not answer within firstByteTimeoutMs is retried on the other channel', async () => {
    const gw = await fresh(2);
    const [h0, g0] = counts(fHang, good);
    const t0 = Date.now();
    const res = await sdk(gw).chat.completions.create({ model: 'failover-hang', messages: [{ role: 'user', content: 'x' }] });
    expect(res.choices[0]!.message.content).toBe('from good');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(380);
    expect(counts(fHang, good)).toEqual([h0! + 1, g0! + 1]);
  });

  it('never the same failed channel while another exists: two failing channels are each tried once before the healthy one', async () => {
    const gw = await fresh(2);
    const [b1, b2, g0] = counts(bad1, bad2, good);
    const res = await sdk(gw).chat.completions.create({ model: 'two-bad-one-good', messages: [{ role: 'user', content: 'x' }] });
    expect(res.choices[0]!.message.content).toBe('from good');
    expect(counts(bad1, bad2, good)).toEqual([b1! + 1, b2! + 1, g0! + 1]);
  });

  it('with only failing channels left, the second attempt goes to the other one first (then the error surfaces as 502)', async () => {
    const gw = await fresh(2);
    const [b1, b2] = counts(bad1, bad2);
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('two-bad') });
    expect(r.status).toBe(502);
    expect(r.json.error.type).toBe('upstream_error');
    const d1 = bad1.count(CHAT) - b1!;
    const d2 = bad2.count(CHAT) - b2!;
    expect(d1 + d2).toBe(3); // 1 + retries (2)
    expect(Math.min(d1, d2)).toBeGreaterThanOrEqual(1);
    // in arrival order, the first two attempts went to different channels
    const attempts = [
      ...bad1.requests.slice(b1).map((r) => ({ order: r.order, c: 'bad1' })),
      ...bad2.requests.slice(b2).map((r) => ({ order: r.order, c: 'bad2' })),
    ].sort((a, b) => a.order - b.order);
    expect(attempts).toHaveLength(3);
    expect(attempts[0]!.c).not.toBe(attempts[1]!.c);
  });

  it('with retries: 0 the failure surfaces and the other channel is not tried', async () => {
    const gw = await fresh(0);
    const [f0, g0] = counts(f500, good);
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('failover') });
    expect(r.status).toBe(502);
    expect(r.json.error.code).toBe('upstream_error');
    expect(counts(f500, good)).toEqual([f0! + 1, g0!]);
  });

  it('a failure AFTER the first chunk is not retried: the stream ends with an error event, no [DONE]', async () => {
    const gw = await fresh(2);
    const [c0, s0] = counts(cut, spare);
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('cut-after-first', 'x', { stream: true }) });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-switchyard-channel')).toBe('cut');
    expect(r.text).not.toContain('[DONE]');
    const events = sseData(r.text);
    expect(JSON.parse(events.at(-1)!).error).toMatchObject({ code: 'upstream_stream_error' });
    expect(contentOf(events.slice(0, -1))).toBe('one');
    expect(r.text).not.toContain('from spare');
    expect(counts(cut, spare)).toEqual([c0! + 1, s0!]);

    const gw2 = await fresh(2); // fresh routing state: only the commit rule decides
    const stream = await sdk(gw2).chat.completions.create({ model: 'cut-after-first', messages: [{ role: 'user', content: 'x' }], stream: true });
    const consumed = await settle(
      (async () => {
        for await (const c of stream) void c;
      })(),
    );
    expect(consumed.ok).toBe(false);
    expect(counts(cut, spare)).toEqual([c0! + 2, s0!]);
  });

  it('a non-retryable upstream error (400: the request itself is bad) is not retried on another channel', async () => {
    const gw = await fresh(2);
    const [e0, s0] = counts(c400, spare);
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('client-error') });
    expect(r.status).toBe(400);
    expect(r.json.error.code).toBe('upstream_client_error');
    expect(r.json.error.message).toContain('temperature'); // the upstream's own message is carried
    expect(counts(c400, spare)).toEqual([e0! + 1, s0!]);
  });
});
