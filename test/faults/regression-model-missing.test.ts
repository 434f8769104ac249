/**
 * Regression: an upstream that does not have one of its channel's models took the whole channel out of service.
 * The upstream's 404 for the model (Ollama's `model "x" not found, try pulling it first`, OpenAI's
 * `model_not_found`) was UPSTREAM_ERROR, counted against the channel's health: a few requests for the missing
 * model ejected the channel, and the models it does have went with it (a client could take a shared channel
 * down for everyone, and a model not pulled looked like an outage). Now the answer is MODEL_NOT_FOUND: another
 * channel with the model serves the request, the channel's health is untouched, and the (channel, model) pair is
 * skipped for `health.baseEjectionMs` (no upstream request in that time), then asked again. A wrong key (401)
 * still counts against the channel. Real gateways, fake upstreams speaking the real wire formats, the official
 * SDKs as clients.
 */
import Anthropic from '@anthropic-ai/sdk';
import OpenAI from 'openai';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { adminGet, BIN, channelOf, sdk, startBridgedPair, startGw, startProcess, waitFor } from '../helpers/env.js';
import { stopAfterEach } from '../helpers/stop-after.js';
import { startOllamaUpstream } from '../fakes/ollama-upstream.js';
import { startOpenAiUpstream } from '../fakes/openai-upstream.js';

const { track, trackGateway } = stopAfterEach();

const health = (baseEjectionMs: number) => ({
  consecutiveFailures: 3,
  failureRatio: 0.5,
  windowMs: 10_000,
  minRequests: 10,
  baseEjectionMs,
  maxEjectionMs: 60_000,
});

interface Row {
  id: string;
  health: { state: string; consecutiveFailures: number; ejections: number };
  skippedModels: Array<{ model: string; until: number; error: string }>;
}

async function row(url: string, id: string, token?: string): Promise<Row> {
  const { channels } = await adminGet<{ channels: Row[] }>(url, '/admin/channels', token);
  const r = channels.find((c) => c.id === id);
  if (!r) throw new Error(`no channel row ${id}`);
  return r;
}

/** the request's error, which must be the SDK's error for an HTTP status */
async function apiError(p: Promise<unknown>): Promise<InstanceType<typeof OpenAI.APIError>> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'the request should fail').toBeInstanceOf(OpenAI.APIError);
  return err as InstanceType<typeof OpenAI.APIError>;
}

const ask = (client: OpenAI, model: string, stream = false) =>
  stream
    ? client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], stream: true }).then(async (s) => {
        let text = '';
        for await (const c of s) text += c.choices[0]?.delta.content ?? '';
        return text;
      })
    : client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }] }).then((r) => r.choices[0]!.message.content);

describe('an upstream that does not have a model', () => {
  it('does not take the channel out of service: the other model keeps being served, health stays healthy, the upstream is asked once', async () => {
    const up = track(await startOllamaUpstream({ reply: 'from ollama', pulled: ['llama-a'] }));
    const gw = trackGateway(
      await startGw({
        gateway: { routing: { retries: 2, health: health(30_000) } },
        channels: [channelOf(up, 'ol', ['llama-a', 'llama-b'])],
      }),
    );
    const client = sdk(gw);
    for (let i = 0; i < 6; i++) {
      const e = await apiError(ask(client, 'llama-b', i % 2 === 1));
      expect(e.status, `request ${i}: a model the upstream does not have is a 404 to the client`).toBe(404);
      expect(e.code).toBe('model_not_found');
      expect(e.message).toMatch(/not found|not available/);
      // the channel's other model is served all along
      expect(await ask(client, 'llama-a', i % 2 === 0)).toBe('from ollama');
    }
    expect(up.requestsFor('llama-b'), 'within the cooldown the upstream is not asked for the missing model again').toBe(1);
    const r = await row(gw.url, 'local/ol');
    expect(r.health.state).toBe('healthy');
    expect(r.health.consecutiveFailures).toBe(0);
    expect(r.health.ejections).toBe(0);
    expect(r.skippedModels.map((s) => s.model)).toEqual(['llama-b']);
    expect(r.skippedModels[0]!.until).toBeGreaterThan(Date.now());
    expect(r.skippedModels[0]!.error).toContain('not found, try pulling it first');
    // `switchyard channels list` marks the model in MODELS, the channel healthy
    const { stdout } = await promisify(execFile)(process.execPath, [BIN, 'channels', 'list', '--url', gw.url], {
      env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '' },
    });
    expect(stdout).toMatch(/ol\s+ollama\s+local\s+llama-a,llama-b \(missing, \d+s\)\s+0\/\d+\s+\S+\s+healthy/);

    // the Messages API client gets the same answer in its own format
    const anthropic = new Anthropic({ apiKey: 'sk-client-unused', baseURL: gw.url, maxRetries: 0 });
    const err = await anthropic.messages.create({ model: 'llama-b', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Anthropic.NotFoundError);
    expect((err as InstanceType<typeof Anthropic.NotFoundError>).error).toMatchObject({ type: 'error', error: { type: 'not_found_error' } });
    expect(up.requestsFor('llama-b')).toBe(1);
  });

  it('fails over to another channel that has the model, and the channel without it is skipped for that model', async () => {
    const ol = track(await startOllamaUpstream({ reply: 'from ollama', pulled: ['llama-a'] }));
    const vl = track(await startOpenAiUpstream({ reply: 'from vllm' }, { provider: 'vllm', name: 'vl' }));
    const gw = trackGateway(
      await startGw({
        gateway: { routing: { strategy: 'priority', retries: 0, health: health(30_000) } },
        channels: [channelOf(ol, 'ol', ['llama-a', 'llama-b', 'embed-c'], { priority: 0 }), channelOf(vl, 'vl', ['llama-b', 'embed-c'], { priority: 1 })],
      }),
    );
    const client = sdk(gw);
    for (let i = 0; i < 5; i++) {
      // retries: 0, yet the first answer (the model is missing on ol) does not use up the request's one attempt
      const { data, response } = await client.chat.completions.create({ model: 'llama-b', messages: [{ role: 'user', content: 'hi' }] }).withResponse();
      expect(data.choices[0]!.message.content).toBe('from vllm');
      expect(response.headers.get('x-switchyard-channel')).toBe('vl');
    }
    expect(await ask(client, 'llama-a')).toBe('from ollama');
    expect(ol.requestsFor('llama-b'), 'ol is asked for llama-b once, then skipped for it').toBe(1);
    expect(vl.count('/chat/completions')).toBe(5);
    const r = await row(gw.url, 'local/ol');
    expect(r.health).toMatchObject({ state: 'healthy', consecutiveFailures: 0, ejections: 0 });
    expect(r.skippedModels.map((s) => s.model)).toEqual(['llama-b']);
    expect((await row(gw.url, 'local/vl')).skippedModels).toEqual([]);

    // embeddings the same way: ol answers once that it does not have embed-c, vl serves every request
    for (let i = 0; i < 3; i++) {
      const { data, response } = await client.embeddings.create({ model: 'embed-c', input: 'x' }).withResponse();
      expect(data.data).toHaveLength(1);
      expect(response.headers.get('x-switchyard-channel')).toBe('vl');
    }
    expect(ol.requestsFor('embed-c')).toBe(1);
    expect((await row(gw.url, 'local/ol')).health).toMatchObject({ state: 'healthy', consecutiveFailures: 0 });
  });

  it('asks the upstream again once the cooldown is over (a model pulled meanwhile is served)', async () => {
    const pulled = ['llama-a'];
    const up = track(await startOllamaUpstream({ reply: 'from ollama', pulled }));
    const gw = trackGateway(
      await startGw({
        gateway: { routing: { retries: 2, health: health(1_500) } },
        channels: [channelOf(up, 'ol', ['llama-a', 'llama-b'])],
      }),
    );
    const client = sdk(gw);
    expect((await apiError(ask(client, 'llama-b'))).status).toBe(404);
    expect(up.requestsFor('llama-b')).toBe(1);
    pulled.push('llama-b');
    // within the cooldown: answered without asking the upstream
    const skipped = await apiError(ask(client, 'llama-b'));
    expect(skipped.status).toBe(404);
    expect(skipped.message).toMatch(/is not available: its channel answered that it does not have it, asked again in \d+ s/);
    expect(up.requestsFor('llama-b')).toBe(1);
    const { until } = (await row(gw.url, 'local/ol')).skippedModels[0]!;
    await waitFor(() => Date.now() > until, 'the cooldown to end', 5_000, 20);
    expect(await ask(client, 'llama-b', true)).toBe('from ollama');
    expect(up.requestsFor('llama-b')).toBe(2);
    const r = await row(gw.url, 'local/ol');
    expect(r.skippedModels).toEqual([]);
    expect(r.health.state).toBe('healthy');
  });

  it('a reload that changes the channel forgets what its old upstream did not have', async () => {
    const before = track(await startOllamaUpstream({ reply: 'from the old server', pulled: ['llama-a'] }));
    const after = track(await startOllamaUpstream({ reply: 'from the new server', pulled: ['llama-a', 'llama-b'] }));
    const config = (baseUrl: string) => ({
      gateway: { id: 'gw_mm_reload', port: 0, routing: { retries: 2, health: health(30_000) } },
      store: { kind: 'sqlite', path: './data/switchyard.db' },
      channels: [{ name: 'ol', provider: 'ollama', baseUrl, models: ['llama-a', 'llama-b'] }],
    });
    const gw = trackGateway(await startProcess(config(before.channel.baseUrl!)));
    const client = new OpenAI({ apiKey: 'sk-client-unused', baseURL: `${gw.url}/v1`, maxRetries: 0 });
    expect((await apiError(ask(client, 'llama-b'))).status).toBe(404);
    expect((await row(gw.url, 'local/ol')).skippedModels.map((s) => s.model)).toEqual(['llama-b']);
    writeFileSync(gw.configPath, JSON.stringify(config(after.channel.baseUrl!)));
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(((await res.json()) as { applied: string[] }).applied).toContain('channel ol changed');
    // well within the 30 s the old server's answer would have kept llama-b skipped
    expect((await row(gw.url, 'local/ol')).skippedModels).toEqual([]);
    expect(await ask(client, 'llama-b')).toBe('from the new server');
    expect(before.requestsFor('llama-b')).toBe(1);
  });

  it("OpenAI's model_not_found does not count against the channel; a wrong key (401) still does", async () => {
    const up = track(await startOpenAiUpstream({ reply: 'from openai', servedModels: ['gpt-a'] }, { provider: 'openai' }));
    const gw = trackGateway(
      await startGw({
        gateway: { routing: { retries: 0, health: health(30_000) } },
        channels: [channelOf(up, 'oa', ['gpt-a', 'gpt-b']), { ...channelOf(up, 'bad-key', ['gpt-c']), apiKey: 'sk-wrong-key' }],
      }),
    );
    const client = sdk(gw);
    for (let i = 0; i < 5; i++) {
      const e = await apiError(ask(client, 'gpt-b'));
      expect(e.status).toBe(404);
      expect(e.code).toBe('model_not_found');
    }
    expect(up.requests.filter((r) => r.body?.model === 'gpt-b')).toHaveLength(1);
    expect(await ask(client, 'gpt-a')).toBe('from openai');
    expect((await row(gw.url, 'local/oa')).health).toMatchObject({ state: 'healthy', consecutiveFailures: 0 });

    for (let i = 0; i < 3; i++) {
      const e = await apiError(ask(client, 'gpt-c'));
      expect(e.status, 'a wrong key is the gateway operator’s problem: 502').toBe(502);
      expect(e.message).not.toContain('sk-wrong-key');
    }
    const bad = await row(gw.url, 'local/bad-key');
    expect(bad.health.state, 'three 401s in a row eject the channel').toBe('ejected');
    expect(bad.skippedModels).toEqual([]);
  });

  it("bridged: a peer's channel without the model is not held against the peer link, and the peer's upstream is asked once", async () => {
    const up = track(await startOllamaUpstream({ reply: 'from ollama', pulled: ['llama-a'] }));
    const { a, b } = await startBridgedPair('mm', channelOf(up, 'up', ['llama-a', 'llama-b']), { token: 'bridge-token-mm', admin: 'admin-mm' });
    trackGateway(a);
    trackGateway(b);
    const client = sdk(a);
    for (let i = 0; i < 6; i++) {
      const e = await apiError(ask(client, 'llama-b', i % 2 === 0));
      expect(e.status).toBe(404);
      expect(e.code).toBe('model_not_found');
      expect(await ask(client, 'llama-a')).toBe('from ollama');
    }
    expect(up.requestsFor('llama-b')).toBe(1);
    const peerRow = await row(a.url, 'peer/gw_mm_b/up', 'admin-mm');
    expect(peerRow.health).toMatchObject({ state: 'healthy', consecutiveFailures: 0, ejections: 0 });
    expect(peerRow.skippedModels.map((s) => s.model)).toEqual(['llama-b']);
    expect((await row(b.url, 'local/up')).health).toMatchObject({ state: 'healthy', consecutiveFailures: 0 });
    const { peers } = await adminGet<{ peers: Array<{ health: Record<string, string> }> }>(a.url, '/admin/bridges', 'admin-mm');
    expect(peers[0]!.health).toEqual({ up: 'healthy' });
  });
});
