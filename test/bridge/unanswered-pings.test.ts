/**
 * A peer that goes on sending but answers no bridge-ping. The protocol has a peer answer each ping at once and in
 * order, and the flow control counts on it (a pause is confirmed by the pong to the ping after it:
 * `afterPeerRead`). Such a peer is never silent, so the dead-peer rule (no frame for deadPeerMisses intervals)
 * never closed its link. A ping of ours left unanswered for as long now closes it too, with the heartbeat-timeout
 * close code (4001); a peer that answers its pings keeps its link.
 *
 * Two raw 1.1 peers announce a 100 ms heartbeat (the gateway's deadPeerMisses is 3: 300 ms) and each send a
 * bridge-load every 20 ms; only `live` answers the gateway's pings.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { CLOSE } from '../../src/wire/bridge-frames.js';
import { startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startGw, waitFor } from '../helpers/env.js';

const TOKEN = 'unanswered-pings-token-16180';
const INTERVAL_MS = 100;

interface Conn {
  /** frames other than pings this peer sent on the connection */
  sent: number;
  pings: number;
  pongs: number;
  close?: { code: number; reason: string };
}

let a: (Gateway & { logs: string[] }) | undefined;
const peers: RawPeer[] = [];
const conns: Record<'mute' | 'live', Conn[]> = { mute: [], live: [] };

/** A raw peer that sends a bridge-load every 20 ms, and answers the gateway's pings if `answers`. */
function rawPeer(name: 'mute' | 'live', answers: boolean): Promise<RawPeer> {
  const of = new Map<WebSocket, Conn>();
  return startRawBridgePeer({
    gatewayId: `gw_${name}`,
    gatewayName: name,
    version: '1.1',
    models: [`${name}-model`],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: INTERVAL_MS },
    onFrame: (ws, f) => {
      const c = of.get(ws);
      if (f.type !== 'bridge-ping' || !c) return;
      c.pings++;
      if (!answers) return;
      ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
      c.pongs++;
    },
    afterHello: (ws) => {
      const c: Conn = { sent: 0, pings: 0, pongs: 0 };
      of.set(ws, c);
      conns[name].push(c);
      const load = setInterval(() => {
        if (ws.readyState !== ws.OPEN) return;
        ws.send(JSON.stringify({ type: 'bridge-load', channels: {}, inflight: 0 }));
        c.sent++;
      }, 20);
      ws.on('close', (code, reason) => {
        clearInterval(load);
        c.close = { code, reason: reason.toString() };
      });
    },
  });
}

beforeAll(async () => {
  peers.push(await rawPeer('mute', false), await rawPeer('live', true));
  a = await startGw({
    gateway: {
      id: 'gw_unanswered_a',
      bridges: [
        { name: 'mute', url: peers[0]!.url, token: TOKEN, reconnectInterval: 60_000 },
        { name: 'live', url: peers[1]!.url, token: TOKEN, reconnectInterval: 60_000 },
      ],
    },
    channels: [],
  });
});

afterAll(async () => {
  await a?.close();
  for (const p of peers) await p.close();
  cleanupDirs();
});

describe('a peer that sends frames but answers no ping', () => {
  it('is closed with the heartbeat-timeout code once a ping has waited deadPeerMisses intervals; a peer that answers stays up', async () => {
    const mute = await waitFor(() => conns.mute[0]?.close && conns.mute[0], 'the link to the peer that answers no ping closed', 10_000, 10);
    expect(mute.close).toEqual({ code: CLOSE.HEARTBEAT_TIMEOUT, reason: 'heartbeat timeout: pings unanswered' });
    // it was never silent: it went on sending throughout, past several dead-peer windows' worth of frames
    expect(mute.sent).toBeGreaterThanOrEqual(10);
    expect(mute.pings).toBeGreaterThanOrEqual(3);
    expect(a!.logs.some((l) => l.includes('peer answers no ping: closing link'))).toBe(true);
    expect(a!.logs.some((l) => l.includes('peer silent'))).toBe(false);

    // the peer that answers: many dead-peer windows later, its one link is still up
    await waitFor(() => (conns.live[0]?.pongs ?? 0) >= 30, 'the live peer answering 30 pings (10 dead-peer windows)', 15_000, 10);
    expect(conns.live).toHaveLength(1);
    expect(conns.live[0]!.close).toBeUndefined();
  }, 30_000);
});
