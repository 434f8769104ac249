/**
 * Regression: the metric labels taken from what a bridge peer announces were bounded (PEER_NAME_LABELS names,
 * PEER_CHANNEL_LABELS channels, then `(other)`) only in the per-request series' `channel` and `peer`. Two paths
 * took a peer's names raw, so a peer could grow /metrics without end:
 * - the `model` label of a request served through a peer: any of the model names the peer announced;
 * - the gauges read at scrape time (switchyard_candidate_*, switchyard_peer_* link series, switchyard_peer_up):
 *   the candidates' raw channel and peer names, the links' raw names.
 * Now both go through the same budgets: past PEER_MODEL_LABELS peer-served model names, and past the inbound
 * names and channels the candidates' labels already bound, the series are `(other)`.
 * Real parts: an in-process gateway on port 0, raw inbound peers over a real WebSocket, the openai SDK as client.
 */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import OpenAI from 'openai';
import type { Gateway } from '../../src/gateway.js';
import { PEER_CHANNEL_LABELS, PEER_NAME_LABELS } from '../../src/bridge/mesh.js';
import { PEER_MODEL_LABELS } from '../../src/obs/metrics.js';
import { peerCompletion } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startInProcess, wsUrl } from '../helpers/env.js';

const TOKEN = 'peer-labels-scrape-token-5521';
let gw: Gateway | undefined;
const sockets: WebSocket[] = [];

afterEach(async () => {
  for (const ws of sockets.splice(0)) ws.terminate();
  await gw?.close();
  gw = undefined;
  cleanupDirs();
});

async function start(): Promise<Gateway> {
  gw = await startInProcess({
    gateway: { id: 'gw_scraped', name: 'scraped', bridge: { enabled: true, allowedTokens: [TOKEN] } },
    channels: [{ name: 'local', provider: 'mock', models: ['local-model'] }],
  });
  return gw;
}

/** A raw inbound peer (gateway id `id`, name `name`) sharing `channels`; it answers every forward with "hi". */
async function peer(g: Gateway, id: string, name: string, channels: Array<{ name: string; models: string[] }>): Promise<WebSocket> {
  const ws = new WebSocket(wsUrl(g.url));
  sockets.push(ws);
  const ok = new Promise<any>((resolve, reject) => {
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'bridge-hello-ok' || (f.type === 'bridge-error' && f.requestId === undefined)) resolve(f);
      if (f.type !== 'bridge-forward') return;
      ws.send(JSON.stringify({ type: 'bridge-response', requestId: f.requestId, payload: peerCompletion(f.payload.model) }));
    });
    ws.once('error', reject);
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId: id,
      gatewayName: name,
      version: '1.0',
      token: TOKEN,
      capabilities: { shareChannels: true, acceptSessions: false, loadBalance: false },
      sharedChannels: channels.map((c) => ({ ...c, provider: 'openai' })),
    }),
  );
  expect(await ok).toMatchObject({ type: 'bridge-hello-ok' });
  return ws;
}

/** The distinct values of `label` in the samples of `series`. */
function labelValues(text: string, series: string, label: string): Set<string> {
  const out = new Set<string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${series}{`)) continue;
    const m = new RegExp(`[{,]${label}="([^"]*)"`).exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

const scrape = async (g: Gateway) => (await fetch(`${g.url}/metrics`)).text();

describe('a peer that announces more channels and models than the labels hold', () => {
  it('adds at most the bound of model and channel labels, the rest under (other)', async () => {
    const g = await start();
    const n = Math.max(PEER_CHANNEL_LABELS, PEER_MODEL_LABELS) + 40;
    const channels = Array.from({ length: n }, (_, i) => ({ name: `wide-${i}`, models: [`wide-model-${i}`] }));
    await peer(g, 'gw_wide', 'wide', channels);
    const client = new OpenAI({ baseURL: `${g.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    for (let i = 0; i < n; i++) {
      const r = await client.chat.completions.create({ model: `wide-model-${i}`, messages: [{ role: 'user', content: 'hi' }] });
      expect(r.choices[0]!.message.content).toBe('hi');
    }
    const text = await scrape(g);

    for (const series of ['switchyard_requests_total', 'switchyard_time_to_first_token_seconds_count', 'switchyard_tokens_total']) {
      const models = labelValues(text, series, 'model');
      expect(models.size, `${series} models`).toBeLessThanOrEqual(PEER_MODEL_LABELS + 2); // and (other), "" (the scrape)
      expect(models.has('wide-model-0'), series).toBe(true);
      expect(models.has('(other)'), series).toBe(true);
      expect(models.has(`wide-model-${n - 1}`), series).toBe(false);
    }
    // every request is counted: none lost by the folding
    const answered = text
      .split('\n')
      .filter((l) => l.startsWith('switchyard_requests_total{') && l.includes('route="/v1/chat/completions"') && l.includes('status="200"'))
      .reduce((s, l) => s + Number(l.split(' ').pop()), 0);
    expect(answered).toBe(n);

    for (const series of ['switchyard_candidate_inflight', 'switchyard_candidate_ejected', 'switchyard_candidate_latency_ewma_seconds']) {
      const ch = labelValues(text, series, 'channel');
      const cand = labelValues(text, series, 'candidate');
      // the peer's channels within the bound, (other), and the local channel
      expect(ch.size, `${series} channels`).toBeLessThanOrEqual(PEER_CHANNEL_LABELS + 2);
      expect(cand.size, `${series} candidates`).toBeLessThanOrEqual(PEER_CHANNEL_LABELS + 2);
      expect(ch.has('wide-0'), series).toBe(true);
      expect(ch.has('(other)'), series).toBe(true);
      expect(ch.has(`wide-${n - 1}`), series).toBe(false);
      expect(cand.has(`peer/gw_wide/wide-${n - 1}`), series).toBe(false);
    }
  }, 120_000);
});

describe('an inbound peer whose name is past the bound', () => {
  it('is (other) in the scrape-time link and candidate series, not its own name', async () => {
    const g = await start();
    // the same gateway id under a new name each time: each link replaces the one before
    let prev: WebSocket | undefined;
    for (let i = 0; i <= PEER_NAME_LABELS; i++) {
      const ws = await peer(g, 'gw_rot', `rot-${i}`, [{ name: `rot-ch-${i}`, models: ['rot-model'] }]);
      prev?.terminate();
      prev = ws;
    }
    const last = `rot-${PEER_NAME_LABELS}`;
    const text = await scrape(g);
    for (const series of [
      'switchyard_peer_rtt_seconds',
      'switchyard_peer_inflight_out',
      'switchyard_peer_shared_channels',
      'switchyard_peer_up',
      'switchyard_candidate_inflight',
    ]) {
      const peers = labelValues(text, series, 'peer');
      expect(peers.has(last), `${series}: ${[...peers].join(' ')}`).toBe(false);
      expect(peers.has('(other)'), `${series}: ${[...peers].join(' ')}`).toBe(true);
    }
    expect(labelValues(text, 'switchyard_candidate_inflight', 'channel').has(`rot-ch-${PEER_NAME_LABELS}`)).toBe(false);
  }, 60_000);
});
