/**
 * Pongs a peer can send without reading our pings. A pong answered the ping whose `ts` it echoed, and a ping's
 * `ts` is our clock (raised 1 ms past the previous ping's when two leave together): a peer that does not read
 * what we send could guess it (the time, give or take its clock's offset, at each heartbeat) and so keep a link
 * "alive" whose pings it never read, and confirm pauses it never read (docs/bridge-protocol.md, Pause and resume).
 * Protocol 1.2 adds a random `nonce` to each ping, echoed in its pong: on a link negotiated at 1.2 a pong that
 * does not echo its ping's nonce answers nothing. A peer before 1.2 (a link at 1.0 or 1.1) is sent no nonce and
 * is matched on the `ts` as before, so it keeps working.
 *
 * Real parts: an in-process gateway on port 0 with a 100 ms heartbeat (deadPeerMisses 3: 300 ms), raw peers over
 * real WebSockets that it dials (responders announcing that heartbeat) or that dial it, and a second gateway.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket, { type WebSocket as Ws } from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { CLOSE } from '../../src/wire/bridge-frames.js';
import { helloFrame, startRawBridgePeer, type RawFrame, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startGw, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'ping-nonce-token-16180';
const INTERVAL_MS = 100;
/** pings a link must get through: four dead-peer windows */
const PINGS = 4 * 3;
const NONCE = /^[A-Za-z0-9_-]{22}$/;

type Kind = 'guesser' | 'echoer' | 'old';
interface Seen {
  pings: RawFrame[];
  close?: { code: number; reason: string };
}
const seen: Record<Kind, Seen> = { guesser: { pings: [] }, echoer: { pings: [] }, old: { pings: [] } };
const peers: RawPeer[] = [];
let gw: (Gateway & { logs: string[] }) | undefined;
let second: (Gateway & { logs: string[] }) | undefined;
const sockets: WebSocket[] = [];

/**
 * A responder the gateway dials. `guesser` (1.2) answers each ping with its ts only, as a peer that guessed the ts
 * would; `echoer` (1.2) echoes ts and nonce; `old` (1.1) echoes the ts, as a peer built before 1.2 does.
 */
function responder(kind: Kind): Promise<RawPeer> {
  return startRawBridgePeer({
    gatewayId: `gw_${kind}`,
    gatewayName: kind,
    version: kind === 'old' ? '1.1' : '1.2',
    models: [`${kind}-model`],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: INTERVAL_MS },
    onFrame: (ws, f) => {
      if (f.type !== 'bridge-ping') return;
      seen[kind].pings.push(f);
      ws.send(JSON.stringify(kind === 'echoer' ? { type: 'bridge-pong', ts: f.ts, nonce: f.nonce } : { type: 'bridge-pong', ts: f.ts }));
    },
    afterHello: (ws: Ws) => ws.on('close', (code, reason) => (seen[kind].close = { code, reason: reason.toString() })),
  });
}

beforeAll(async () => {
  for (const kind of ['guesser', 'echoer', 'old'] as const) peers.push(await responder(kind));
  gw = await startGw({
    gateway: {
      id: 'gw_nonce_a',
      bridge: { enabled: true, allowedTokens: [TOKEN], limits: { heartbeatIntervalMs: INTERVAL_MS, deadPeerMisses: 3 } },
      bridges: (['guesser', 'echoer', 'old'] as const).map((name, i) => ({ name, url: peers[i]!.url, token: TOKEN, reconnectInterval: 60_000 })),
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
});

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await second?.close();
  await gw?.close();
  for (const p of peers) await p.close();
  cleanupDirs();
});

/** A raw initiator on `gw`, open: it answers each ping with its `ts` and its `nonce` (when it has one); its frames. */
async function echoingInitiator(): Promise<{ ws: WebSocket; frames: RawFrame[] }> {
  const ws = new WebSocket(wsUrl(gw!.url));
  sockets.push(ws);
  const frames: RawFrame[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(String(d)) as RawFrame;
    frames.push(f);
    // JSON leaves out an undefined nonce: a ping without one gets a pong without one
    if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts, nonce: f.nonce }));
  });
  await new Promise((r) => ws.once('open', r));
  return { ws, frames };
}

const linkOf = (g: Gateway, name: string) => g.mesh.peers().find((l) => l.name === name);

describe('bridge-ping nonce (protocol 1.2)', () => {
  it('a 1.2 peer whose pongs echo the ts but not the nonce answers no ping: the link is closed (4001)', async () => {
    const s = await waitFor(() => seen.guesser.close && seen.guesser, 'the link to the guesser closed', 10_000, 10);
    expect(s.close).toEqual({ code: CLOSE.HEARTBEAT_TIMEOUT, reason: 'heartbeat timeout: pings unanswered' });
    // it was pinged with nonces, and answered every ping it got with the right ts
    expect(s.pings.length).toBeGreaterThanOrEqual(3);
    for (const p of s.pings) expect(p.nonce).toMatch(NONCE);
    expect(new Set(s.pings.map((p) => p.nonce)).size).toBe(s.pings.length);
    expect(gw!.logs.some((l) => l.includes('peer sent a pong that answers no ping of ours') && l.includes('gw_guesser'))).toBe(true);
    expect(gw!.logs.some((l) => l.includes('peer answers no ping: closing link') && l.includes('gw_guesser'))).toBe(true);
  });

  it('a 1.2 peer that echoes each nonce keeps its link: every pong answers its ping', async () => {
    await waitFor(() => seen.echoer.pings.length >= PINGS, `${PINGS} pings to the echoer`, 10_000, 10);
    expect(seen.echoer.close).toBeUndefined();
    for (const p of seen.echoer.pings) expect(p.nonce).toMatch(NONCE);
    const l = linkOf(gw!, 'echoer');
    expect(l?.open).toBe(true);
    expect(l?.peer.version).toBe('1.2');
    expect(l?.traffic.unmatchedPongs).toBe(0);
  });

  it('a 1.1 peer (before the nonce) is sent none, and its pongs echoing the ts keep its link', async () => {
    await waitFor(() => seen.old.pings.length >= PINGS, `${PINGS} pings to the old peer`, 10_000, 10);
    expect(seen.old.close).toBeUndefined();
    for (const p of seen.old.pings) expect(p).not.toHaveProperty('nonce');
    const l = linkOf(gw!, 'old');
    expect(l?.open).toBe(true);
    expect(l?.peer.version).toBe('1.1');
    expect(l?.traffic.unmatchedPongs).toBe(0);
  });

  it('inbound: a 1.2 initiator gets the nonce of its ping back in the pong, and pings with nonces; a 1.1 initiator pings without', async () => {
    for (const [id, range, nonced] of [
      ['gw_in_new', { version: '1.2', minVersion: '1.0', maxVersion: '1.2' }, true],
      ['gw_in_old', { version: '1.1', minVersion: '1.0', maxVersion: '1.1' }, false],
    ] as const) {
      const { ws, frames } = await echoingInitiator();
      ws.send(helloFrame(id, TOKEN, range));
      const ok = await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), `${id}'s hello-ok`);
      expect(ok.version).toBe(range.version);
      ws.send(JSON.stringify({ type: 'bridge-ping', ts: 42, nonce: `n-${id}` }));
      const pong = await waitFor(() => frames.find((f) => f.type === 'bridge-pong'), `the pong to ${id}'s ping`);
      // a nonce sent is echoed whatever the link's version: a pong answers the ping it names
      expect(pong).toEqual({ type: 'bridge-pong', ts: 42, nonce: `n-${id}` });
      const pings = await waitFor(() => {
        const p = frames.filter((f) => f.type === 'bridge-ping');
        return p.length >= 3 ? p : undefined;
      }, `the gateway's pings to ${id}`);
      for (const p of pings) {
        if (nonced) expect(p.nonce).toMatch(NONCE);
        else expect(p).not.toHaveProperty('nonce');
      }
      const l = gw!.mesh.peers().find((x) => x.peer.id === id);
      expect(l?.open).toBe(true);
      expect(l?.traffic.unmatchedPongs).toBe(0);
      ws.terminate();
    }
  });

  it('a 1.2 ping with a nonce that is not a string of 1 to 64 characters is a bad frame (BAD_FRAME naming the field), the link stays', async () => {
    const { ws, frames } = await echoingInitiator();
    ws.send(helloFrame('gw_in_bad', TOKEN, { version: '1.2', maxVersion: '1.2' }));
    await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'the hello-ok');
    ws.send(JSON.stringify({ type: 'bridge-ping', ts: 1, nonce: 7 }));
    ws.send(JSON.stringify({ type: 'bridge-ping', ts: 2, nonce: 'x'.repeat(65) }));
    const errors = await waitFor(() => {
      const e = frames.filter((f) => f.type === 'bridge-error');
      return e.length >= 2 ? e : undefined;
    }, 'the two errors');
    expect(errors.map((e) => [e.code, e.message])).toEqual([
      ['BAD_FRAME', 'bridge-ping.nonce: must be a string'],
      ['BAD_FRAME', 'bridge-ping.nonce: must be 1..64 characters'],
    ]);
    expect(frames.some((f) => f.type === 'bridge-pong' && (f.ts === 1 || f.ts === 2))).toBe(false);
    expect(gw!.mesh.peers().find((x) => x.peer.id === 'gw_in_bad')?.open).toBe(true);
    ws.terminate();
  });

  it('two gateways of this build negotiate 1.2 and keep their link: each pong echoes its nonce', async () => {
    second = await startGw({
      gateway: { id: 'gw_nonce_b', bridges: [{ name: 'to-a', url: wsUrl(gw!.url), token: TOKEN, reconnectInterval: 60_000 }] },
      channels: [],
    });
    const row = await waitFor(
      async () =>
        (await adminGet<{ peers: Array<{ name: string; state: string; protocol: string | null }> }>(second!.url, '/admin/bridges')).peers.find(
          (p) => p.state === 'open',
        ),
      'the link from B to A open',
    );
    expect(row.protocol).toBe('1.2');
    // both ends ping every 100 ms (B takes A's announced interval): past four dead-peer windows' worth of frames
    const l = await waitFor(() => {
      const x = linkOf(second!, 'to-a');
      return x && x.traffic.framesIn >= 2 * PINGS ? x : undefined;
    }, 'frames from A over four windows');
    expect(l.open).toBe(true);
    expect(l.traffic.unmatchedPongs).toBe(0);
    const back = gw!.mesh.peers().find((x) => x.peer.id === 'gw_nonce_b');
    expect(back?.open).toBe(true);
    expect(back?.traffic.unmatchedPongs).toBe(0);
    expect(second.logs.some((x) => x.includes('heartbeat timeout'))).toBe(false);
  });
});
