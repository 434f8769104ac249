/**
 * /v1 stream integrity end to end: an upstream stream that ends abnormally (cut, malformed chunk, in-band
 * error, idle timeout) ends the client's stream with an OpenAI error event and NO [DONE], after the content
 * that did arrive; chunks are relayed as they come; a client that goes away cancels the upstream request;
 * a graceful shutdown lets an in-flight stream finish and refuses new requests.
 */
import OpenAI from 'openai';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { call, channelOf, chatBody, cleanupDirs, contentOf, freshAgent, sdk, settle, sseData, startGw, waitFor, within } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const IDLE_MS = 300;
const REPLY = 'one two three four five six';
const { track } = stopAfterAll();

describe('abnormal upstream ends → error event, no [DONE]', () => {
  let gw: Gateway;
  let stall: OpenAiFake;
  beforeAll(async () => {
    stall = track(await startOpenAiUpstream({ reply: REPLY, stallAfterChunks: 2 }));
    gw = await startGw({
      gateway: { routing: { retries: 0, streamIdleTimeoutMs: IDLE_MS, firstByteTimeoutMs: 5_000 } },
      channels: [
        channelOf(track(await startOpenAiUpstream({ reply: REPLY, cutAfterChunks: 2 })), 'oa-cut', ['oa-cut']),
        channelOf(track(await startOpenAiUpstream({ reply: REPLY, malformedChunk: true })), 'oa-malformed', ['oa-malformed']),
        channelOf(track(await startOpenAiUpstream({ reply: REPLY, inbandError: true })), 'oa-inband', ['oa-inband']),
        channelOf(stall, 'oa-stall', ['oa-stall']),
        channelOf(track(await startAnthropicUpstream({ reply: REPLY, cutAfterChunks: 2 })), 'an-cut', ['an-cut']),
        channelOf(track(await startAnthropicUpstream({ reply: REPLY, inbandError: true })), 'an-inband', ['an-inband']),
        channelOf(track(await startAnthropicUpstream({ reply: REPLY, malformedChunk: true })), 'an-malformed', ['an-malformed']),
        channelOf(track(await startOllamaUpstream({ reply: REPLY, cutAfterChunks: 2 })), 'ol-cut', ['ol-cut']),
        channelOf(track(await startOllamaUpstream({ reply: REPLY, inbandError: true })), 'ol-inband', ['ol-inband']),
        { name: 'mk-cut', provider: 'mock', models: ['mk-cut'], options: { reply: REPLY, failMidStream: true } },
        { name: 'mk', provider: 'mock', models: ['mock-1'] },
      ],
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  const CASES = [
    { what: 'openai: connection cut', model: 'oa-cut', before: 'one two', code: 'upstream_stream_error' },
    { what: 'openai: malformed chunk', model: 'oa-malformed', before: 'one', code: 'upstream_bad_response' },
    // the fake's in-band error is a server_error: the error of the 500 it names (docs/errors.md, "In-band errors")
    { what: 'openai: in-band error', model: 'oa-inband', before: 'one', code: 'upstream_error' },
    { what: 'openai: idle timeout', model: 'oa-stall', before: 'one two', code: 'upstream_timeout' },
    { what: 'anthropic: connection cut', model: 'an-cut', before: 'one two ', code: 'upstream_stream_error' },
    { what: 'anthropic: error event', model: 'an-inband', before: 'one ', code: undefined },
    { what: 'anthropic: malformed event', model: 'an-malformed', before: 'one ', code: undefined },
    { what: 'ollama: connection cut', model: 'ol-cut', before: 'one two', code: 'upstream_stream_error' },
    { what: 'ollama: error line', model: 'ol-inband', before: 'one', code: 'upstream_stream_error' },
    { what: 'mock: failMidStream', model: 'mk-cut', before: 'one two three ', code: 'upstream_stream_error' },
  ];

  it.each(CASES)('$what: the raw SSE body ends with an error event, no [DONE], content before it delivered', async ({ model, before, code }) => {
    const t0 = Date.now();
    const r = await call(gw, '/v1/chat/completions', { body: chatBody(model, 'go', { stream: true }) });
    expect(r.status).toBe(200); // the stream had started: the failure can only show in-band
    expect(r.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(r.text).not.toContain('[DONE]');
    expect(r.text.endsWith('\n\n')).toBe(true);
    const events = sseData(r.text);
    const last = JSON.parse(events.at(-1)!);
    expect(last).toMatchObject({ error: { message: expect.any(String), type: expect.any(String), code: expect.any(String) } });
    expect(Object.keys(last.error)).toEqual(expect.arrayContaining(['message', 'type', 'code', 'param']));
    if (code) expect(last.error.code).toBe(code);
    expect(contentOf(events.slice(0, -1))).toBe(before);
    expect(events.slice(0, -1).every((e) => JSON.parse(e).object === 'chat.completion.chunk')).toBe(true);
    expect(Date.now() - t0).toBeLessThan(5_000);
  });

  it.each(CASES)('$what: the SDK stream iteration throws after the content that arrived', async ({ model, before }) => {
    const stream = await sdk(gw).chat.completions.create({ model, messages: [{ role: 'user', content: 'go' }], stream: true });
    let text = '';
    const r = await settle(
      (async () => {
        for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      })(),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error).toBeInstanceOf(OpenAI.APIError);
    expect(text).toBe(before);
  });

  it('the idle timeout also releases the upstream request', async () => {
    await within(stall.aborted(), 2_000, 'the stalled upstream request to be aborted');
  });

  it('the gateway is still serving afterwards', async () => {
    const r = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1', 'ping', { stream: true }) });
    expect(sseData(r.text).at(-1)).toBe('[DONE]');
  });
});

describe('chunk-by-chunk relay and client disconnect', () => {
  let gw: Gateway;
  let slow: OpenAiFake;
  let slowForAbort: OpenAiFake;
  let anHang: FakeUpstream;
  let oaHang: OpenAiFake;
  beforeAll(async () => {
    oaHang = track(await startOpenAiUpstream({ hang: true }));
    slow = track(await startOpenAiUpstream({ reply: 'alpha beta gamma delta epsilon', chunkDelayMs: 200 }));
    slowForAbort = track(await startOpenAiUpstream({ reply: 'w1 w2 w3 w4 w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15', chunkDelayMs: 150 }));
    anHang = track(await startAnthropicUpstream({ hang: true }));
    const olSlow = track(await startOllamaUpstream({ reply: 'uno dos tres cuatro', lineDelayMs: 200 }));
    gw = await startGw({
      channels: [
        channelOf(slow, 'slow', ['slow']),
        channelOf(slowForAbort, 'slow-abort', ['slow-abort']),
        channelOf(anHang, 'an-hang', ['an-hang']),
        channelOf(oaHang, 'oa-hang', ['oa-hang']),
        channelOf(olSlow, 'ol-slow', ['ol-slow']),
        { name: 'mk-slow', provider: 'mock', models: ['mk-slow'], options: { reply: 'a b c d e f g h i j k l m n o p', chunkDelayMs: 150 } },
        { name: 'mk', provider: 'mock', models: ['mock-1'] },
      ],
    });
  });
  afterAll(async () => {
    await gw?.close();
  });

  it.each([
    ['openai', 'slow', 5],
    ['ollama', 'ol-slow', 4],
  ])('%s: the first content chunk reaches the client long before the upstream finished', async (_kind, model, pieces) => {
    const t0 = Date.now();
    const stream = await sdk(gw).chat.completions.create({ model, messages: [{ role: 'user', content: 'go' }], stream: true });
    const at: number[] = [];
    for await (const c of stream) if (c.choices[0]?.delta.content) at.push(Date.now() - t0);
    const total = Date.now() - t0;
    expect(at).toHaveLength(pieces);
    expect(total).toBeGreaterThanOrEqual((pieces - 1) * 200);
    expect(at[0]!).toBeLessThan(total / 2);
    // arrivals are spread out, not delivered in one burst at the end
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual((pieces - 2) * 200);
  });

  it('client disconnect mid-stream aborts the upstream request', async () => {
    const ac = new AbortController();
    const stream = await sdk(gw).chat.completions.create(
      { model: 'slow-abort', messages: [{ role: 'user', content: 'go' }], stream: true },
      { signal: ac.signal },
    );
    let got = '';
    for await (const c of stream) {
      got += c.choices[0]?.delta.content ?? '';
      if (got.length > 0) break; // the SDK aborts its request when the loop is left
    }
    expect(got).toBe('w1');
    await within(slowForAbort.aborted(), 3_000, 'the upstream to see the client disconnect');
    expect(slowForAbort.abortCount()).toBe(1);
  });

  it('client disconnect before the first byte aborts the upstream request (anthropic)', async () => {
    const ac = new AbortController();
    const pending = sdk(gw).chat.completions.create({ model: 'an-hang', messages: [{ role: 'user', content: 'go' }], stream: true }, { signal: ac.signal });
    await waitFor(() => anHang.lastRequest() !== undefined, 'the request to reach the anthropic upstream');
    ac.abort();
    const r = await settle(pending);
    expect(r.ok).toBe(false);
    await within(anHang.aborted(), 3_000, 'the anthropic upstream to see the client disconnect');
  });

  it('client disconnect during a non-stream request aborts the upstream request (openai)', async () => {
    const ac = new AbortController();
    const received = oaHang.count('/chat/completions');
    const pending = sdk(gw).chat.completions.create({ model: 'oa-hang', messages: [{ role: 'user', content: 'go' }] }, { signal: ac.signal });
    await waitFor(() => oaHang.count('/chat/completions') > received, 'the request to reach the openai upstream');
    ac.abort();
    expect((await settle(pending)).ok).toBe(false);
    await within(oaHang.aborted(), 3_000, 'the openai upstream to see the client disconnect');
  });

  it('a raw client closing its socket mid-stream does not disturb the gateway', async () => {
    const ac = new AbortController();
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody('mk-slow', 'go', { stream: true })),
      signal: ac.signal,
    });
    const reader = res.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toContain('chat.completion.chunk');
    ac.abort();
    await reader.cancel().catch(() => undefined);
    const after = await call(gw, '/v1/chat/completions', { body: chatBody('mock-1', 'next') });
    expect(after.status).toBe(200);
  });
});

describe('whole-request deadline (routing.timeoutMs)', () => {
  it('a stream still flowing at the deadline ends with a timeout error event, no [DONE]', async () => {
    const up = track(await startOpenAiUpstream({ reply: 'a b c d e f g h i j k l m n o p', chunkDelayMs: 120 }));
    const gw = await startGw({ gateway: { routing: { timeoutMs: 600 } }, channels: [channelOf(up, 'oa', ['long'])] });
    try {
      const t0 = Date.now();
      const r = await call(gw, '/v1/chat/completions', { body: chatBody('long', 'go', { stream: true }) });
      expect(Date.now() - t0).toBeLessThan(1_500);
      expect(r.text).not.toContain('[DONE]');
      const events = sseData(r.text);
      expect(JSON.parse(events.at(-1)!).error).toMatchObject({ code: 'upstream_timeout' });
      expect(contentOf(events.slice(0, -1)).length).toBeGreaterThan(0);
      await within(up.aborted(), 2_000, 'the upstream stream to be aborted at the deadline');
    } finally {
      await gw.close();
    }
  });
});

describe('graceful shutdown', () => {
  afterEach(() => cleanupDirs());

  it('close() lets an in-flight stream finish and refuses new requests', async () => {
    const up = track(await startOpenAiUpstream({ reply: 'slow and steady wins', chunkDelayMs: 200 }));
    const gw = await startGw({ gateway: { shutdownGraceMs: 5_000 }, channels: [channelOf(up, 'oa', ['slow'])] });
    const res = await fetch(`${gw.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(chatBody('slow', 'go', { stream: true })),
    });
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!contentOf(sseData(text).filter((e) => e.startsWith('{'))).length) {
      const { value, done } = await reader.read();
      if (done) throw new Error('stream ended before the first content chunk');
      text += decoder.decode(value, { stream: true });
    }

    let closed = false;
    const closing = gw.close().then(() => (closed = true));
    // the drain has begun once a new connection to /readyz is refused or answered 503
    await waitFor(async () => {
      const probe = freshAgent();
      const ready = await settle(call(gw, '/readyz', { dispatcher: probe }));
      await probe.close();
      return !ready.ok || ready.value.status === 503;
    }, 'the gateway to start draining');
    const agent = freshAgent();
    const refused = await settle(call(gw, '/v1/chat/completions', { body: chatBody('slow'), dispatcher: agent }));
    if (refused.ok) expect(refused.value.status).toBe(503);
    else expect(String(refused.error.cause?.code ?? refused.error.code ?? refused.error)).toMatch(/ECONNREFUSED|ECONNRESET|UND_ERR_SOCKET|other side closed/);
    await agent.close();

    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    const events = sseData(text);
    expect(events.at(-1)).toBe('[DONE]');
    expect(contentOf(events.slice(0, -1))).toBe('slow and steady wins');
    await within(closing, 3_000, 'close() after the stream finished');
    expect(closed).toBe(true);
  });

  it('a stream still running at the end of shutdownGraceMs is cut, and close() resolves', async () => {
    const up = track(await startOpenAiUpstream({ reply: 'a b c d e f g h i j k l m n o p q r s t', chunkDelayMs: 150 }));
    const gw = await startGw({ gateway: { shutdownGraceMs: 300 }, channels: [channelOf(up, 'oa', ['long'])] });
    const stream = await sdk(gw).chat.completions.create({ model: 'long', messages: [{ role: 'user', content: 'go' }], stream: true });
    let text = '';
    const consuming = settle(
      (async () => {
        for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
      })(),
    );
    await waitFor(() => text.length > 0, 'the stream to be running (first content at the client)');
    const t0 = Date.now();
    await within(gw.close(), 3_000, 'close() within the grace period plus a little');
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
    const r = await within(consuming, 3_000, 'the client stream to end');
    expect(r.ok).toBe(false); // cut: never a clean end
    expect(text.length).toBeGreaterThan(0);
    expect(text).not.toBe('a b c d e f g h i j k l m n o p q r s t');
  });
});
