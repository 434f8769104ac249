/**
 * GET /metrics after known traffic, with real processes: B shares a channel, A dials B. Every count the
 * test can know from what it sent is asserted exactly (requests by route/model/channel/peer/status, tokens
 * from the usage the client saw, time-to-first-token observations, a failed attempt and its failover),
 * plus the link series on both sides and the token rules of the endpoint.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess, waitFor, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { parseProm, sum, value, type Sample } from './prom-text.js';
import { runCli } from './cli-run.js';
import { startFixedReplyUpstream, type FixedReplyUpstream } from '../fakes/fixed-reply-upstream.js';

const BRIDGE_TOKEN = 'metrics-bridge-token-5d1e';
const ADMIN = 'metrics-admin-token-9a7c';
const SCRAPE = 'metrics-scrape-token-2b4f';
let a: GatewayProcess;
let b: GatewayProcess;
let odd: FixedReplyUpstream;

async function scrape(gw: GatewayProcess, token = ADMIN): Promise<Sample[]> {
  const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseProm(await res.text());
}

beforeAll(async () => {
  b = await startProcess({
    gateway: {
      id: 'gw_mb',
      name: 'datacenter',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['gpu-llama'] },
    },
    channels: [{ name: 'gpu-llama', provider: 'mock', models: ['llama3'] }],
  });
  // an upstream whose usage counts are no counts: 1e308 and a negative number
  odd = await startFixedReplyUpstream(() =>
    JSON.stringify({
      id: 'c1',
      object: 'chat.completion',
      created: 1,
      model: 'm',
      choices: [{ index: 0, message: { role: 'assistant', content: 'ok' }, finish_reason: 'stop' }],
    }).replace(/}$/, ',"usage":{"prompt_tokens":1e308,"completion_tokens":-5,"total_tokens":3}}'),
  );
  a = await startProcess({
    gateway: {
      id: 'gw_ma',
      name: 'office',
      admin: { token: ADMIN },
      metrics: { token: SCRAPE },
      bridge: { limits: { heartbeatIntervalMs: 100 } },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    },
    channels: [
      { name: 'office-mock', provider: 'mock', models: ['mock-1'] },
      { name: 'flaky', provider: 'mock', models: ['flaky-model'], options: { failFirst: 1, failStatus: 500 } },
      { name: 'odd-usage', provider: 'openai', baseUrl: odd.baseUrl, apiKey: 'sk-odd-usage-key', models: ['odd-1'] },
    ],
  });
  await waitForBridgeOpen(a.url, ADMIN);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), odd?.close()]);
  cleanupDirs();
});

describe('/metrics', () => {
  it('takes the metrics token or the admin token, and nothing else', async () => {
    expect((await fetch(`${a.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${a.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-123' } })).status).toBe(401);
    await scrape(a, SCRAPE);
    await scrape(a, ADMIN);
    const post = await fetch(`${a.url}/metrics`, { method: 'POST', headers: { authorization: `Bearer ${SCRAPE}` } });
    expect(post.status).toBe(405);
  });

  it('counts exactly the traffic that was sent', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const usage = { local: { in: 0, out: 0 }, peer: { in: 0, out: 0 } };
    for (let i = 0; i < 3; i++) {
      const r = await client.chat.completions.create({ model: 'mock-1', messages: [{ role: 'user', content: `hello number ${i}` }] });
      usage.local.in += r.usage!.prompt_tokens;
      usage.local.out += r.usage!.completion_tokens;
    }
    for (let i = 0; i < 2; i++) {
      const s = await client.chat.completions.create({
        model: 'llama3',
        messages: [{ role: 'user', content: `stream ${i} please` }],
        stream: true,
        stream_options: { include_usage: true },
      });
      for await (const c of s) {
        if (c.usage) {
          usage.peer.in += c.usage.prompt_tokens;
          usage.peer.out += c.usage.completion_tokens;
        }
      }
    }
    await expect(client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
    const flaky = await client.chat.completions.create({ model: 'flaky-model', messages: [{ role: 'user', content: 'try twice' }] });
    expect(flaky.choices[0]!.message.content).toBeTruthy();
    // the Anthropic Messages edge counts the same way
    const msg = await fetch(`${a.url}/v1/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01' },
      body: JSON.stringify({ model: 'mock-1', max_tokens: 64, messages: [{ role: 'user', content: 'through messages' }] }),
    });
    expect(msg.status).toBe(200);
    const msgUsage = ((await msg.json()) as { usage: { input_tokens: number; output_tokens: number } }).usage;
    expect(usage.local.in).toBeGreaterThan(0);
    expect(usage.peer.out).toBeGreaterThan(0);

    const m = await scrape(a);
    const chat = { route: '/v1/chat/completions' };
    expect(value(m, 'switchyard_requests_total', { ...chat, model: 'mock-1', channel: 'office-mock', peer: '', status: '200' })).toBe(3);
    expect(value(m, 'switchyard_requests_total', { ...chat, model: 'llama3', channel: 'gpu-llama', peer: 'datacenter', status: '200' })).toBe(2);
    expect(value(m, 'switchyard_requests_total', { ...chat, model: '', channel: '', peer: '', status: '404' })).toBe(1);
    expect(value(m, 'switchyard_requests_total', { ...chat, model: 'flaky-model', channel: 'flaky', status: '200' })).toBe(1);
    expect(sum(m, 'switchyard_requests_total', chat)).toBe(7);
    expect(value(m, 'switchyard_requests_total', { route: '/v1/messages', model: 'mock-1', channel: 'office-mock', peer: '', status: '200' })).toBe(1);
    expect(value(m, 'switchyard_time_to_first_token_seconds_count', { model: 'mock-1', channel: 'office-mock', peer: '' })).toBe(4);
    // latency for every request, time to first token for every routed one
    expect(value(m, 'switchyard_request_duration_seconds_count', { ...chat, model: 'mock-1', channel: 'office-mock', peer: '' })).toBe(3);
    expect(value(m, 'switchyard_time_to_first_token_seconds_count', { model: 'llama3', channel: 'gpu-llama', peer: 'datacenter' })).toBe(2);
    // tokens from the upstream usage, equal to what the client was told
    expect(value(m, 'switchyard_tokens_total', { model: 'mock-1', channel: 'office-mock', direction: 'in' })).toBe(usage.local.in + msgUsage.input_tokens);
    expect(value(m, 'switchyard_tokens_total', { model: 'mock-1', channel: 'office-mock', direction: 'out' })).toBe(usage.local.out + msgUsage.output_tokens);
    expect(value(m, 'switchyard_tokens_total', { model: 'llama3', peer: 'datacenter', direction: 'in' })).toBe(usage.peer.in);
    expect(value(m, 'switchyard_tokens_total', { model: 'llama3', peer: 'datacenter', direction: 'out' })).toBe(usage.peer.out);
    // the flaky channel's first attempt failed and the request was retried
    expect(sum(m, 'switchyard_attempt_failures_total', { channel: 'flaky' })).toBe(1);
    expect(sum(m, 'switchyard_failovers_total')).toBe(1);
    // only the scrape itself is in flight
    expect(value(m, 'switchyard_inflight_requests')).toBe(1);
    expect(value(m, 'switchyard_waiting_requests')).toBe(0);
    expect(value(m, 'switchyard_candidate_inflight', { candidate: 'local/office-mock' })).toBe(0);
    expect(value(m, 'switchyard_candidate_ejected', { candidate: 'local/flaky' })).toBe(0);
    expect(value(m, 'switchyard_sessions', { status: 'running' })).toBe(0);
    // no request id or prompt text anywhere in the exposition
    expect(JSON.stringify(m)).not.toMatch(/hello number|stream 0 please|no-such-model|req_/);
  });

  it('embeddings count their prompt tokens as input, and no output', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const labels = { model: 'mock-1', channel: 'office-mock', peer: '' };
    const before = await scrape(a);
    const emb = await client.embeddings.create({ model: 'mock-1', input: 'embed these few words' });
    expect(emb.usage.prompt_tokens).toBeGreaterThan(0);
    const after = await scrape(a);
    const delta = (direction: string) =>
      (value(after, 'switchyard_tokens_total', { ...labels, direction }) ?? 0) - (value(before, 'switchyard_tokens_total', { ...labels, direction }) ?? 0);
    expect(delta('in')).toBe(emb.usage.prompt_tokens);
    expect(delta('out')).toBe(0);
    expect(value(after, 'switchyard_requests_total', { route: '/v1/embeddings', ...labels, status: '200' })).toBe(1);
  });

  it('switchyard status shows it on one screen: version, uptime, rate, peers, channels, health, sessions', async () => {
    const r = await runCli(['status', '--url', a.url, '--token', ADMIN]);
    expect(r.code).toBe(0);
    const out = r.stdout;
    expect(out).toMatch(/^office \(gw_ma\) {2}v\d+\.\d+\.\d+ {2}up \d+/);
    expect(out).toMatch(/requests {2}\d+\.\d\/s {2}errors \d+\.\d\/s {2}in flight \d+ {2}waiting 0/);
    expect(out).toMatch(/sessions {2}0 active, 0 running, 0 closed, 0 moved/);
    expect(out).toMatch(/datacenter\s+outbound\s+open\s+\d+ms\s+0 out\/0 in\s+gpu-llama/);
    expect(out).toMatch(/gpu-llama\s+datacenter\s+mock \(mock\)\s+llama3\s+0\/64/);
    expect(out).toMatch(/office-mock\s+local\s+mock \(mock\)\s+mock-1/);
    const json = JSON.parse((await runCli(['status', '--url', a.url, '--token', ADMIN, '--json'])).stdout) as { gateway: { id: string }; peers: unknown[] };
    expect(json.gateway.id).toBe('gw_ma');
    expect(json.peers).toHaveLength(1);
    const bad = await runCli(['status', '--url', a.url, '--token', 'wrong-admin-token']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/admin token rejected/);
  });

  it('shows the link on both sides: state, frames and bytes each way, round-trip time, shared channels', async () => {
    const m = await waitFor(async () => {
      const s = await scrape(a);
      return value(s, 'switchyard_peer_rtt_seconds', { peer: 'datacenter' }) !== undefined ? s : undefined;
    }, 'a heartbeat round trip on A');
    expect(value(m, 'switchyard_peer_up', { peer: 'datacenter', direction: 'outbound', state: 'open' })).toBe(1);
    expect(value(m, 'switchyard_peer_shared_channels', { peer: 'datacenter' })).toBe(1);
    expect(value(m, 'switchyard_peer_connects_total', { peer: 'datacenter' })).toBe(1);
    expect(value(m, 'switchyard_peer_frames_sent_total', { peer: 'datacenter' })).toBeGreaterThanOrEqual(2);
    expect(value(m, 'switchyard_peer_bytes_sent_total', { peer: 'datacenter' })).toBeGreaterThan(200);
    expect(value(m, 'switchyard_peer_frames_received_total', { peer: 'datacenter' })).toBeGreaterThanOrEqual(4);
    const mb = await scrape(b);
    const inbound = mb.filter((s) => s.name === 'switchyard_peer_frames_received_total' && s.labels.direction === 'inbound');
    expect(inbound).toHaveLength(1);
    expect(inbound[0]!.value).toBeGreaterThanOrEqual(2);
    expect(value(mb, 'switchyard_peer_inflight_in', { direction: 'inbound' })).toBe(0);
    // B served the two forwards without an HTTP request: its request counter has only the scrapes
    expect(sum(mb, 'switchyard_requests_total', { route: '/v1/chat/completions' })).toBe(0);
    expect(value(mb, 'switchyard_uptime_seconds')).toBeGreaterThan(0);
  });
  it("an upstream's usage that is not a count (1e308, negative) never reaches the counters", async () => {
    const r = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'odd-1', messages: [{ role: 'user', content: 'hi' }] }),
    });
    expect(r.status).toBe(200);
    const m = await scrape(a, SCRAPE);
    for (const direction of ['in', 'out']) {
      const v = value(m, 'switchyard_tokens_total', { model: 'odd-1', channel: 'odd-usage', direction }) ?? 0;
      expect(v, direction).toBe(0);
    }
  });
});
