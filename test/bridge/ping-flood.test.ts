/**
 * A peer that pings in a tight loop. Each bridge-ping was answered with its pong and then a bridge-load report
 * sent at once, past the LOAD_REPORT_MIN_INTERVAL_MS that holds every other report: a small ping bought a report
 * of every shared channel, as fast as the peer could send them. Every ping is still answered with its pong (the
 * protocol requires it), in order; the report after it is held to the usual interval (at most one per 250 ms, the
 * last one leaving at most 250 ms after the last ping, so a pong is still followed by a report).
 *
 * A raw 1.0 initiator dials an in-process gateway that shares three mock channels, and sends 500 pings at once.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { LOAD_REPORT_MIN_INTERVAL_MS } from '../../src/wire/bridge-frames.js';
import { helloFrame, type RawFrame } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startGw, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'ping-flood-token-31415';
const PINGS = 500;

let gw: (Gateway & { logs: string[] }) | undefined;
let ws: WebSocket | undefined;
/** what the gateway sent, with when it arrived */
const frames: Array<{ f: RawFrame; at: number }> = [];

beforeAll(async () => {
  gw = await startGw({
    gateway: { id: 'gw_ping_flood', bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['m1', 'm2', 'm3'] } },
    channels: ['m1', 'm2', 'm3'].map((name) => ({ name, provider: 'mock', models: [`${name}-model`] })),
  });
  ws = new WebSocket(wsUrl(gw.url));
  ws.on('message', (d) => frames.push({ f: JSON.parse(String(d)) as RawFrame, at: Date.now() }));
  await new Promise((r) => ws!.once('open', r));
  ws.send(helloFrame('gw_pinger', TOKEN));
  await waitFor(() => frames.find((x) => x.f.type === 'bridge-hello-ok'), 'the hello-ok');
});

afterAll(async () => {
  ws?.terminate();
  await gw?.close();
  cleanupDirs();
});

describe('a peer that sends pings in a tight loop', () => {
  it('gets a pong for every ping, in order, and load reports no more often than the minimum interval', async () => {
    const from = frames.length;
    const sentAt = Date.now();
    for (let i = 1; i <= PINGS; i++) ws!.send(JSON.stringify({ type: 'bridge-ping', ts: i }));
    const after = () => frames.slice(from);
    await waitFor(() => after().filter((x) => x.f.type === 'bridge-pong').length >= PINGS, 'a pong for every ping', 10_000, 10);
    const pongs = after().filter((x) => x.f.type === 'bridge-pong');
    expect(pongs.map((x) => x.f.ts)).toEqual(Array.from({ length: PINGS }, (_, i) => i + 1));
    const lastPong = pongs.at(-1)!.at;

    // the report after the last pong still comes, within the interval
    const lastPongIndex = after().indexOf(pongs.at(-1)!);
    await waitFor(
      () =>
        after()
          .slice(lastPongIndex)
          .some((x) => x.f.type === 'bridge-load'),
      'a load report after the last pong',
      5000,
      10,
    );
    const loads = after().filter((x) => x.f.type === 'bridge-load');
    // at most one report per interval while the pongs came (the first at once), and the one after them
    const window = lastPong - sentAt;
    expect(loads.length).toBeLessThanOrEqual(2 + Math.floor(window / LOAD_REPORT_MIN_INTERVAL_MS));
    expect(loads.length).toBeLessThan(PINGS / 10);
    expect(loads.at(-1)!.f).toMatchObject({ type: 'bridge-load', channels: { m1: { inflight: 0 }, m2: {}, m3: {} }, inflight: 0 });

    // the link stays up: one more ping is answered at once
    ws!.send(JSON.stringify({ type: 'bridge-ping', ts: PINGS + 1 }));
    await waitFor(() => after().some((x) => x.f.type === 'bridge-pong' && x.f.ts === PINGS + 1), 'the pong to one more ping');
  });
});
