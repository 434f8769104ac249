/**
 * A peer that answers our forwards with malformed frames (a raw WebSocket server speaking the handshake, so
 * it can send what no gateway would). A bad answer fails its request at once, as a bad upstream answer would,
 * instead of leaving it to its timeout; the peer is told why (bridge-error) and to stop serving it
 * (bridge-cancel). Well-formed chunks a peer relays reach the client as the peer sent them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { startRawBridgePeer, type RawFrame, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { call, cleanupDirs, sseData, startGw, waitFor, waitForBridgeOpen, within } from '../helpers/env.js';

const ADMIN = 'malformed-admin-token-16180';

// a chunk laid out as an upstream might (spaces after the colons): relayed, not re-serialised, it keeps them
const GOOD_CHUNK = '{"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "first"}, "finish_reason": null}]}';

let peer: RawPeer;
let a: Gateway & { logs: string[] };
const received: RawFrame[] = [];

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
});
