/**
 * Flow control per bridged stream, from the requesting side (protocol 1.1). A client that reads a bridged
 * stream slower than the peer sends it makes this gateway ask the peer to hold the stream (bridge-stream-pause)
 * once it holds STREAM_PAUSE_CHARS for the client, and to go on (bridge-stream-resume) once the client has read
 * it down to STREAM_RESUME_CHARS. So the stream arrives whole however long it is, instead of being abandoned at
 * STREAM_HOLD_CHARS (what a 1.0 peer still gets: test/bridge/malformed-answers.test.ts). First against a raw 1.1
 * peer (what is sent, and when; what was on its way when the pause left, which only the pong to the ping after the
 * pause tells from a peer that goes on sending), then between two real gateway processes, with the serving
 * side's upstream (a fake OpenAI server) held too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { LINK_UNCONFIRMED_HOLD_CHARS, STREAM_HOLD_CHARS, STREAM_PAUSE_CHARS } from '../../src/bridge/forwarding.js';
import type { Gateway } from '../../src/gateway.js';
import { startRawBridgePeer, type RawFrame } from '../fakes/raw-bridge-peer.js';
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
const MI = 1024 * 1024;

const contentLength = (events: string[]) =>
  events
    .filter((e) => e !== '[DONE]')
    .map((e) => (JSON.parse(e) as { choices: Array<{ delta?: { content?: string } }> }).choices[0]?.delta?.content ?? '')
    .join('').length;

/** A link metric (`switchyard_peer_…`) for the link to peer `name`. */
async function linkMetric(baseUrl: string, metric: string, name: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } })).text();
  const line = text.split('\n').find((l) => l.startsWith(`${metric}{`) && l.includes(`peer="${name}"`));
  return line ? Number(line.split(' ').at(-1)) : 0;
}
const pausesSent = (baseUrl: string, name: string) => linkMetric(baseUrl, 'switchyard_peer_stream_pauses_sent_total', name);

/** A raw 1.1 peer sharing `model` (its frames to `onFrame`) and gateway A bridged to it; `close` ends both. */
async function gatewayOverRawPeer(id: string, model: string, onFrame: (ws: WebSocket, f: RawFrame) => void) {
  const peer = await startRawBridgePeer({
    gatewayId: `gw_${id}_b`,
    gatewayName: `${id}-b`,
    version: '1.1',
    models: [model],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
    onFrame,
  });
  const a = await startGw({
    gateway: { id: `gw_${id}_a`, admin: { token: ADMIN }, bridges: [{ name: 'b', url: peer.url, token: TOKEN, reconnectInterval: 100 }] },
    channels: [],
  });
  await waitForBridgeOpen(a.url, ADMIN);
  return {
    a,
    close: async () => {
      await a.close();
      await peer.close();
      cleanupDirs();
    },
  };
}

describe('against a raw 1.1 peer', () => {
  // three times what a stream may hold for its client, and far more than the client's socket buffers take
  const CHUNKS = (3 * STREAM_HOLD_CHARS) / PIECE;
  let a: Gateway;
  let close: (() => Promise<void>) | undefined;
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
    ({ a, close } = await gatewayOverRawPeer('pause', 'paced-model', (ws, f) => {
      received.push(f);
      if (f.type === 'bridge-forward') void pacedStream(ws, f.requestId!);
    }));
  });
  afterAll(() => close?.());

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

describe('what was on its way when the pause left (a raw 1.1 peer)', () => {
  // How the peer takes a pause, by the prompt: `inflight` sends 16 Mi characters more (what its buffers and the
  // two sockets held when the pause left) before it reads the ping after it, then holds the stream as it should;
  // `ignores` answers pings but goes on sending; `silent` goes on sending and answers no ping, and so do `twin1`
  // and `twin2`, two streams at once.
  type Mode = 'inflight' | 'ignores' | 'silent' | 'twin1' | 'twin2';
  const BURST = (2 * STREAM_HOLD_CHARS) / PIECE;
  let a: Gateway;
  let close: (() => Promise<void>) | undefined;
  const received: RawFrame[] = [];
  let answerPings = true;
  /** pieces each mode's stream sent in all */
  const sentOf: Partial<Record<Mode, number>> = {};

  const chunkFrame = (requestId: string) =>
    `{"type":"bridge-stream","requestId":${JSON.stringify(requestId)},"chunk":${JSON.stringify({
      id: 'c1',
      object: 'chat.completion.chunk',
      choices: [{ index: 0, delta: { content: 'q'.repeat(PIECE) }, finish_reason: null }],
    })}}`;

  /** Streams `total` pieces, taking pauses as `mode` says; stops at the gateway's bridge-cancel. */
  async function stream(ws: WebSocket, requestId: string, mode: Mode, total: number): Promise<void> {
    const frame = chunkFrame(requestId);
    let sent = 0;
    let paused = false;
    let cancelled = false;
    let wake: (() => void) | undefined;
    ws.on('message', (d) => {
      const f = JSON.parse(String(d)) as RawFrame;
      if (f.requestId !== requestId) return;
      if (f.type === 'bridge-cancel') {
        cancelled = true;
        wake?.();
      } else if (f.type === 'bridge-stream-pause' && mode === 'inflight') {
        // at the first pause, sent before this peer read it: the ping after it is read (and answered) only after
        if (sentOf.inflight === undefined) {
          for (let i = 0; i < BURST; i++) ws.send(frame);
          sent += BURST;
          sentOf.inflight = sent;
        }
        paused = true;
      } else if (f.type === 'bridge-stream-resume') {
        paused = false;
        wake?.();
      }
    });
    while (sent < total && !cancelled) {
      while (paused && !cancelled) await new Promise<void>((r) => (wake = r));
      if (cancelled) break;
      ws.send(frame);
      sent++;
      await new Promise((r) => setImmediate(r)); // let the gateway's frames in between
    }
    sentOf[mode] = sent;
    if (!cancelled) ws.send(`{"type":"bridge-stream-end","requestId":${JSON.stringify(requestId)}}`);
  }

  beforeAll(async () => {
    ({ a, close } = await gatewayOverRawPeer('inflight', 'inflight-model', (ws, f) => {
      received.push(f);
      if (f.type === 'bridge-ping' && answerPings) ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
      if (f.type !== 'bridge-forward') return;
      const mode = (f.payload as { messages: Array<{ content: Mode }> }).messages[0]!.content;
      // more than the stream may hold plus what the slow client's socket buffers take (tens of MiB on Linux)
      const total =
        {
          inflight: 3 * STREAM_HOLD_CHARS,
          ignores: 6 * STREAM_HOLD_CHARS,
          silent: LINK_UNCONFIRMED_HOLD_CHARS + 6 * STREAM_HOLD_CHARS,
          twin1: 2 * LINK_UNCONFIRMED_HOLD_CHARS,
          twin2: 2 * LINK_UNCONFIRMED_HOLD_CHARS,
        }[mode] / PIECE;
      void stream(ws, f.requestId!, mode, total);
    }));
  });
  afterAll(() => close?.());

  const framesRequestId = (mode: Mode) =>
    received.find((f) => f.type === 'bridge-forward' && (f.payload as { messages: Array<{ content: string }> }).messages[0]!.content === mode)!.requestId!;
  const framesAbout = (mode: Mode) => {
    const id = framesRequestId(mode);
    return received.filter((f) => f.requestId === id || f.type === 'bridge-ping').map((f) => f.type);
  };
  /**
   * The error that ended the client's stream: its code, what the gateway held for it when it gave up and, when
   * the link's budget for unconfirmed pauses was what ran out, what the link's paused streams had taken past their
   * pause points (Mi characters, from the message; what the client read besides is what its socket buffers had
   * taken)
   */
  const readUntilError = async (res: Awaited<ReturnType<typeof slowClient>>) => {
    const events = await readAll(res);
    expect(events).not.toContain('[DONE]');
    const { code, message } = (JSON.parse(events.at(-1)!) as { error: { code: string; message: string } }).error;
    const heldMi = Number(/\((\d+) Mi characters waiting[,)]/.exec(message)?.[1]);
    const linkMi = Number(/, (\d+) Mi characters sent past unconfirmed pauses on the link\)/.exec(message)?.[1]);
    return { code, heldMi, linkMi, delivered: contentLength(events.slice(0, -1)) };
  };

  it('chunks sent before the peer read the pause are held, past STREAM_HOLD_CHARS: the stream arrives whole', async () => {
    const res = await slowClient(a.url, 'inflight-model', 'inflight');
    await waitFor(() => sentOf.inflight !== undefined, 'the burst after the pause', 20_000);
    // the client reads nothing until the gateway has taken in every frame sent so far, the burst's included
    const frameChars = chunkFrame(framesRequestId('inflight')).length;
    await waitFor(
      async () => (await linkMetric(a.url, 'switchyard_peer_bytes_received_total', 'b')) >= sentOf.inflight! * frameChars,
      'the gateway to read the burst',
      20_000,
    );
    const events = await readAll(res);
    expect(events.some((e) => e.includes('"error"'))).toBe(false);
    expect(events.at(-1)).toBe('[DONE]');
    // everything, the 16 Mi that came after the pause included (twice STREAM_HOLD_CHARS: past it on the old rule)
    expect(contentLength(events)).toBe(sentOf.inflight! * PIECE);
    expect(sentOf.inflight).toBeGreaterThanOrEqual((3 * STREAM_HOLD_CHARS) / PIECE);
    const about = framesAbout('inflight');
    expect(about).not.toContain('bridge-cancel');
    // each pause, then at once the ping whose pong says the peer has read it
    expect(about.filter((t) => t === 'bridge-stream-pause').length).toBeGreaterThanOrEqual(1);
    about.forEach((t, i) => t === 'bridge-stream-pause' && expect(about[i + 1]).toBe('bridge-ping'));
  }, 60_000);

  it('a peer that goes on sending after it has read the pause is abandoned once the stream holds STREAM_HOLD_CHARS', async () => {
    const res = await slowClient(a.url, 'inflight-model', 'ignores');
    await waitFor(() => framesAbout('ignores').includes('bridge-cancel'), 'bridge-cancel', 30_000, 50);
    const { code, heldMi, delivered } = await readUntilError(res);
    expect(code).toBe('client_too_slow');
    // held to STREAM_HOLD_CHARS (with a pause's room), not to what an unconfirmed pause may hold
    expect(heldMi).toBeGreaterThanOrEqual(STREAM_HOLD_CHARS / MI);
    expect(heldMi).toBeLessThan((2 * STREAM_HOLD_CHARS) / MI);
    expect(delivered).toBeGreaterThanOrEqual(STREAM_HOLD_CHARS);
  }, 60_000);

  it('a peer that answers no ping is abandoned once the stream took LINK_UNCONFIRMED_HOLD_CHARS past its pause, never more', async () => {
    answerPings = false;
    const res = await slowClient(a.url, 'inflight-model', 'silent');
    await waitFor(() => framesAbout('silent').includes('bridge-cancel'), 'bridge-cancel', 60_000, 50);
    const { code, heldMi, linkMi, delivered } = await readUntilError(res);
    expect(code).toBe('client_too_slow');
    expect(linkMi).toBe(LINK_UNCONFIRMED_HOLD_CHARS / MI);
    // at most the budget plus what it held at the pause (less what the client's socket took after it)
    expect(heldMi).toBeLessThanOrEqual((LINK_UNCONFIRMED_HOLD_CHARS + STREAM_PAUSE_CHARS + PIECE) / MI + 1);
    // everything it took past the pause reaches the client before the error
    expect(delivered).toBeGreaterThanOrEqual(LINK_UNCONFIRMED_HOLD_CHARS);
  }, 90_000);

  it('two streams of a peer that answers no ping share the budget: together they hold it once, not once each', async () => {
    // answerPings is still false (the test before); its stream's share went back as its client read it down
    const [one, two] = await Promise.all([slowClient(a.url, 'inflight-model', 'twin1'), slowClient(a.url, 'inflight-model', 'twin2')]);
    await waitFor(() => framesAbout('twin1').includes('bridge-cancel') && framesAbout('twin2').includes('bridge-cancel'), 'bridge-cancel for both', 60_000, 50);
    const ends = await Promise.all([readUntilError(one), readUntilError(two)]);
    // together at most the budget, plus what each held at its pause (less what the clients' sockets took after
    // it); each alone would have held the whole budget
    const together = ends[0].heldMi + ends[1].heldMi;
    expect(together).toBeLessThanOrEqual((LINK_UNCONFIRMED_HOLD_CHARS + 2 * (STREAM_PAUSE_CHARS + PIECE)) / MI + 1);
    // what they took past their pauses, the budget less one chunk, reaches their clients before the errors
    expect(ends[0].delivered + ends[1].delivered).toBeGreaterThanOrEqual(LINK_UNCONFIRMED_HOLD_CHARS - PIECE);
    for (const e of ends) {
      expect(e.code).toBe('client_too_slow');
      // the link's budget ran out, not a stream's own
      expect(e.linkMi).toBe(LINK_UNCONFIRMED_HOLD_CHARS / MI);
    }
  }, 90_000);
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

  it('the link speaks 1.2 (pause and resume are 1.1 frames); a slow client on A holds the stream on B (and B its upstream) and reads it whole', async () => {
    expect((await bRow())?.protocol).toBe('1.2');
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
