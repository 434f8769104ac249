/**
 * A reload that changes an outbound bridge (its URL here) re-dials it, and what runs on its old link finishes.
 * Before, the old link was closed at once: a stream relaying the peer's chunks ended with peer_unavailable. Now the
 * old link takes no new request and closes once what is in flight on it ended (bounded by gateway.shutdownGraceMs,
 * the grace a graceful stop gives); the peer, which holds one link per gateway id, lets the link it replaces finish
 * the same way. The next request goes over the new link. A bridge the file does not change keeps its link.
 * Real processes: B and C share a slow channel each with A, which dials both.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import type { BridgeRow } from '../helpers/bridge-rows.js';

const BRIDGE_TOKEN = 'reload-drain-bridge-token-51c7';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess;
let c: GatewayProcess;

const aConfig = (bUrl: string, shutdownGraceMs = 10_000) => ({
  gateway: {
    id: 'gw_rda',
    name: 'office',
    port: 0,
    shutdownGraceMs,
    bridges: [
      { name: 'dc', url: bUrl, token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 },
      { name: 'edge', url: wsUrl(c.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 },
    ],
  },
  channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  store: { kind: 'sqlite', path: './data/a.db' },
});

const peerOf = (id: string, name: string, channel: string, model: string) =>
  startProcess({
    // the link A's new one replaces drains here too, up to this grace: far past the stream, as A's (below)
    gateway: { id, name, shutdownGraceMs: 60_000, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: [channel] } },
    // 40 chunks 50 ms apart: a stream of about 2 s
    channels: [{ name: channel, provider: 'mock', models: [model], options: { chunkDelayMs: 50, chunks: 40 } }],
  });

/** the peer's row of A's link (inbound there) */
const linkFromA = async (peer: GatewayProcess) => (await adminGet<{ peers: BridgeRow[] }>(peer.url, '/admin/bridges')).peers.find((p) => p.id === 'gw_rda');

beforeAll(async () => {
  [b, c] = await Promise.all([peerOf('gw_rdb', 'datacenter', 'gpu', 'llama-gpu'), peerOf('gw_rdc', 'edge', 'cpu', 'llama-cpu')]);
  a = await startProcess(aConfig(wsUrl(b.url)));
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  cleanupDirs();
});

describe('a reload that changes an outbound bridge', () => {
  it('lets a stream in flight on the old link finish, sends the next request over the new link, and leaves the other bridge alone', async () => {
    await waitFor(async () => {
      const models = (await adminGet<{ models: string[] }>(a.url, '/admin/status')).models;
      return models.includes('llama-gpu') && models.includes('llama-cpu');
    }, "A sees B's and C's models");
    const oldB = (await linkFromA(b))!;
    const oldC = (await linkFromA(c))!;
    const edgeBefore = (await adminGet<{ peers: BridgeRow[] }>(a.url, '/admin/bridges')).peers.find((p) => p.name === 'edge')!;

    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const stream = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'a long answer' }], stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    expect((await chunks.next()).done).toBe(false);
    // the stream runs on the link B holds from A
    expect((await linkFromA(b))!.inflight.in).toBe(1);

    // the same peer under another URL (B reads no query on /bridge): the bridge's settings changed
    // a grace far past the stream's end, so that the old link closing by itself below is its stream having ended
    writeFileSync(a.configPath, JSON.stringify(aConfig(`${wsUrl(b.url)}?via=reload`, 60_000)));
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST' });
    expect(res.status).toBe(200);
    const applied = ((await res.json()) as { applied: string[] }).applied;
    expect(applied).toContain('bridge dc re-dialled (changed)');
    expect(applied.filter((x) => x.startsWith('bridge edge'))).toEqual([]);

    // the new link opens beside the old one, which B no longer lists (it is not B's link to A any more)
    const newB = await waitFor(async () => {
      const row = await linkFromA(b);
      return row && row.since !== oldB.since && row.state === 'open' ? row : undefined;
    }, 'B holds the new link from A');
    await waitFor(async () => (await adminGet<{ models: string[] }>(a.url, '/admin/status')).models.includes('llama-gpu'), "A sees B's model again");

    // the next request goes over the new link, while the first stream still runs on the old one
    const second = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'another' }], stream: true });
    const secondChunks = second[Symbol.asyncIterator]();
    expect((await secondChunks.next()).done).toBe(false);
    const during = (await linkFromA(b))!;
    expect(during.since).toBe(newB.since);
    expect(during.inflight.in).toBe(1);

    // cut, the first stream would end with peer_unavailable (an error thrown here) instead
    let finish: string | null = null;
    for (let r = await chunks.next(); !r.done; r = await chunks.next()) finish = r.value.choices[0]?.finish_reason ?? finish;
    expect(finish).toBe('stop');
    // with nothing left in flight on it, the old link closes (each side's retirement checks every 25 ms, and the
    // close handshake takes a round trip, so this lags the stream's end a little), long before either side's grace:
    // neither lists it any more (A's retiring rows, B's rows of links from A)
    await waitFor(
      async () =>
        (await adminGet<{ peers: BridgeRow[] }>(a.url, '/admin/bridges')).peers.every((r) => r.retiring === undefined) &&
        (await adminGet<{ peers: BridgeRow[] }>(b.url, '/admin/bridges')).peers.filter((p) => p.id === 'gw_rda').length === 1,
      'the old link between A and B closed once its stream ended',
      15_000,
    );
    let secondFinish: string | null = null;
    for (let r = await secondChunks.next(); !r.done; r = await secondChunks.next()) secondFinish = r.value.choices[0]?.finish_reason ?? secondFinish;
    expect(secondFinish).toBe('stop');

    // the bridge the file did not change kept its link, on both sides
    expect((await linkFromA(c))!.since).toBe(oldC.since);
    const edgeAfter = (await adminGet<{ peers: BridgeRow[] }>(a.url, '/admin/bridges')).peers.find((p) => p.name === 'edge')!;
    expect(edgeAfter).toMatchObject({ state: 'open', since: edgeBefore.since });
    // one outbound bridge of each name, and B holds one link from A
    const rows = (await adminGet<{ peers: BridgeRow[] }>(a.url, '/admin/bridges')).peers;
    expect(
      rows
        .filter((r) => r.direction === 'outbound')
        .map((r) => r.name)
        .sort(),
    ).toEqual(['dc', 'edge']);
    expect((await adminGet<{ peers: BridgeRow[] }>(b.url, '/admin/bridges')).peers.filter((p) => p.id === 'gw_rda')).toHaveLength(1);
  });

  it('waits for what runs on the old link no longer than gateway.shutdownGraceMs, then cuts it', async () => {
    const onA = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const stream = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'a long answer' }], stream: true });
    const chunks = stream[Symbol.asyncIterator]();
    expect((await chunks.next()).done).toBe(false);
    const before = (await linkFromA(b))!;

    // the same reload sets a grace of 300 ms, far shorter than the stream (about 2 s)
    writeFileSync(a.configPath, JSON.stringify(aConfig(`${wsUrl(b.url)}?via=second-reload`, 300)));
    const started = Date.now();
    const res = await fetch(`${a.url}/admin/config/reload`, { method: 'POST' });
    expect(((await res.json()) as { applied: string[] }).applied).toContain('bridge dc re-dialled (changed)');

    let failure: unknown;
    try {
      for (let r = await chunks.next(); !r.done; r = await chunks.next());
    } catch (err) {
      failure = err;
    }
    const cutAfter = Date.now() - started;
    expect(String(failure)).toMatch(/bridge peer dc went away/);
    expect(cutAfter).toBeGreaterThanOrEqual(300);
    expect(cutAfter).toBeLessThan(1800);
    // the new link serves the next request
    await waitFor(async () => {
      const row = await linkFromA(b);
      return row && row.since !== before.since && row.state === 'open';
    }, 'B holds the new link from A');
    await waitFor(async () => (await adminGet<{ models: string[] }>(a.url, '/admin/status')).models.includes('llama-gpu'), "A sees B's model again");
    const next = await onA.chat.completions.create({ model: 'llama-gpu', messages: [{ role: 'user', content: 'hi' }] });
    expect(next.choices[0]?.finish_reason).toBe('stop');
  });
});
