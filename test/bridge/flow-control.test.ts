/**
 * Flow control on a link, from the serving side: a peer that reads slower than the upstream streams slows the
 * upstream (the gateway holds about 1 MiB for it, not the whole stream), and a peer that stops reading
 * altogether is disconnected (4002) once more than the backlog cap waits for it, instead of growing the
 * gateway's memory by every answer it asks for. The peer is a raw `ws` client whose socket is paused.
 */
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Socket } from 'node:net';
import type { Gateway } from '../../src/gateway.js';
import { adminGet, cleanupDirs, memoryLogger, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'flow-control-bridge-token-5521';
const ADMIN = 'flow-control-admin-token-5521';
const WORD = 'w'.repeat(256 * 1024);
let gw: Gateway;
const mem = memoryLogger();

beforeAll(async () => {
  gw = await startInProcess(
    {
      gateway: {
        id: 'gw_flow',
        admin: { token: ADMIN },
        bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['long', 'big', 'mid'], limits: { maxFrameBytes: 2 * 1024 * 1024 } },
      },
      channels: [
        // a 10 MiB stream of 40 chunks, as fast as the gateway takes them
        { name: 'long', provider: 'mock', models: ['long-1'], options: { reply: Array.from({ length: 40 }, () => WORD).join(' ') } },
        // a 1 MiB answer
        { name: 'big', provider: 'mock', models: ['big-1'], options: { reply: 'b'.repeat(1024 * 1024) } },
        // a 1 MiB stream of 16 chunks
        { name: 'mid', provider: 'mock', models: ['mid-1'], options: { reply: Array.from({ length: 16 }, () => 'm'.repeat(64 * 1024)).join(' ') } },
      ],
    },
    mem.logger,
  );
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

/** An authenticated raw peer, and its socket (paused to stop reading). */
async function peer(id: string, hello: Record<string, unknown> = {}): Promise<{ ws: WebSocket; socket: Socket; frames: any[]; closed: Promise<number> }> {
  const ws = new WebSocket(wsUrl(gw.url), { maxPayload: 64 * 1024 * 1024 });
  const frames: any[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  ws.send(helloFrame(id, TOKEN, hello));
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'hello-ok');
  return { ws, socket: (ws as unknown as { _socket: Socket })._socket, frames, closed };
}

/** The peer's send backlog as /admin/bridges shows it; undefined once the peer is no longer listed. */
async function backlogOf(id: string): Promise<number | undefined> {
  const row = (await adminGet<{ peers: Array<{ id: string; backlogBytes: number }> }>(gw.url, '/admin/bridges', ADMIN)).peers.find((p) => p.id === id);
  if (!row) return undefined;
  expect(row.backlogBytes).toBeTypeOf('number');
  return row.backlogBytes;
}

/** A `bridge-forward` for `channel`'s model (`<channel>-1`). */
const forward = (requestId: string, channel: string, stream: boolean) =>
  JSON.stringify({
    type: 'bridge-forward',
    requestId,
    targetChannel: channel,
    ...(stream ? { stream: true } : {}),
    payload: { model: `${channel}-1`, messages: [{ role: 'user', content: 'go' }] },
  });

/** The text a stream of `requestId` carried, from the frames the peer received. */
const streamText = (frames: any[], requestId: string) =>
  frames
    .filter((f) => f.requestId === requestId && f.type === 'bridge-stream')
    .map((f) => f.chunk.choices[0]?.delta?.content ?? '')
    .join('');

describe('flow control on a link we serve', () => {
  it('a peer that reads slowly slows the stream: the gateway holds about a megabyte for it, and the stream arrives whole', async () => {
    const p = await peer('gw_slow_reader');
    p.socket.pause();
    p.ws.send(forward('s1', 'long', true));
    await waitFor(async () => ((await backlogOf('gw_slow_reader')) ?? 0) > 1024 * 1024, 'the stream to back up');
    // while the peer does not read, the backlog stays near the high-water mark (the stream is 10 MiB)
    let peak = 0;
    for (let i = 0; i < 10; i++) {
      peak = Math.max(peak, (await backlogOf('gw_slow_reader')) ?? 0);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(peak).toBeLessThan(3 * 1024 * 1024);
    p.socket.resume();
    await waitFor(() => p.frames.find((f) => f.requestId === 's1' && f.type === 'bridge-stream-end'), 'the end of the stream', 20_000);
    expect(streamText(p.frames, 's1').length).toBe(40 * WORD.length + 39);
    p.ws.close();
  }, 30_000);

  it('twelve streams held back for one slow peer wait on its socket together: no listener per stream (no MaxListeners warning)', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error) => void (w.name === 'MaxListenersExceededWarning' && warnings.push(w.message));
    process.on('warning', onWarning);
    try {
      const p = await peer('gw_many_waiters');
      p.socket.pause();
      for (let i = 0; i < 12; i++) p.ws.send(forward(`m${i}`, 'mid', true));
      await waitFor(async () => ((await backlogOf('gw_many_waiters')) ?? 0) > 1024 * 1024, 'the streams to back up');
      p.socket.resume();
      await waitFor(() => p.frames.filter((f) => f.type === 'bridge-stream-end').length === 12, 'the end of all twelve streams', 20_000);
      for (let i = 0; i < 12; i++) expect(streamText(p.frames, `m${i}`).length, `stream m${i}`).toBe(16 * 64 * 1024 + 15);
      expect(warnings).toEqual([]);
      p.ws.close();
    } finally {
      process.off('warning', onWarning);
    }
  }, 30_000);

  it.each([
    ['gw_no_reader', {}],
    // the peer's word cannot raise the cap past what this gateway's own maxFrameBytes allows
    ['gw_huge_frames', { maxFrameBytes: Number.MAX_SAFE_INTEGER }],
  ])(
    'a peer that stops reading (%s) is disconnected (4002) once 64 MiB wait for it, and what waited is dropped',
    async (id, hello) => {
      const p = await peer(id, hello);
      p.socket.pause();
      for (let i = 0; i < 90; i++) p.ws.send(forward(`b${i}`, 'big', false));
      // the gateway gives up on the link (a frozen peer is not waited for: the socket is then cut)
      await waitFor(async () => (await backlogOf(id)) === undefined, 'the link to be gone', 20_000);
      const lines = mem.lines.map((l) => JSON.parse(l) as Record<string, unknown>);
      const notReading = lines.find((l) => l.msg === 'bridge peer is not reading: closing the link' && l.peer === id);
      expect(Number(notReading?.backlogBytes)).toBeGreaterThan(64 * 1024 * 1024);
      expect(lines.find((l) => l.msg === 'bridge peer disconnected' && l.peer === id)).toMatchObject({ code: 4002 });
      p.socket.resume();
      await p.closed;
    },
    40_000,
  );
});

describe('a 1.1 peer holds a stream it asked for (bridge-stream-pause / bridge-stream-resume)', () => {
  const V11 = { version: '1.1', minVersion: '1.0', maxVersion: '1.1' };
  const rowOf = async (id: string) =>
    (
      await adminGet<{ peers: Array<{ id: string; pausedStreams: number; protocol: string; inflight: { in: number } }> }>(gw.url, '/admin/bridges', ADMIN)
    ).peers.find((p) => p.id === id);
  const chunksOf = (frames: any[], requestId: string) => frames.filter((f) => f.requestId === requestId && f.type === 'bridge-stream').length;

  it('a 1.0 peer gets 1.0 and a 1.0–1.1 peer 1.1, as /admin/bridges shows', async () => {
    const old = await peer('gw_v10');
    const now = await peer('gw_v11', V11);
    expect(old.frames.find((f) => f.type === 'bridge-hello-ok').version).toBe('1.0');
    expect(now.frames.find((f) => f.type === 'bridge-hello-ok').version).toBe('1.1');
    expect((await rowOf('gw_v10'))?.protocol).toBe('1.0');
    expect((await rowOf('gw_v11'))?.protocol).toBe('1.1');
    old.ws.close();
    now.ws.close();
  });

  it('paused before its first chunk, the stream sends that chunk and waits, however fast the peer reads; resumed, it arrives whole', async () => {
    const p = await peer('gw_pauser', V11);
    p.ws.send(forward('p1', 'long', true));
    p.ws.send(JSON.stringify({ type: 'bridge-stream-pause', requestId: 'p1' }));
    await waitFor(async () => (await rowOf('gw_pauser'))?.pausedStreams === 1, 'the stream to wait for its resume');
    // the serving loop waits after the chunk it was sending: exactly one went out (the mock's first, its role)
    expect(chunksOf(p.frames, 'p1')).toBe(1);
    expect((await rowOf('gw_pauser'))?.inflight.in).toBe(1);
    p.ws.send(JSON.stringify({ type: 'bridge-stream-resume', requestId: 'p1' }));
    await waitFor(() => p.frames.find((f) => f.requestId === 'p1' && f.type === 'bridge-stream-end'), 'the end of the stream', 20_000);
    expect(streamText(p.frames, 'p1').length).toBe(40 * WORD.length + 39);
    expect(await rowOf('gw_pauser')).toMatchObject({ pausedStreams: 0, inflight: { in: 0 } });
    // a pause or resume for an id it no longer serves, or never did, is nothing: the link stays open
    p.ws.send(JSON.stringify({ type: 'bridge-stream-pause', requestId: 'p1' }));
    p.ws.send(JSON.stringify({ type: 'bridge-stream-resume', requestId: 'nope' }));
    p.ws.send(forward('p2', 'mid', true));
    await waitFor(() => p.frames.find((f) => f.requestId === 'p2' && f.type === 'bridge-stream-end'), 'the next stream');
    expect(p.frames.filter((f) => f.type === 'bridge-error')).toEqual([]);
    p.ws.close();
  }, 30_000);

  it('a stream held past its deadline ends with UPSTREAM_TIMEOUT (started): a peer that never resumes cannot hold the upstream', async () => {
    const p = await peer('gw_never_resumes', V11);
    p.ws.send(JSON.stringify({ ...JSON.parse(forward('d1', 'long', true)), deadlineMs: 1_500 }));
    p.ws.send(JSON.stringify({ type: 'bridge-stream-pause', requestId: 'd1' }));
    const err = await waitFor(() => p.frames.find((f) => f.requestId === 'd1' && f.type === 'bridge-error'), 'the deadline error', 10_000);
    expect(err).toMatchObject({ gatewayCode: 'UPSTREAM_TIMEOUT', started: true });
    expect(err.message).toBe("the request's deadline passed while bridge peer gw_never_resumes held the stream paused");
    expect(chunksOf(p.frames, 'd1')).toBe(1);
    expect(await rowOf('gw_never_resumes')).toMatchObject({ pausedStreams: 0, inflight: { in: 0 } });
    p.ws.close();
  });

  it('bridge-cancel ends a held stream at once: nothing more is sent, the slot is free', async () => {
    const p = await peer('gw_cancels', V11);
    p.ws.send(forward('c1', 'long', true));
    p.ws.send(JSON.stringify({ type: 'bridge-stream-pause', requestId: 'c1' }));
    await waitFor(async () => (await rowOf('gw_cancels'))?.pausedStreams === 1, 'the stream to wait for its resume');
    p.ws.send(JSON.stringify({ type: 'bridge-cancel', requestId: 'c1' }));
    await waitFor(async () => (await rowOf('gw_cancels'))?.inflight.in === 0, 'the served request to end');
    expect((await rowOf('gw_cancels'))?.pausedStreams).toBe(0);
    expect(chunksOf(p.frames, 'c1')).toBe(1);
    expect(p.frames.find((f) => f.requestId === 'c1' && f.type === 'bridge-stream-end')).toBeUndefined();
    p.ws.close();
  });
});
