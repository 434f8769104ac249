/**
 * The count of pongs that answered no ping of ours (`LinkTraffic.unmatchedPongs`, test/bridge/unmatched-pongs.test.ts)
 * was kept per link but shown nowhere: the first such pong is logged, and an operator had no way to see a peer go on
 * sending them. It is now exported like the link's other counters: `switchyard_peer_unmatched_pongs_total` per
 * `peer` and `direction` on /metrics, and `unmatchedPongs` in each row of GET /admin/bridges.
 *
 * Real parts: an in-process gateway on port 0 that dials a raw responder (outbound link) and takes a raw initiator
 * (inbound link), both over real WebSockets; each peer sends pongs that echo no ping of the gateway's; /metrics and
 * /admin/bridges are read over HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { helloFrame, startRawBridgePeer, type RawPeer } from '../fakes/raw-bridge-peer.js';
import { adminGet, cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'unmatched-pongs-exported-token-7071';
/** pongs with a `ts` no ping of the gateway's carries (its pings' ts are whole milliseconds) */
const bogusPong = (i: number) => JSON.stringify({ type: 'bridge-pong', ts: 1000.5 + i });

let gw: Gateway | undefined;
let responder: RawPeer | undefined;
let inbound: WebSocket | undefined;

beforeAll(async () => {
  responder = await startRawBridgePeer({
    gatewayId: 'gw_pong_responder',
    gatewayName: 'pong-responder',
    models: ['responder-model'],
    policy: { maxFrameBytes: 1 << 20, heartbeatIntervalMs: 60_000 },
    onFrame: () => undefined,
    // two pongs unasked, right after the hello-ok
    afterHello: (ws) => {
      for (let i = 0; i < 2; i++) ws.send(bogusPong(i));
    },
  });
  gw = await startInProcess({
    gateway: {
      id: 'gw_pong_counter',
      bridge: { enabled: true, allowedTokens: [TOKEN] },
      bridges: [{ name: 'dialled', url: responder.url, token: TOKEN, reconnectInterval: 60_000 }],
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  inbound = new WebSocket(wsUrl(gw.url));
  const helloOk = new Promise((resolve) =>
    inbound!.on('message', (d) => {
      if ((JSON.parse(String(d)) as { type: string }).type === 'bridge-hello-ok') resolve(undefined);
    }),
  );
  await new Promise((r) => inbound!.once('open', r));
  inbound.send(helloFrame('gw_pong_initiator', TOKEN, { gatewayName: 'pong-initiator' }));
  await helloOk;
  for (let i = 0; i < 3; i++) inbound.send(bogusPong(i));
});

afterAll(async () => {
  inbound?.terminate();
  await gw?.close();
  await responder?.close();
  cleanupDirs();
});

interface Row {
  name: string;
  direction: string;
  state: string;
  unmatchedPongs: number;
}

describe('pongs that answer no ping are exported per link', () => {
  it('in GET /admin/bridges: unmatchedPongs in each row', async () => {
    const rows = await waitFor(async () => {
      const { peers } = await adminGet<{ peers: Row[] }>(gw!.url, '/admin/bridges');
      const out = peers.find((p) => p.name === 'dialled');
      const inn = peers.find((p) => p.name === 'pong-initiator');
      return out?.unmatchedPongs === 2 && inn?.unmatchedPongs === 3 ? { out, inn } : undefined;
    }, 'both links counted in /admin/bridges');
    expect(rows.out).toMatchObject({ direction: 'outbound', state: 'open', unmatchedPongs: 2 });
    expect(rows.inn).toMatchObject({ direction: 'inbound', state: 'open', unmatchedPongs: 3 });
  });

  it('on /metrics: switchyard_peer_unmatched_pongs_total per peer and direction', async () => {
    const text = await (await fetch(`${gw!.url}/metrics`)).text();
    expect(text).toContain('# TYPE switchyard_peer_unmatched_pongs_total counter');
    expect(text).toMatch(/^switchyard_peer_unmatched_pongs_total\{peer="dialled",direction="outbound"\} 2$/m);
    expect(text).toMatch(/^switchyard_peer_unmatched_pongs_total\{peer="pong-initiator",direction="inbound"\} 3$/m);
  });
});
