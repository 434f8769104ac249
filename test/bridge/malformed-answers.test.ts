/**
 * A peer that answers our forwards with malformed frames (a raw WebSocket server speaking the handshake, so
 * it can send what no gateway would). A bad answer fails its request at once, as a bad upstream answer would,
 * instead of leaving it to its timeout; the peer is told why (bridge-error) and to stop serving it
 * (bridge-cancel). Well-formed chunks a peer relays reach the client as the peer sent them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { STREAM_HOLD_CHARS } from '../../src/bridge/forwarding.js';
import type { Gateway } from '../../src/gateway.js';
import { startRawBridgePeer, type RawFrame, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { call, cleanupDirs, readAll, slowClient, sseData, startGw, waitFor, waitForBridgeOpen, within } from '../helpers/env.js';

const ADMIN = 'malformed-admin-token-16180';

// a chunk laid out as an upstream might (spaces after the colons): relayed, not re-serialised, it keeps them
const GOOD_CHUNK = '{"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "first"}, "finish_reason": null}]}';

let peer: RawPeer;
let a: Gateway & { logs: string[] };
const received: RawFrame[] = [];
const peerSockets = new Set<WebSocket>();

/** What the fake peer answers a forward with, by the prompt's text. */
function answer(ws: WebSocket, f: RawFrame): void {
  const id = JSON.stringify(f.requestId);
  const payload = f.payload as { messages: Array<{ content: string }> };
  const prompt = payload.messages[0]!.content;
  if (prompt === 'bad chunk after a good one') {
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":${GOOD_CHUNK}}`);
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":[1]}`);
  } else if (prompt === 'bad response') {
    ws.send(`{"type":"bridge-response","requestId":${id},"payload":"not an object"}`);
  } else if (prompt === 'deep chunk') {
    // laid out otherwise than a gateway's relay (a space after the type), so it is parsed: 20,000 levels
    ws.send(`{"type": "bridge-stream","requestId":${id},"chunk":{"x":${'['.repeat(20_000)}${']'.repeat(20_000)}}}`);
  } else if (prompt === 'chunk without choices') {
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":{"choices":"zz"}}`);
  } else if (prompt === 'chunk without choices, parsed') {
    ws.send(`{"type": "bridge-stream","requestId":${id},"chunk":{"id":"c2"}}`);
  } else if (prompt === 'error chunk') {
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":{"error":{"message":"quota gone"}}}`);
  } else if (prompt === 'response without choices') {
    ws.send(`{"type":"bridge-response","requestId":${id},"payload":{"id":"x","object":"chat.completion"}}`);
  } else if (prompt === 'peer says unauthorized') {
    ws.send(
      JSON.stringify({ type: 'bridge-error', requestId: f.requestId, code: 'AUTH_FAILED', gatewayCode: 'UNAUTHORIZED', message: 'no', retryable: false }),
    );
  } else if (prompt === 'peer says wait forever') {
    ws.send(
      JSON.stringify({
        type: 'bridge-error',
        requestId: f.requestId,
        code: 'RATE_LIMITED',
        gatewayCode: 'RATE_LIMITED',
        message: 'later',
        retryable: true,
        retryAfterMs: Number.MAX_SAFE_INTEGER,
      }),
    );
  } else if (prompt === 'stream answered as a response') {
    ws.send(`{"type":"bridge-response","requestId":${id},"payload":{"id":"x","object":"chat.completion","choices":[]}}`);
  } else if (prompt === 'response answered as a stream end') {
    ws.send(`{"type":"bridge-stream-end","requestId":${id}}`);
  } else if (prompt === 'response answered as a stream') {
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":${GOOD_CHUNK}}`);
  } else if (prompt === 'flood') {
    // 48 Mi characters as fast as the socket takes them: far more than the client's socket buffers hold
    const text = 'f'.repeat(64 * 1024);
    const chunk = JSON.stringify({ id: 'c1', object: 'chat.completion.chunk', choices: [{ index: 0, delta: { content: text }, finish_reason: null }] });
    for (let i = 0; i < 768; i++) ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":${chunk}}`);
    ws.send(`{"type":"bridge-stream-end","requestId":${id}}`);
  } else if (prompt === 'good stream') {
    ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":${GOOD_CHUNK}}`);
    ws.send(`{"type":"bridge-stream-end","requestId":${id}}`);
  }
}

beforeAll(async () => {
  peer = await startRawBridgePeer({
    gatewayId: 'gw_malformed_b',
    gatewayName: 'malformed-b',
    models: ['mal-model'],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
    onFrame: (ws, f) => {
      peerSockets.add(ws);
      received.push(f);
      if (f.type === 'bridge-forward') answer(ws, f);
    },
  });
  a = await startGw({
    gateway: {
      id: 'gw_malformed_a',
      admin: { token: ADMIN },
      bridges: [{ name: 'b', url: peer.url, token: 'malformed-bridge-token-27182', reconnectInterval: 100 }],
    },
    channels: [],
  });
  await waitForBridgeOpen(a.url, ADMIN);
});

afterAll(async () => {
  await a?.close();
  await peer?.close();
  cleanupDirs();
});

const ask = (content: string, stream: boolean) =>
  within(call(a, '/v1/chat/completions', { body: { model: 'mal-model', stream, messages: [{ role: 'user', content }] } }), 10_000, content);

/** The frames the fake peer received about `requestId`, by type. */
const about = (requestId: string) => received.filter((f) => f.requestId === requestId).map((f) => f.type);

describe('a peer that answers with malformed frames', () => {
  it('a bad chunk after a good one ends the stream with an error at once; the peer hears BAD_FRAME and bridge-cancel', async () => {
    const r = await ask('bad chunk after a good one', true);
    expect(r.status).toBe(200);
    const events = sseData(r.text);
    expect(events[0]).toBe(GOOD_CHUNK);
    expect(events).not.toContain('[DONE]');
    const last = JSON.parse(events.at(-1)!) as { error: { message: string } };
    expect(last.error.message).toBe('bridge peer b sent a malformed bridge-stream frame (bridge-stream.chunk: must be an object)');
    const fwd = received.find(
      (f) => f.type === 'bridge-forward' && (f.payload as { messages: Array<{ content: string }> }).messages[0]!.content === 'bad chunk after a good one',
    )!;
    await waitFor(() => about(fwd.requestId!).includes('bridge-cancel'), 'bridge-cancel', 5_000, 20);
    expect(about(fwd.requestId!)).toEqual(['bridge-forward', 'bridge-error', 'bridge-cancel']);
    expect(received.find((f) => f.type === 'bridge-error' && f.requestId === fwd.requestId)).toMatchObject({ code: 'BAD_FRAME' });
  });

  it('a bad response fails the request at once (502), after the router tried the peer again', async () => {
    const r = await ask('bad response', false);
    expect(r.status).toBe(502);
    expect(r.json.error.message).toBe('bridge peer b sent a malformed bridge-response frame (bridge-response.payload: must be an object)');
    const forwards = received.filter(
      (f) => f.type === 'bridge-forward' && (f.payload as { messages: Array<{ content: string }> }).messages[0]!.content === 'bad response',
    );
    expect(forwards.length).toBeGreaterThanOrEqual(1);
    for (const f of forwards) {
      await waitFor(() => about(f.requestId!).includes('bridge-cancel'), 'bridge-cancel', 5_000, 20);
      expect(about(f.requestId!)).toEqual(['bridge-forward', 'bridge-error', 'bridge-cancel']);
    }
  });

  it('well-formed chunks reach the client as the peer sent them', async () => {
    const r = await ask('good stream', true);
    expect(r.status).toBe(200);
    expect(sseData(r.text)).toEqual([GOOD_CHUNK, '[DONE]']);
  });

  it('a frame nested past the protocol limit fails its request (the gateway never walks it), the peer hears BAD_FRAME', async () => {
    // before a first chunk: the request fails as a whole (502), as any stream that fails before its first byte
    const r = await ask('deep chunk', true);
    expect(r.status).toBe(502);
    expect(r.json.error).toMatchObject({
      code: 'upstream_bad_response',
      message: 'bridge peer b sent a malformed bridge-stream frame (frame nests deeper than 1024 levels)',
    });
    const fwd = forwardFor('deep chunk');
    await waitFor(() => about(fwd).includes('bridge-cancel'), 'bridge-cancel', 5_000, 20);
    expect(received.find((f) => f.type === 'bridge-error' && f.requestId === fwd)).toMatchObject({ code: 'BAD_FRAME' });
  });

  it.each([
    ['chunk without choices', 'channel b/up: upstream sent a chunk without choices'],
    ['chunk without choices, parsed', 'channel b/up: upstream sent a chunk without choices'],
    ['error chunk', 'channel b/up: upstream reported an error mid-stream: quota gone'],
  ])('a chunk an upstream could not send either (%s) fails the request, never reaches the client as content', async (prompt, message) => {
    const r = await ask(prompt, true);
    expect(r.status).toBe(502);
    expect(r.json.error.message).toBe(message);
    await waitFor(() => about(forwardFor(prompt)).includes('bridge-cancel'), 'bridge-cancel', 5_000, 20);
  });

  it.each([
    ['stream answered as a response', true, 'a streaming request with bridge-response'],
    ['response answered as a stream end', false, 'a non-streaming request with bridge-stream-end'],
    ['response answered as a stream', false, 'a non-streaming request with bridge-stream'],
  ])('an answer of the other kind (%s) fails the request at once (502), never waits past every timeout', async (prompt, stream, what) => {
    const r = await ask(prompt, stream);
    expect(r.status).toBe(502);
    expect(r.json.error).toMatchObject({ code: 'upstream_bad_response', message: `bridge peer b answered ${what}` });
    await waitFor(() => about(forwardFor(prompt)).includes('bridge-cancel'), 'bridge-cancel', 5_000, 20);
  });

  it('an answer without choices is a bad answer (502), not a 200', async () => {
    const r = await ask('response without choices', false);
    expect(r.status).toBe(502);
    expect(r.json.error).toMatchObject({ code: 'upstream_bad_response', message: 'channel b/up: upstream reply has no choices' });
  });

  it("a peer's refusal never speaks for the client's own credentials or sets an unbounded Retry-After", async () => {
    const denied = await ask('peer says unauthorized', false);
    expect(denied.status).toBe(502);
    expect(denied.json.error.code).toBe('peer_unavailable');
    const later = await ask('peer says wait forever', false);
    expect(later.status).toBe(429);
    expect(later.headers.get('retry-after')).toBe('86400');
  });

  it("a peer's link-level error is kept and logged cut to 1200 characters (RELAYED_TEXT_MAX and room for a peer's prefixes)", async () => {
    const ws = [...peerSockets][0]!;
    ws.send(JSON.stringify({ type: 'bridge-error', code: 'INTERNAL', message: 'L'.repeat(500_000), retryable: false }));
    const row = async () =>
      ((await call(a, '/admin/bridges', { headers: { authorization: `Bearer ${ADMIN}` } })).json as { peers: Array<{ lastError: string | null }> }).peers[0]!;
    await waitFor(async () => (await row()).lastError?.startsWith('INTERNAL: L') === true, 'lastError', 5_000, 20);
    expect((await row()).lastError).toBe(`INTERNAL: ${'L'.repeat(1200)}…`);
    const line = a.logs.find((l) => l.includes('peer reported an error'))!;
    expect(line.length).toBeLessThan(2_000);
  });
});

describe('a peer that streams faster than its client reads', () => {
  it('the stream is abandoned once it holds more than STREAM_HOLD_CHARS: the peer is told to stop, the client gets client_too_slow after what was held', async () => {
    // a client that waits for 'drain' again and again leaves no listener behind per wait (no MaxListeners warning)
    const warnings: string[] = [];
    const onWarning = (w: Error) => void (w.name === 'MaxListenersExceededWarning' && warnings.push(w.message));
    process.on('warning', onWarning);
    // the client stops reading: its socket buffers fill, then the gateway's queue for the stream
    const res = await slowClient(a.url, 'mal-model', 'flood');
    await waitFor(() => about(forwardFor('flood')).includes('bridge-cancel'), 'bridge-cancel for the flood', 20_000, 50);
    // a 1.0 peer (this one's hello-ok) cannot be paused: it is never sent bridge-stream-pause
    expect(about(forwardFor('flood'))).not.toContain('bridge-stream-pause');
    const events = await readAll(res);
    expect(events).not.toContain('[DONE]');
    expect(JSON.parse(events.at(-1)!)).toMatchObject({ error: { code: 'client_too_slow' } });
    // what was held went out first: at least the cap, never the whole 48 Mi
    const delivered = events
      .slice(0, -1)
      .reduce((n, e) => n + (JSON.parse(e) as { choices: Array<{ delta: { content: string } }> }).choices[0]!.delta.content.length, 0);
    expect(delivered).toBeGreaterThanOrEqual(STREAM_HOLD_CHARS * 0.9);
    expect(delivered).toBeLessThan(48 * 1024 * 1024);
    process.off('warning', onWarning);
    expect(warnings).toEqual([]);
  }, 60_000);
});

/** The request id of the forward that carried `prompt`. */
function forwardFor(prompt: string): string {
  return received.find((f) => f.type === 'bridge-forward' && (f.payload as { messages: Array<{ content: string }> }).messages[0]!.content === prompt)!
    .requestId!;
}
