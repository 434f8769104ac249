/**
 * Pongs that answer no ping of ours. The heartbeat counted pongs, not matched them: the n-th pong, whatever its
 * `ts`, was taken for the answer to our n-th ping. A peer that sent pongs unasked (or repeated one) so had its
 * later pings counted as answered before it had read them: a pause's confirmation (`afterPeerRead`) ran before the
 * peer had read the pause, and a peer that answers no ping dodged the "pings unanswered" rule as long as it sent
 * pongs of its own. A pong now answers the ping whose `ts` it echoes (each ping of a link carries its own), and
 * every ping before it; any other pong is ignored, counted, and logged once per link.
 *
 * First the heartbeat alone, driven by hand; then a gateway that dials two raw 1.1 peers announcing a 100 ms
 * heartbeat (deadPeerMisses 3: 300 ms), both answering none of its pings: `unasked` sends a pong of its own
 * (`ts` its clock) every 20 ms, `replay` answers the first ping and then repeats that pong every 20 ms.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { Heartbeat } from '../../src/bridge/heartbeat.js';
import type { LinkContext } from '../../src/bridge/link-types.js';
import { LinkTraffic } from '../../src/bridge/link-traffic.js';
import { CLOSE } from '../../src/wire/bridge-frames.js';
import { startRawBridgePeer, type RawFrame, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, memoryLogger, startGw, waitFor } from '../helpers/env.js';

const TOKEN = 'unmatched-pongs-token-27182';
const INTERVAL_MS = 100;

describe('the heartbeat matches each pong to the ping it echoes', () => {
  /** a heartbeat on a link negotiated at `version` (1.1: a peer that echoes the ts only) */
  function heartbeat(version = '1.1') {
    const sent: RawFrame[] = [];
    const log = memoryLogger();
    const l = {
      open: true,
      limits: { heartbeatIntervalMs: 3_600_000, deadPeerMisses: 3 },
      logger: log.logger,
      peer: { id: 'gw_fake', version },
      traffic: new LinkTraffic(),
      send: (f: RawFrame) => (sent.push(f), true),
    } as unknown as LinkContext;
    const hb = new Heartbeat(l, () => undefined);
    const pings = () => sent.filter((f) => f.type === 'bridge-ping').map((f) => f.ts as number);
    const nonces = () => sent.filter((f) => f.type === 'bridge-ping').map((f) => f.nonce);
    return { hb, l, pings, nonces, lines: log.lines };
  }

  it('on a 1.2 link each ping carries its own random nonce, and a pong with the right ts but not that nonce answers nothing', () => {
    const { hb, l, pings, nonces } = heartbeat('1.2');
    try {
      let confirmed = 0;
      hb.afterPeerRead(() => confirmed++);
      hb.afterPeerRead(() => confirmed++);
      const [ts0, ts1] = pings();
      const [n0, n1] = nonces() as string[];
      expect(n0).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(n1).toMatch(/^[A-Za-z0-9_-]{22}$/);
      expect(n0).not.toBe(n1);
      // the ts guessed right, the nonce missing, another ping's, or made up: no answer
      expect(hb.pong(ts1!)).toBeUndefined();
      expect(hb.pong(ts1!, n0)).toBeUndefined();
      expect(hb.pong(ts1!, 'guessed')).toBeUndefined();
      expect(confirmed).toBe(0);
      expect(l.traffic.unmatchedPongs).toBe(3);
      // the pong that echoes both answers its ping and the one before it
      expect(hb.pong(ts1!, n1)).toBeGreaterThanOrEqual(0);
      expect(confirmed).toBe(2);
      expect(hb.pong(ts0!, n0)).toBeUndefined();
    } finally {
      hb.stop();
    }
  });

  it('on a link before 1.2 pings carry no nonce and a pong is matched on its ts (a nonce it carries anyway is not looked at)', () => {
    for (const version of ['1.0', '1.1']) {
      const { hb, l, pings, nonces } = heartbeat(version);
      try {
        let confirmed = 0;
        hb.afterPeerRead(() => confirmed++);
        hb.afterPeerRead(() => confirmed++);
        expect(nonces()).toEqual([undefined, undefined]);
        const [ts0, ts1] = pings();
        expect(hb.pong(ts0!)).toBeGreaterThanOrEqual(0);
        expect(hb.pong(ts1!, 'whatever')).toBeGreaterThanOrEqual(0);
        expect(confirmed).toBe(2);
        expect(l.traffic.unmatchedPongs).toBe(0);
      } finally {
        hb.stop();
      }
    }
  });

  it('a pong sent unasked, or echoing another ts, confirms no later pause; the pong to its ping does, once', () => {
    const { hb, l, pings, lines } = heartbeat();
    try {
      // unasked, before any ping: answers nothing
      expect(hb.pong(Date.now())).toBeUndefined();
      let confirmed = 0;
      hb.afterPeerRead(() => confirmed++);
      const [ts] = pings();
      expect(ts).toBeTypeOf('number');
      hb.pong(ts! - 1);
      hb.pong(ts! + 1);
      expect(confirmed).toBe(0);
      expect(hb.pong(ts!)).toBeGreaterThanOrEqual(0);
      expect(confirmed).toBe(1);
      // the same pong again answers nothing, and runs nothing twice
      expect(hb.pong(ts!)).toBeUndefined();
      expect(confirmed).toBe(1);
      expect(l.traffic.unmatchedPongs).toBe(4);
      expect(lines.filter((x) => x.includes('peer sent a pong that answers no ping of ours')).length).toBe(1);
    } finally {
      hb.stop();
    }
  });

  it('pings sent in one millisecond carry distinct ts; the pong to a later one answers the ones before it too', () => {
    const { hb, pings } = heartbeat();
    try {
      const order: number[] = [];
      for (let i = 0; i < 5; i++) hb.afterPeerRead(() => order.push(i));
      const ts = pings();
      expect(new Set(ts).size).toBe(5);
      hb.pong(ts[2]!);
      expect(order).toEqual([0, 1, 2]);
      // the pongs to the pings already answered (late, in order) answer nothing more
      hb.pong(ts[0]!);
      hb.pong(ts[1]!);
      expect(order).toEqual([0, 1, 2]);
      hb.pong(ts[4]!);
      expect(order).toEqual([0, 1, 2, 3, 4]);
    } finally {
      hb.stop();
    }
  });
});

interface Conn {
  /** pongs the peer sent of its own */
  pongs: number;
  pings: number;
  close?: { code: number; reason: string };
}

let a: (Gateway & { logs: string[] }) | undefined;
const peers: RawPeer[] = [];
const conns: Record<'unasked' | 'replay', Conn[]> = { unasked: [], replay: [] };

function rawPeer(name: 'unasked' | 'replay'): Promise<RawPeer> {
  const of = new Map<WebSocket, { c: Conn; firstTs?: number }>();
  return startRawBridgePeer({
    gatewayId: `gw_${name}`,
    gatewayName: name,
    version: '1.1',
    models: [`${name}-model`],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: INTERVAL_MS },
    onFrame: (ws, f) => {
      const s = of.get(ws);
      if (f.type !== 'bridge-ping' || !s) return;
      s.c.pings++;
      // `replay` answers the first ping only (once, properly)
      if (name === 'replay' && s.firstTs === undefined) {
        s.firstTs = f.ts as number;
        ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
      }
    },
    afterHello: (ws) => {
      const s: { c: Conn; firstTs?: number } = { c: { pongs: 0, pings: 0 } };
      of.set(ws, s);
      conns[name].push(s.c);
      const t = setInterval(() => {
        if (ws.readyState !== ws.OPEN) return;
        // `unasked`: its own clock, to the half millisecond, so never the ts of a ping of ours
        const ts = name === 'unasked' ? Date.now() + 0.5 : s.firstTs;
        if (ts === undefined) return;
        ws.send(JSON.stringify({ type: 'bridge-pong', ts }));
        s.c.pongs++;
      }, 20);
      ws.on('close', (code, reason) => {
        clearInterval(t);
        s.c.close = { code, reason: reason.toString() };
      });
    },
  });
}

beforeAll(async () => {
  peers.push(await rawPeer('unasked'), await rawPeer('replay'));
  a = await startGw({
    gateway: {
      id: 'gw_unmatched_a',
      bridges: [
        { name: 'unasked', url: peers[0]!.url, token: TOKEN, reconnectInterval: 60_000 },
        { name: 'replay', url: peers[1]!.url, token: TOKEN, reconnectInterval: 60_000 },
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

describe('a peer that answers no ping but sends pongs', () => {
  it('is closed for its unanswered pings, whether its pongs are unasked or repeat an old one; each link logs one of them', async () => {
    for (const name of ['unasked', 'replay'] as const) {
      const c = await waitFor(() => conns[name][0]?.close && conns[name][0], `the link to ${name} closed`, 10_000, 10);
      expect(c.close).toEqual({ code: CLOSE.HEARTBEAT_TIMEOUT, reason: 'heartbeat timeout: pings unanswered' });
      // it sent more pongs than it was sent pings: counted, they would all have been answers
      expect(c.pongs).toBeGreaterThan(c.pings);
      expect(c.pings).toBeGreaterThanOrEqual(3);
    }
    const logged = a!.logs.filter((l) => l.includes('peer sent a pong that answers no ping of ours'));
    expect(logged.length).toBe(2);
    expect(a!.logs.some((l) => l.includes('peer silent'))).toBe(false);
  }, 30_000);
});
