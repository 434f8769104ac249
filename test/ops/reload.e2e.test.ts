/**
 * Hot reload with real processes while streams run: B shares two channels with A; a raw peer is also
 * connected to B. An invalid file changes nothing (every problem returned, by the admin API and by
 * SIGHUP); a valid file adds and removes channels without cutting the stream on the removed one, the new
 * channel serves the next request, what needs a restart is reported, and a share removed on B is refused
 * by B itself at once (the raw peer's forward gets CHANNEL_NOT_SHARED) while A drops the candidate.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import OpenAI from 'openai';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, call, chatBody, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { runCli } from './cli-run.js';

const BRIDGE_TOKEN = 'reload-bridge-token-8e2d';
const ADMIN = 'reload-admin-token-4c1a';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess & { configPath: string };

const bConfig = (share: string[]) => ({
  gateway: {
    id: 'gw_rb',
    name: 'datacenter',
    port: 0,
    admin: { token: ADMIN },
    bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: share },
  },
  channels: [
    { name: 'gpu-a', provider: 'mock', models: ['llama-a'], options: { chunkDelayMs: 60, chunks: 20 } },
    { name: 'gpu-b', provider: 'mock', models: ['llama-b'] },
  ],
  store: { kind: 'sqlite', path: './data/b.db' },
});
const ACP = 'reload-acp-token-6b0f';
const acpWith = (gateways: object[]) => ({ tokens: [ACP], gateways });
const aConfig = (
  channels: object[],
  extra: Record<string, unknown> = {},
  acp: object = acpWith([{ id: 'first', label: 'First', kind: 'channels', model: 'slow' }]),
) => ({
  gateway: {
    id: 'gw_ra',
    name: 'office',
    port: 0,
    admin: { token: ADMIN },
    bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    ...extra,
  },
  channels,
  acp,
  store: { kind: 'sqlite', path: './data/a.db' },
});
async function acpCall(url: string, method: string, params: object): Promise<any> {
  const res = await fetch(`${url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  return res.json();
}
const slow = { name: 'slow-ch', provider: 'mock', models: ['slow'], options: { chunkDelayMs: 60, chunks: 20 } };
const fresh = { name: 'fresh-ch', provider: 'mock', models: ['fresh-model'], options: { reply: 'served by the new channel' } };

async function post(url: string, path: string): Promise<{ status: number; body: any }> {
  const res = await fetch(url + path, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' }, body: '{}' });
  return { status: res.status, body: await res.json() };
}

/** Reads a stream to its end; returns the content and whether it ended normally. */
async function consume(s: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<{ text: string; chunks: number; finish: string | null }> {
  let text = '';
  let chunks = 0;
  let finish: string | null = null;
  for await (const c of s) {
    chunks++;
    text += c.choices[0]?.delta?.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  return { text, chunks, finish };
}

beforeAll(async () => {
  b = await startProcess(bConfig(['gpu-a', 'gpu-b']));
  a = await startProcess({ ...aConfig([slow]), gateway: { ...aConfig([slow]).gateway } });
  await waitFor(
    async () => (await adminGet(a.url, '/admin/bridges', ADMIN)).peers.find((p: any) => p.state === 'open' && p.sharedWithUs.length === 2),
    'bridge A→B open with both shares',
  );
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('config reload while streams run', () => {
  it('an invalid file changes nothing and returns every problem (admin API, CLI and SIGHUP)', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const running = consume(await client.chat.completions.create({ model: 'slow', messages: [{ role: 'user', content: 'a long answer' }], stream: true }));
    writeFileSync(a.configPath, JSON.stringify({ ...aConfig([{ ...slow, provider: 'no-such-provider' }]), bogusTopLevel: 1 }));
    const r = await post(a.url, '/admin/config/reload');
    expect(r.status).toBe(500);
    expect(r.body.error.code).toBe('config_invalid');
    expect(r.body.error.details.problems.join('\n')).toMatch(/channels\.0\.provider/);
    expect(r.body.error.details.problems.join('\n')).toMatch(/bogusTopLevel/);
    const cli = await runCli(['config', 'reload', '--url', a.url, '--token', ADMIN]);
    expect(cli.code).toBe(1);
    expect(cli.stderr).toMatch(/config not reloaded/);
    expect(cli.stderr).toMatch(/channels\.0\.provider/);
    a.kill('SIGHUP');
    await waitFor(() => /SIGHUP: config not reloaded[\s\S]*bogusTopLevel/.test(a.logs()), 'the SIGHUP refusal on stderr');
    const done = await running;
    expect(done.finish).toBe('stop');
    const models = (await adminGet(a.url, '/admin/status', ADMIN)).models;
    expect(models).toContain('slow');
  });

  it('a valid file applies live: the running stream on a removed channel completes, the new channel serves the next request', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const stream = await client.chat.completions.create({ model: 'slow', messages: [{ role: 'user', content: 'keep going' }], stream: true });
    const running = consume(stream);
    // the new file: slow-ch removed, fresh-ch added, and a routing change that needs a restart
    writeFileSync(a.configPath, JSON.stringify(aConfig([fresh], { routing: { retries: 4 } })));
    const r = await post(a.url, '/admin/config/reload');
    expect(r.status).toBe(200);
    expect(r.body.applied).toEqual(expect.arrayContaining(['channel slow-ch removed', 'channel fresh-ch added']));
    expect(r.body.restartRequired).toEqual(['gateway.routing.retries']);
    const done = await running;
    expect(done.finish).toBe('stop');
    expect(done.chunks).toBeGreaterThanOrEqual(20);
    const next = await client.chat.completions.create({ model: 'fresh-model', messages: [{ role: 'user', content: 'hi' }] });
    expect(next.choices[0]!.message.content).toContain('served by the new channel');
    await expect(client.chat.completions.create({ model: 'slow', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
    // the peer's channels were untouched
    expect((await adminGet(a.url, '/admin/status', ADMIN)).models).toEqual(expect.arrayContaining(['fresh-model', 'llama-a', 'llama-b']));
  });

  it('a share removed on the serving side is refused by it at once; a bridged stream already running completes', async () => {
    // a raw peer on B, so B's own enforcement is seen (A drops the candidate as soon as it is told)
    const raw = new WebSocket(wsUrl(b.url));
    const frames: any[] = [];
    raw.on('message', (d) => frames.push(JSON.parse(d.toString())));
    await new Promise((r) => raw.once('open', r));
    raw.send(
      JSON.stringify({
        type: 'bridge-hello',
        gatewayId: 'gw_raw',
        gatewayName: 'raw',
        version: '1.0',
        token: BRIDGE_TOKEN,
        capabilities: { shareChannels: false, acceptSessions: false, loadBalance: false },
        sharedChannels: [],
      }),
    );
    await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'raw peer accepted');

    const client = new OpenAI({ apiKey: 'unused', baseURL: `${a.url}/v1`, maxRetries: 0 });
    const running = consume(
      await client.chat.completions.create({ model: 'llama-a', messages: [{ role: 'user', content: 'through the bridge' }], stream: true }),
    );
    writeFileSync(b.configPath, JSON.stringify(bConfig(['gpu-b'])));
    b.kill('SIGHUP');
    // the raw peer is told, and B refuses gpu-a from now on
    await waitFor(
      () => frames.find((f) => f.type === 'bridge-channels' && f.sharedChannels.length === 1 && f.sharedChannels[0].name === 'gpu-b'),
      'bridge-channels with gpu-b only',
    );
    raw.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'r1',
        targetChannel: 'gpu-a',
        kind: 'chat',
        stream: false,
        payload: { model: 'llama-a', messages: [{ role: 'user', content: 'x' }] },
      }),
    );
    const refusal = await waitFor(() => frames.find((f) => f.type === 'bridge-error' && f.requestId === 'r1'), 'the refusal');
    expect(refusal.code).toBe('CHANNEL_NOT_SHARED');
    raw.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'r2',
        targetChannel: 'gpu-b',
        kind: 'chat',
        stream: false,
        payload: { model: 'llama-b', messages: [{ role: 'user', content: 'x' }] },
      }),
    );
    const ok = await waitFor(
      () => frames.find((f) => f.requestId === 'r2' && (f.type === 'bridge-response' || f.type === 'bridge-error')),
      'gpu-b still served',
    );
    expect(ok.type).toBe('bridge-response');
    raw.close();

    const done = await running;
    expect(done.finish).toBe('stop');
    await waitFor(async () => !(await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama-a'), 'A dropped llama-a');
    await expect(client.chat.completions.create({ model: 'llama-a', messages: [{ role: 'user', content: 'x' }] })).rejects.toMatchObject({ status: 404 });
    expect((await client.chat.completions.create({ model: 'llama-b', messages: [{ role: 'user', content: 'x' }] })).choices[0]!.message.content).toBeTruthy();
  });

  it('adds and removes ACP gateway providers on reload', async () => {
    const freshRow = async () =>
      ((await adminGet(a.url, '/admin/channels', ADMIN)).channels as Array<{ id: string; health: { windowRequests: number }; latencyMsEwma: number }>).find(
        (c) => c.id === 'local/fresh-ch',
      )!;
    const kept = await freshRow();
    expect(kept.health.windowRequests).toBeGreaterThanOrEqual(1);
    const before = await acpCall(a.url, 'acp.capabilities', {});
    expect(before.result.gatewayProviders.map((g: any) => g.providerId)).toEqual(['first']);
    writeFileSync(
      a.configPath,
      JSON.stringify(aConfig([fresh], { routing: { retries: 4 } }, acpWith([{ id: 'second', label: 'Second', kind: 'channels', model: 'fresh-model' }]))),
    );
    const r = await post(a.url, '/admin/config/reload');
    expect(r.status).toBe(200);
    expect(r.body.applied).toContain('ACP agents and gateway providers updated');
    expect(r.body.restartRequired).toEqual(['gateway.routing.retries']);
    // an unchanged channel keeps its health record and statistics across the reload
    const same = await freshRow();
    expect(same.health.windowRequests).toBe(kept.health.windowRequests);
    expect(same.latencyMsEwma).toBe(kept.latencyMsEwma);
    const after = await acpCall(a.url, 'acp.capabilities', {});
    expect(after.result.gatewayProviders.map((g: any) => [g.providerId, g.enabled])).toEqual([['second', true]]);
    const turn = await acpCall(a.url, 'session.start', {
      sessionId: 's-reload-acp',
      taskPrompt: 'hello',
      routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'second' },
    });
    expect(turn.result.output).toContain('served by the new channel');
    // the removed provider is gone
    const gone = await acpCall(a.url, 'session.start', {
      sessionId: 's-reload-acp-2',
      taskPrompt: 'hello',
      routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'first' },
    });
    expect(gone.result).toMatchObject({ success: false, unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE' });
  });

  it('adds and removes an outbound bridge on reload', async () => {
    writeFileSync(
      a.configPath,
      JSON.stringify({ ...aConfig([fresh], { routing: { retries: 4 } }), gateway: { ...aConfig([fresh]).gateway, routing: { retries: 4 }, bridges: [] } }),
    );
    const r = await post(a.url, '/admin/config/reload');
    expect(r.body.applied).toContain('bridge datacenter disconnected');
    await waitFor(async () => !(await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama-b'), 'peer models gone');
    writeFileSync(a.configPath, JSON.stringify(aConfig([fresh], { routing: { retries: 4 } })));
    const r2 = await post(a.url, '/admin/config/reload');
    expect(r2.body.applied).toContain('bridge datacenter connecting');
    await waitFor(async () => (await adminGet(a.url, '/admin/status', ADMIN)).models.includes('llama-b'), 'peer models back');
  });

  it('client tokens added on reload are required from the next request; removed, the loopback gateway is open again', async () => {
    const TOKEN = 'reload-client-token-2f9e';
    const chat = async (token?: string) =>
      (await call(a, '/v1/chat/completions', { body: chatBody('fresh-model', 'hi'), headers: token ? { authorization: `Bearer ${token}` } : {} })).status;
    expect(await chat()).toBe(200);
    const withTokens = (tokens: string[]) => {
      const c = aConfig([fresh], { routing: { retries: 4 } });
      return { ...c, gateway: { ...c.gateway, auth: { tokens } } };
    };
    writeFileSync(a.configPath, JSON.stringify(withTokens([TOKEN])));
    expect((await post(a.url, '/admin/config/reload')).body.applied).toContain('gateway.auth.tokens replaced');
    expect([await chat(), await chat('not-the-token'), await chat(TOKEN)]).toEqual([401, 401, 200]);
    writeFileSync(a.configPath, JSON.stringify(withTokens([])));
    expect((await post(a.url, '/admin/config/reload')).body.applied).toContain('gateway.auth.tokens replaced');
    expect([await chat(), await chat('anything')]).toEqual([200, 200]);
  });
});
