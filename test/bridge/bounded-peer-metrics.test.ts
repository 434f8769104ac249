/**
 * An inbound peer chooses its name (the hello's gatewayName). A peer that reconnects under a new name each time
 * must not add label values to the metrics without end: past the documented number of inbound peer names
 * (docs/operations.md, Metrics) its requests, failures and link opens are counted under `peer="(other)"`, and the
 * channel of such a peer under `channel="(other)"`. The names seen first, and a configured bridge's name, keep
 * their own label.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import OpenAI from 'openai';
import type { Gateway } from '../../src/gateway.js';
import { peerCompletion } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startInProcess, wsUrl } from '../helpers/env.js';

const TOKEN = 'bounded-metrics-bridge-token-4711';
/** more names than the gateway labels apart (64, docs/operations.md) */
const NAMES = 80;
let gw: Gateway;

beforeAll(async () => {
  gw = await startInProcess({
    gateway: {
      id: 'gw_victim',
      name: 'victim',
      bridge: { enabled: true, allowedTokens: [TOKEN] },
      // one failure ejects a candidate: every peer channel is ejected once (switchyard_health_ejections_total)
      routing: { health: { consecutiveFailures: 1 } },
    },
    channels: [{ name: 'local', provider: 'mock', models: ['local-model'] }],
  });
});

afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

/** A raw inbound peer named `name` sharing channel `ch` (model rot-model): it answers, or fails a forward of "fail". */
async function rotatingPeer(name: string, ch: string): Promise<{ ws: WebSocket; forwarded: Promise<void> }> {
  const ws = new WebSocket(wsUrl(gw.url));
  let forwarded!: () => void;
  const fwd = new Promise<void>((r) => (forwarded = r));
  const ok = new Promise<any>((resolve, reject) => {
    ws.on('message', (d) => {
      const f = JSON.parse(d.toString());
      if (f.type === 'bridge-hello-ok' || (f.type === 'bridge-error' && f.requestId === undefined)) resolve(f);
      if (f.type !== 'bridge-forward') return;
      if (f.payload.messages[0].content === 'fail') {
        ws.send(JSON.stringify({ type: 'bridge-error', requestId: f.requestId, code: 'UPSTREAM_ERROR', message: 'no', retryable: false }));
        forwarded();
        return;
      }
      ws.send(JSON.stringify({ type: 'bridge-response', requestId: f.requestId, payload: peerCompletion('rot-model', `chatcmpl-${name}`) }));
    });
    ws.once('error', reject);
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId: 'gw_rotating',
      gatewayName: name,
      version: '1.0',
      token: TOKEN,
      capabilities: { shareChannels: true, acceptSessions: false, loadBalance: false },
      sharedChannels: [{ name: ch, provider: 'openai', models: ['rot-model'] }],
    }),
  );
  expect(await ok).toMatchObject({ type: 'bridge-hello-ok' });
  return { ws, forwarded: fwd };
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

describe('metric labels of a peer that reconnects under new names', () => {
  it('stay bounded: names past the limit are counted as (other)', async () => {
    const client = new OpenAI({ baseURL: `${gw.url}/v1`, apiKey: 'unused', maxRetries: 0 });
    let prev: WebSocket | undefined;
    for (let i = 0; i < NAMES; i++) {
      // the same gateway id under a new name and a new channel name: the new link replaces the old one
      const peer = await rotatingPeer(`rot-${i}`, `ch-${i}`);
      prev?.terminate();
      prev = peer.ws;
      const ok = await client.chat.completions.create({ model: 'rot-model', messages: [{ role: 'user', content: 'hi' }] });
      expect(ok.choices[0]!.message.content).toBe('hi');
      await expect(client.chat.completions.create({ model: 'rot-model', messages: [{ role: 'user', content: 'fail' }] })).rejects.toMatchObject({
        status: 502,
      });
      await peer.forwarded;
    }
    prev?.terminate();
    const text = await (await fetch(`${gw.url}/metrics`)).text();
    for (const series of [
      'switchyard_attempt_failures_total',
      'switchyard_requests_total',
      'switchyard_request_duration_seconds_count',
      'switchyard_time_to_first_token_seconds_count',
      'switchyard_tokens_total',
    ]) {
      const peers = labelValues(text, series, 'peer');
      const channels = labelValues(text, series, 'channel');
      // 64 names apart and (other); "" for local requests
      expect(peers.size, `${series} peers: ${[...peers].join(' ')}`).toBeLessThanOrEqual(64 + 2);
      expect(channels.size, `${series} channels`).toBeLessThanOrEqual(64 + 2);
      expect(peers.has('rot-0'), series).toBe(true);
      expect(peers.has('(other)'), series).toBe(true);
      expect(peers.has(`rot-${NAMES - 1}`), series).toBe(false);
    }
    const ejected = labelValues(text, 'switchyard_health_ejections_total', 'candidate');
    expect(ejected.has(`peer/gw_rotating/ch-0`), [...ejected].join(' ')).toBe(true);
    expect(ejected.has('peer/(other)')).toBe(true);
    expect(ejected.size).toBeLessThanOrEqual(64 + 1);
    const connects = labelValues(text, 'switchyard_peer_connects_total', 'peer');
    expect(connects.size).toBeLessThanOrEqual(64 + 1);
    expect(connects.has('(other)')).toBe(true);
    // every request is counted: none lost by the folding
    const failures = text
      .split('\n')
      .filter((l) => l.startsWith('switchyard_attempt_failures_total{'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    expect(failures).toBeGreaterThanOrEqual(NAMES);
    const answered = text
      .split('\n')
      .filter((l) => l.startsWith('switchyard_requests_total{') && l.includes('status="200"') && l.includes('model="rot-model"'))
      .reduce((n, l) => n + Number(l.split(' ').pop()), 0);
    expect(answered).toBe(NAMES);
  }, 60_000);
});
