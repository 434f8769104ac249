/**
 * Flow control per bridged stream, from the requesting side (protocol 1.1). A client that reads a bridged
 * stream slower than the peer sends it makes this gateway ask the peer to hold the stream (bridge-stream-pause)
 * once it holds STREAM_PAUSE_CHARS for the client, and to go on (bridge-stream-resume) once the client has read
 * it down to STREAM_RESUME_CHARS. So the stream arrives whole however long it is, instead of being abandoned at
 * STREAM_HOLD_CHARS (what a 1.0 peer still gets: test/bridge/malformed-answers.test.ts). First against a raw 1.1
 * peer (what is sent, and when), then between two real gateway processes, with the serving side's upstream (a
 * fake OpenAI server) held too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { STREAM_HOLD_CHARS, STREAM_PAUSE_CHARS } from '../../src/bridge/forwarding.js';
import type { Gateway } from '../../src/gateway.js';
import { startRawBridgePeer, type RawFrame, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import {
  adminGet,
  channelOf,
  cleanupDirs,
  readAll,
  slowClient,
  startGw,
  startProcess,
  waitFor,
  waitForBridgeOpen,
  wsUrl,
  type GatewayProcess,
} from '../helpers/env.js';

const ADMIN = 'stream-pause-admin-token-31415';
const TOKEN = 'stream-pause-bridge-token-92653';
const PIECE = 64 * 1024;

const contentLength = (events: string[]) =>
  events
    .filter((e) => e !== '[DONE]')
    .map((e) => (JSON.parse(e) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '')
    .join('').length;

/** `switchyard_peer_stream_pauses_sent_total` for the link to peer `name`. */
async function pausesSent(baseUrl: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith('switchyard_peer_stream_pauses_sent_total{') && l.includes(`peer="${name}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

describe('against a raw 1.1 peer', () => {
  // three times what a stream may hold for its client, and far more than the client's socket buffers take
  const CHUNKS = (3 * STREAM_HOLD_CHARS) / PIECE;
  let peer: RawPeer;
  let a: Gateway & { logs: string[] };
  const received: RawFrame[] = [];
  /** what the peer had sent of the stream when each pause reached it */
  const sentAtPause: number[] = [];

  /** Sends the stream as fast as the link takes it, holding it while paused, as a 1.1 gateway does. */
  async function pacedStream(ws: WebSocket, requestId: string): Promise<void> {
    const id = JSON.stringify(requestId);
    const chunk = JSON.stringify({
      id: 'c1',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: 'p'.repeat(PIECE) }, finish_reason: null }],
    });
    let paused = false;
    let wake: (() => void) | undefined;
    ws.on('message', (d) => {
      const f = JSON.parse(String(d)) as RawFrame;
      if (f.requestId !== requestId) return;
      if (f.type === 'bridge-stream-pause') {
        paused = true;
        sentAtPause.push(sent);
      } else if (f.type === 'bridge-stream-resume') {
        paused = false;
        wake?.();
      }
    });
    let sent = 0;
    for (let i = 0; i < CHUNKS; i++) {
      while (paused) await new Promise<void>((r) => (wake = r));
      ws.send(`{"type":"bridge-stream","requestId":${id},"chunk":${chunk}}`);
      sent += PIECE;
      await new Promise((r) => setImmediate(r)); // let the link's frames in between
    }
    ws.send(`{"type":"bridge-stream-end","requestId":${id}}`);
  }

  beforeAll(async () => {
    peer = await startRawBridgePeer({
      gatewayId: 'gw_pause_b',
      gatewayName: 'pause-b',
      version: '1.1',
      models: ['paced-model'],
      policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
      onFrame: (ws, f) => {
        received.push(f);
        if (f.type === 'bridge-forward') void pacedStream(ws, f.requestId!);
      },
    });
    a = await startGw({
      gateway: { id: 'gw_pause_a', admin: { token: ADMIN }, bridges: [{ name: 'b', url: peer.url, token: TOKEN, reconnectInterval: 100 }] },
      channels: [],
    });
    await waitForBridgeOpen(a.url, ADMIN);
  });
  afterAll(async () => {
    await a?.close();
    await peer?.close();
    cleanupDirs();
  });

  it('a slow client pauses the peer past STREAM_PAUSE_CHARS, resumes it as it reads, and gets a stream three times STREAM_HOLD_CHARS whole', async () => {
    const res = await slowClient(a.url, 'paced-model', 'paced');
    await waitFor(() => sentAtPause.length > 0, 'bridge-stream-pause', 20_000);
    // paused once the stream held more than STREAM_PAUSE_CHARS for the client, long before it would be abandoned
    expect(sentAtPause[0]).toBeGreaterThan(STREAM_PAUSE_CHARS);
    expect(sentAtPause[0]).toBeLessThan(STREAM_HOLD_CHARS);
    const events = await readAll(res);
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.some((e) => e.includes('"error"'))).toBe(false);
    expect(contentLength(events)).toBe(CHUNKS * PIECE);
    const fwd = received.find((f) => f.type === 'bridge-forward')!.requestId;
    const about = received.filter((f) => f.requestId === fwd).map((f) => f.type);
    // every pause was resumed (the peer sends nothing while paused, so the end came after the last resume)
    expect(about.filter((t) => t === 'bridge-stream-resume').length).toBe(sentAtPause.length);
    expect(about).not.toContain('bridge-cancel');
    expect(await pausesSent(a.url, 'b')).toBe(sentAtPause.length);
  }, 60_000);
});

describe('between two gateway processes', () => {
  let a: GatewayProcess;
  let b: GatewayProcess;
  let up: OpenAiFake;
  // 24 Mi characters, in 64 Ki-character words: three times what a stream may hold, and far more than the slow
  // client's and the gateway's socket buffers take before the stream backs up into A
  const WORDS = (3 * STREAM_HOLD_CHARS) / PIECE;

  beforeAll(async () => {
    up = await startOpenAiUpstream({ reply: Array.from({ length: WORDS }, () => 'h'.repeat(PIECE)).join(' ') });
    b = await startProcess({
      gateway: { id: 'gw_hold_b', name: 'hold-b', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['big'] } },
      channels: [channelOf(up, 'big', ['big-1'], { timeoutMs: 120_000 })],
    });
    a = await startProcess({
      gateway: { id: 'gw_hold_a', name: 'hold-a', admin: { token: ADMIN }, bridges: [{ name: 'b', url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100 }] },
      channels: [],
    });
    await waitForBridgeOpen(a.url, ADMIN);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop(), up?.close()]);
    cleanupDirs();
  });

  const bRow = async () =>
    (
      await adminGet<{ peers: Array<{ id: string; protocol: string; pausedStreams: number; inflight: { in: number } }> }>(b.url, '/admin/bridges', ADMIN)
    ).peers.find((p) => p.id === 'gw_hold_a');

  it('the link speaks 1.1; a slow client on A holds the stream on B (and B its upstream) and reads it whole', async () => {
    expect((await bRow())?.protocol).toBe('1.1');
    const res = await slowClient(a.url, 'big-1', 'paced');
    await waitFor(async () => (await bRow())?.pausedStreams === 1, "B holding the stream for A's slow client", 30_000);
    expect(await pausesSent(a.url, 'b')).toBeGreaterThanOrEqual(1);
    const events = await readAll(res);
    expect(events.at(-1)).toBe('[DONE]');
    expect(events.some((e) => e.includes('"error"'))).toBe(false);
    expect(contentLength(events)).toBe(WORDS * PIECE + WORDS - 1);
    await waitFor(async () => (await bRow())?.inflight.in === 0, 'B to finish serving');
    expect((await bRow())?.pausedStreams).toBe(0);
  }, 120_000);
});
