/**
 * Real processes under faults: a peer killed mid-stream and restarted (the stream ends with an error, the
 * link and its channels come back by themselves), an initiator with a wrong token (no retry loop, the
 * reason shown), three gateways in a ring, and TLS with a certificate made by the test.
 */
import { describe, expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import OpenAI from 'openai';
import { adminGet, startProcess, tmpDir, waitFor, wsUrl, freePort, BIN } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { selfSigned } from '../helpers/tls.js';

const TOKEN = 'resilience-bridge-token-42';
const { trackGateway: track } = stopAfterAll();

const peers = (url: string) => adminGet(url, '/admin/bridges').then((r) => r.peers as any[]);
const modelIds = async (url: string) => ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);

describe('peer killed and restarted', () => {
  it('a stream in flight at SIGKILL ends with an error; link and channels return after restart', async () => {
    const port = await freePort();
    const dir = tmpDir();
    const bCfg = {
      gateway: { id: 'gw_rb', name: 'gpu', port, bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['gpu'] } },
      channels: [{ name: 'gpu', provider: 'mock', models: ['llama3'], options: { chunkDelayMs: 100 } }],
    };
    let b = track(await startProcess(bCfg, {}, dir));
    const a = track(
      await startProcess({
        gateway: {
          id: 'gw_ra',
          name: 'laptop',
          bridges: [{ name: 'gpu', url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100, maxReconnectInterval: 400 }],
        },
        channels: [{ name: 'local', provider: 'mock', models: ['mock-1'] }],
      }),
    );
    await waitFor(async () => (await modelIds(a.url)).includes('llama3'), 'llama3 on A');

    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x', maxRetries: 0 });
    const stream = await client.chat.completions.create({
      model: 'llama3',
      stream: true,
      messages: [{ role: 'user', content: 'a long answer with many many words in it please' }],
    });
    let received = '';
    let failure: unknown;
    try {
      for await (const c of stream) {
        received += c.choices[0]?.delta?.content ?? '';
        if (received.length > 10 && b.proc.exitCode === null && b.proc.signalCode === null) b.kill('SIGKILL');
      }
    } catch (err) {
      failure = err;
    }
    expect(received.length).toBeGreaterThan(10);
    expect(failure).toBeDefined();
    expect(String((failure as Error).message)).toMatch(/peer|went away|bridge/i);

    // its channels leave A's table at once
    await waitFor(async () => !(await modelIds(a.url)).includes('llama3'), 'llama3 gone from A', 3000);
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama3', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(404);

    b = track(await startProcess(bCfg, {}, dir));
    await waitFor(async () => (await modelIds(a.url)).includes('llama3'), 'llama3 back on A after restart', 10_000);
    const again = await client.chat.completions.create({ model: 'llama3', messages: [{ role: 'user', content: 'welcome back' }] });
    expect(again.choices[0]!.message.content).toContain('welcome back');
    const row = (await peers(a.url))[0];
    expect(row).toMatchObject({ state: 'open', id: 'gw_rb' });
  });
});

describe('auth failure', () => {
  it('a wrong token stops retrying and says why; the responder saw exactly one attempt', async () => {
    const b = track(
      await startProcess({
        gateway: { id: 'gw_auth_b', bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['m'] } },
        channels: [{ name: 'm', provider: 'mock', models: ['m1'] }],
      }),
    );
    const a = track(
      await startProcess({
        gateway: { id: 'gw_auth_a', bridges: [{ name: 'b', url: wsUrl(b.url), token: 'not-the-right-token', reconnectInterval: 50 }] },
        channels: [{ name: 'x', provider: 'mock', models: ['x1'] }],
      }),
    );
    const row = await waitFor(async () => (await peers(a.url)).find((p) => p.state === 'failed'), 'bridge to fail');
    expect(row.lastError).toMatch(/AUTH_FAILED/);
    await new Promise((r) => setTimeout(r, 1000));
    expect((await peers(a.url))[0].state).toBe('failed');
    const refusals = b
      .logs()
      .split('\n')
      .filter((l) => l.includes('bridge handshake refused'));
    expect(refusals).toHaveLength(1);
    expect(a.logs() + b.logs()).not.toContain('not-the-right-token');
  });
});

describe('three gateways in a ring (A→B→C→A)', () => {
  it("each reaches the others' models, and unknown models fail fast instead of looping", async () => {
    const mk = (id: string, model: string, dial?: { name: string; url: string }) =>
      startProcess({
        gateway: {
          id,
          name: id,
          bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: [`ch-${id}`] },
          bridges: dial ? [{ name: dial.name, url: dial.url, token: TOKEN, reconnectInterval: 100 }] : [],
        },
        channels: [{ name: `ch-${id}`, provider: 'mock', models: [model] }],
      });
    const c = track(await mk('gw_c', 'model-c'));
    const b = track(await mk('gw_b3', 'model-b', { name: 'to-c', url: wsUrl(c.url) }));
    const a = track(await mk('gw_a3', 'model-a', { name: 'to-b', url: wsUrl(b.url) }));
    // C dials A at run time through the CLI-facing admin API
    const add = await fetch(`${c.url}/admin/bridges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url: wsUrl(a.url), token: TOKEN, name: 'to-a' }),
    });
    expect(add.status).toBe(201);
    for (const g of [a, b, c]) {
      await waitFor(async () => {
        const ids = await modelIds(g.url);
        return ['model-a', 'model-b', 'model-c'].every((m) => ids.includes(m));
      }, `all three models on ${g.url}`);
    }
    const client = new OpenAI({ baseURL: `${a.url}/v1`, apiKey: 'x', maxRetries: 0 });
    for (const m of ['model-b', 'model-c']) {
      const r = await client.chat.completions.create({ model: m, messages: [{ role: 'user', content: `to ${m}` }] });
      expect(r.choices[0]!.message.content).toContain(`to ${m}`);
    }
    const started = Date.now();
    const res = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'model-z', messages: [{ role: 'user', content: 'x' }] }),
    });
    expect(res.status).toBe(404);
    expect(Date.now() - started).toBeLessThan(2000);
  });
});

describe('TLS', () => {
  it('wss with a trusted self-signed cert works; an untrusted one is refused with a clear error', async () => {
    const dir = tmpDir();
    selfSigned(dir, 'gw');
    const b = track(
      await startProcess(
        {
          gateway: {
            id: 'gw_tls_b',
            tls: { cert: './gw-cert.pem', key: './gw-key.pem' },
            bridge: { enabled: true, allowedTokens: [TOKEN], shareChannels: ['secure'] },
          },
          channels: [{ name: 'secure', provider: 'mock', models: ['secure-model'] }],
        },
        {},
        dir,
      ),
    );
    expect(b.url).toMatch(/^https:/);
    const trusting = track(
      await startProcess(
        {
          gateway: { id: 'gw_tls_a', bridges: [{ name: 'secure-peer', url: wsUrl(b.url), token: TOKEN, ca: './gw-cert.pem' }] },
          channels: [{ name: 'l', provider: 'mock', models: ['l1'] }],
        },
        {},
        dir,
      ),
    );
    expect(wsUrl(b.url)).toMatch(/^wss:/);
    await waitFor(async () => (await modelIds(trusting.url)).includes('secure-model'), 'secure-model over wss');
    const client = new OpenAI({ baseURL: `${trusting.url}/v1`, apiKey: 'x' });
    const r = await client.chat.completions.create({ model: 'secure-model', messages: [{ role: 'user', content: 'over tls' }] });
    expect(r.choices[0]!.message.content).toContain('over tls');

    // the same at run time: `bridge connect --ca` trusts the certificate without a restart
    const runtime = track(await startProcess({ gateway: { id: 'gw_tls_r' }, channels: [{ name: 'l', provider: 'mock', models: ['l1'] }] }));
    const connect = await new Promise<{ code: number; stderr: string }>((resolve) =>
      execFile(
        process.execPath,
        [BIN, 'bridge', 'connect', '--url', runtime.url, '--peer-url', wsUrl(b.url), '--peer-token', TOKEN, '--name', 'tls', '--ca', join(dir, 'gw-cert.pem')],
        (err, _o, stderr) => resolve({ code: err ? 1 : 0, stderr }),
      ),
    );
    expect(connect).toEqual({ code: 0, stderr: '' });
    await waitFor(async () => (await modelIds(runtime.url)).includes('secure-model'), 'secure-model via a runtime bridge with --ca');

    const untrusting = track(
      await startProcess({
        gateway: { id: 'gw_tls_c', bridges: [{ name: 'no-ca', url: wsUrl(b.url), token: TOKEN, reconnectInterval: 100 }] },
        channels: [{ name: 'l', provider: 'mock', models: ['l1'] }],
      }),
    );
    const row = await waitFor(async () => (await peers(untrusting.url)).find((p) => p.lastError), 'a TLS error on the untrusting gateway');
    expect(row.lastError).toMatch(/TLS: the peer's certificate is not trusted/);
    expect(row.state).not.toBe('open');
    expect(await modelIds(untrusting.url)).not.toContain('secure-model');
  });
});
