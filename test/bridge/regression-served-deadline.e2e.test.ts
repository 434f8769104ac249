/**
 * A forward's `deadlineMs` is the peer's to give, and a served stream the peer holds paused waits for its resume
 * until that deadline (forwarding.ts `resumed`): a timer. A deadline longer than a Node timer can wait (2^31 − 1 ms)
 * made that timer fire at once, so the stream failed with UPSTREAM_TIMEOUT the moment it was paused. The serving
 * side now takes such a deadline as the longest a timer waits.
 */
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { adminGet, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const TOKEN = 'served-deadline-token-7b21';
const { trackGateway: track } = stopAfterAll();

describe('a served stream whose peer gives a deadline longer than a timer can wait', () => {
  it('is held while paused and goes on at the resume, not failed at once', async () => {
    const b = track(
      await startProcess({
        gateway: { id: 'gw_sd_b', name: 'server', bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['m'] } },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'], options: { chunks: 12, chunkDelayMs: 30 } }],
      }),
    );
    const ws = new WebSocket(wsUrl(b.url));
    const frames: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
    await new Promise((resolve, reject) => (ws.once('open', resolve), ws.once('error', reject)));
    ws.send(helloFrame('gw_sd_peer', TOKEN, { version: '1.1' }));
    await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'hello-ok');

    ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'long-1',
        targetChannel: 'm',
        stream: true,
        deadlineMs: 3_000_000_000,
        payload: { model: 'mock-1', messages: [{ role: 'user', content: 'hold me' }] },
      }),
    );
    await waitFor(() => frames.find((f) => f.type === 'bridge-stream' && f.requestId === 'long-1'), 'the first chunk');
    ws.send(JSON.stringify({ type: 'bridge-stream-pause', requestId: 'long-1' }));
    // B holds the stream: its peer row counts it paused
    await waitFor(
      async () =>
        (await adminGet<{ peers: Array<{ id: string; pausedStreams: number }> }>(b.url, '/admin/bridges')).peers.find((p) => p.id === 'gw_sd_peer')
          ?.pausedStreams === 1,
      'the stream held paused on B',
    );
    expect(frames.filter((f) => f.requestId === 'long-1' && f.type !== 'bridge-stream')).toEqual([]);
    ws.send(JSON.stringify({ type: 'bridge-stream-resume', requestId: 'long-1' }));
    const end = await waitFor(() => frames.find((f) => f.requestId === 'long-1' && f.type !== 'bridge-stream'), 'the stream’s end');
    expect(end.type).toBe('bridge-stream-end');
    const text = frames
      .filter((f) => f.type === 'bridge-stream' && f.requestId === 'long-1')
      .map((f) => (f.chunk as { choices: Array<{ delta: { content?: string } }> }).choices[0]?.delta.content ?? '')
      .join('');
    expect(text.length).toBeGreaterThan(0);
    ws.close();
  });
});
