/**
 * The seed's scenario 1 with real processes: gateway B (a "GPU box") shares a channel, gateway A dials it
 * from its config, and the official openai SDK on A reaches B's model — non-stream, stream, embeddings —
 * with the peer named in /v1/models and in the response headers. Cancel crosses the bridge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { startAnthropicUpstream } from '../fakes/anthropic-upstream.js';
import type { FakeUpstream } from '../providers/conformance.js';
import { adminGet, cleanupDirs, startProcess, waitFor, waitForBridgeOpen, wsUrl, type GatewayProcess } from '../helpers/env.js';

const BRIDGE_TOKEN = 'e2e-bridge-token-7f3a9c';
const ADMIN = 'e2e-admin-token-1b2c3d';
let a: GatewayProcess;
let b: GatewayProcess;
let hanging: FakeUpstream;

beforeAll(async () => {
  hanging = await startAnthropicUpstream({ hang: true });
  b = await startProcess({
    gateway: {
      id: 'gw_b',
      name: 'datacenter',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu-llama', 'slow-claude'], acceptSessions: false },
    },
    channels: [
      { name: 'gpu-llama', provider: 'mock', models: ['llama3'], options: { chunkDelayMs: 30 } },
      { name: 'slow-claude', provider: 'anthropic', baseUrl: hanging.channel.baseUrl, apiKey: 'k', models: ['claude-hang'] },
      { name: 'b-private', provider: 'mock', models: ['b-only'] },
    ],
  });
  a = await startProcess({
    gateway: {
      id: 'gw_a',
      name: 'office',
      admin: { token: ADMIN },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    },
    channels: [{ name: 'office-mock', provider: 'mock', models: ['mock-1'] }],
  });
  await waitForBridgeOpen(a.url, ADMIN);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await hanging?.close();
  cleanupDirs();
});

describe('scenario 1: share a GPU box model through the bridge', () => {
  it("A lists B's shared models with the peer name, and not B's private ones", async () => {
    const res = await fetch(`${a.url}/v1/models`);
    const body = (await res.json()) as { data: Array<{ id: string; channels: Array<{ channel: string; peer?: string }> }> };
    const llama = body.data.find((m) => m.id === 'llama3');
    expect(llama?.channels).toEqual([{ channel: 'gpu-llama', provider: 'mock', peer: 'datacenter', mock: true }]);
    expect(body.data.map((m) => m.id)).toContain('mock-1');
    expect(body.data.map((m) => m.id)).not.toContain('b-only');
  });

  it('non-streaming chat crosses the bridge (openai SDK)', async () => {
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x' });
    const { data, response } = await client.chat.completions.create({ model: 'llama3', messages: [{ role: 'user', content: 'hi from A' }] }).withResponse();
    expect(data.choices[0]!.message.content).toBe('[mock llama3] You said: hi from A');
    expect(data.usage?.total_tokens).toBeGreaterThan(0);
    expect(response.headers.get('x-switchyard-peer')).toBe('datacenter');
    expect(response.headers.get('x-switchyard-channel')).toBe('gpu-llama');
  });

  it('streaming crosses chunk by chunk, with usage when asked', async () => {
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x' });
    const stream = await client.chat.completions.create({
      model: 'llama3',
      stream: true,
      stream_options: { include_usage: true },
      messages: [{ role: 'user', content: 'one two three four five six' }],
    });
    const arrivals: number[] = [];
    let text = '';
    let usage: unknown;
    for await (const c of stream) {
      const d = c.choices[0]?.delta?.content;
      if (d) {
        text += d;
        arrivals.push(Date.now());
      }
      if (c.usage) usage = c.usage;
    }
    expect(text).toBe('[mock llama3] You said: one two three four five six');
    expect(arrivals.length).toBeGreaterThan(5);
    // chunks arrive spread out over time (B's mock waits 30 ms between chunks), not in one burst at the end
    expect(arrivals[arrivals.length - 1]! - arrivals[0]!).toBeGreaterThan(100);
    expect(usage).toMatchObject({ total_tokens: expect.any(Number) });
  });

  it('embeddings cross the bridge', async () => {
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x' });
    const r = await client.embeddings.create({ model: 'llama3', input: ['a', 'b'] });
    expect(r.data).toHaveLength(2);
    expect(r.data[0]!.embedding.length).toBe(8);
  });

  it('B refuses what it does not share even if A asks for it by hand: not routable on A', async () => {
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'b-only', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(404);
  });

  it('a client disconnecting on A cancels the upstream request on B', async () => {
    const ac = new AbortController();
    const pending = fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'claude-hang', stream: true, messages: [{ role: 'user', content: 'wait forever' }] }),
      signal: ac.signal,
    }).catch(() => undefined);
    await waitFor(() => hanging.lastRequest(), 'B to reach the upstream');
    ac.abort();
    await pending;
    await Promise.race([hanging.aborted(), new Promise((_, rej) => setTimeout(() => rej(new Error('upstream on B never saw the abort')), 5000))]);
  });

  it('bridge list on A shows the peer with what it shares, and never the token', async () => {
    const { peers } = await adminGet(a.url, '/admin/bridges', ADMIN);
    expect(peers).toHaveLength(1);
    expect(peers[0]).toMatchObject({
      name: 'datacenter',
      id: 'gw_b',
      direction: 'outbound',
      state: 'open',
      sharedWithUs: ['gpu-llama', 'slow-claude'],
      sharedByUs: [],
    });
    expect(JSON.stringify(peers)).not.toContain(BRIDGE_TOKEN);
    const bPeers = (await adminGet(b.url, '/admin/bridges', ADMIN)).peers;
    expect(bPeers[0]).toMatchObject({ id: 'gw_a', direction: 'inbound', state: 'open' });
    expect(a.logs() + b.logs()).not.toContain(BRIDGE_TOKEN);
  });
});
