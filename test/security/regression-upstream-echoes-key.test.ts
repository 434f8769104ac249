/**
 * Regression (issue 10.1): an upstream that echoes the channel's API key (401 "Incorrect API key provided:
 * sk-…") or every request header (500) made the key reach the client, the SSE error event, the ACP result,
 * /admin/channels lastError, the session store, a bridge-error to a peer, and the logs.
 *
 * Two real gateway processes: B owns the channel (key + a header marked secret) and shares it over the
 * bridge; A dials B with a token in the URL query. Every surface is grepped for every secret.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import OpenAI from 'openai';
import { adminGet, cleanupDirs, startProcess, tmpDir, waitFor, wsUrl } from '../helpers/env.js';
import type { GatewayProcess } from '../helpers/env.js';
import { startEchoingUpstream, type EchoingUpstream } from './fakes/echoing-upstream.js';

const KEY = 'sk-live-Zq8v3Kd0pXr7mW2nB5tY9cA1eF4gH6jL';
const HEADER_SECRET = 'hdr-tenant-9f3a7c1e5b2d8046';
const BRIDGE_TOKEN = 'bridge-tok-5e8d2c9a1f7b3064';
const QUERY_TOKEN = 'qtok-77a1c9e3b5d2f846';
const ACP_TOKEN = 'acp-tok-3c7e9a1b5d2f8064';
const SECRETS = [KEY, HEADER_SECRET, BRIDGE_TOKEN, QUERY_TOKEN, ACP_TOKEN];
/** never eject the channel, never retry: every request reaches the upstream and shows its error */
const ROUTING = { retries: 0, health: { consecutiveFailures: 1000, failureRatio: 1, minRequests: 1000 } };

let up: EchoingUpstream;
let a: GatewayProcess & { dir: string };
let b: GatewayProcess & { dir: string };

function expectClean(surface: string, text: string): void {
  for (const s of SECRETS) expect(text.includes(s), `${surface} contains the secret ${s.slice(0, 8)}…:\n${text.slice(0, 2000)}`).toBe(false);
}

const chatBody = (content: string, stream = false) => JSON.stringify({ model: 'echo-model', messages: [{ role: 'user', content }], stream });
const post = (url: string, body: string) => fetch(`${url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });

beforeAll(async () => {
  up = await startEchoingUpstream();
  b = await startProcess(
    {
      gateway: { id: 'gw_sec_b', routing: ROUTING, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['echo'] } },
      channels: [
        {
          name: 'echo',
          provider: 'openai',
          baseUrl: up.baseUrl,
          apiKey: KEY,
          models: ['echo-model'],
          headers: { 'x-tenant-secret': HEADER_SECRET },
          secretHeaders: ['x-tenant-secret'],
        },
      ],
      acp: { tokens: [ACP_TOKEN], gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'echo-model' }] },
    },
    {},
    tmpDir(),
  );
  a = await startProcess(
    {
      gateway: {
        id: 'gw_sec_a',
        routing: ROUTING,
        bridges: [{ name: 'b', url: `${wsUrl(b.url)}?token=${QUERY_TOKEN}`, token: BRIDGE_TOKEN, reconnectInterval: 100 }],
      },
      channels: [],
    },
    {},
    tmpDir(),
  );
  await waitFor(
    async () =>
      (await adminGet(a.url, '/admin/bridges')).peers.some(
        (p: { state: string; sharedWithUs: string[] }) => p.state === 'open' && p.sharedWithUs.includes('echo'),
      ),
    "A to see B's channel",
  );
}, 60_000);

afterAll(async () => {
  await Promise.all([a?.stop(3000), b?.stop(3000)]);
  await up?.close();
  cleanupDirs();
});

describe('an upstream echoing the channel key and the request headers', () => {
  it('client JSON: the 401 text reaches the client without the key', async () => {
    const r = await post(b.url, chatBody('please-401'));
    const text = await r.text();
    expect(r.status).toBe(502);
    expect(text).toContain('Incorrect API key provided: [REDACTED]');
    expectClean('client JSON (401)', text);
  });

  it('client JSON: pieces of the key (its tail, its base64 form inside Basic credentials) are scrubbed too (the logs: below)', async () => {
    const r = await post(b.url, chatBody('please-401-piece'));
    const text = await r.text();
    expect(r.status).toBe(502);
    expect(text).toContain('Incorrect API key provided: [REDACTED] (sent as Basic [REDACTED])');
    for (const piece of [KEY.slice(-22), KEY.slice(-16), Buffer.from(`api:${KEY}`).toString('base64').slice(8, 40)]) expect(text).not.toContain(piece);
  });

  it('client JSON: a 500 echoing every request header shows none of the credentials', async () => {
    const r = await post(b.url, chatBody('please-500'));
    const text = await r.text();
    expect(r.status).toBe(502);
    expect(text).toContain('request headers were');
    expectClean('client JSON (500)', text);
  });

  it('the official SDK sees the scrubbed message too', async () => {
    const client = new OpenAI({ apiKey: 'unused', baseURL: `${b.url}/v1`, maxRetries: 0 });
    const err = await client.chat.completions.create({ model: 'echo-model', messages: [{ role: 'user', content: 'please-401' }] }).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(err?.message).toContain('Incorrect API key provided');
    expectClean('SDK error', String(err?.message));
  });

  it('SSE: an in-band error event naming the key ends the stream without it', async () => {
    const r = await post(b.url, chatBody('please-stream-error', true));
    const text = await r.text();
    expect(r.status).toBe(200);
    expect(text).toContain('partial');
    expect(text).toMatch(/data: \{"error":\{"message":"[^"]*stream aborted: key \[REDACTED\] was revoked/);
    expectClean('SSE error event', text);
  });

  it('/admin/channels lastError is scrubbed', async () => {
    await post(b.url, chatBody('please-401'));
    const body = await adminGet(b.url, '/admin/channels');
    const row = body.channels.find((c: { channel: string }) => c.channel === 'echo');
    expect(row.health.lastError).toContain('Incorrect API key provided');
    expectClean('/admin/channels', JSON.stringify(body));
  });

  it('ACP: the result of a channels turn and the session store hold no key', async () => {
    const res = await fetch(`${b.url}/acp/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACP_TOKEN}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: { sessionId: 's-echo-1', taskPrompt: 'please-401', routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'switchyard' } },
      }),
    });
    const text = await res.text();
    expect(text).toContain('Incorrect API key provided');
    expectClean('ACP result', text);
    // the store file (and its WAL) hold the failed turn, scrubbed
    const dataDir = join(b.dir, 'data');
    const stored = await waitFor(() => {
      const all = readdirSync(dataDir)
        .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
        .join('\n');
      return all.includes('s-echo-1') && all.includes('Incorrect API key provided') ? all : undefined;
    }, 'the failed turn to be stored');
    expectClean('session store', stored);
  });

  it('ACP: a completed turn whose answer repeats the key stores and returns it redacted', async () => {
    const res = await fetch(`${b.url}/acp/rpc`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ACP_TOKEN}` },
      body: JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: {
          sessionId: 's-echo-2',
          taskPrompt: 'please-say-key',
          routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'switchyard' },
        },
      }),
    });
    const text = await res.text();
    expect(text).toContain('the key is [REDACTED]');
    expectClean('ACP result (completed)', text);
    const dataDir = join(b.dir, 'data');
    const stored = await waitFor(() => {
      const all = readdirSync(dataDir)
        .map((f) => readFileSync(join(dataDir, f)).toString('latin1'))
        .join('\n');
      return all.includes('s-echo-2') && all.includes('the key is [REDACTED]') ? all : undefined;
    }, 'the completed turn to be stored');
    expectClean('session store (completed turn)', stored);
  });

  it('bridge: the bridge-error B sends A carries no key, and A relays none', async () => {
    for (const kind of ['please-401', 'please-500']) {
      const r = await post(a.url, chatBody(kind));
      const text = await r.text();
      expect(r.status, text).toBe(502);
      expect(r.headers.get('x-switchyard-peer') ?? text).toBeTruthy();
      expect(text).toMatch(kind === 'please-401' ? /Incorrect API key provided/ : /request headers were/);
      expectClean(`A's client JSON via the bridge (${kind})`, text);
    }
    const s = await post(a.url, chatBody('please-stream-error', true));
    const sText = await s.text();
    expect(sText).toContain('was revoked');
    expectClean("A's SSE via the bridge", sText);
    expectClean("A's /admin/channels", JSON.stringify(await adminGet(a.url, '/admin/channels')));
    expectClean("A's /admin/bridges", JSON.stringify(await adminGet(a.url, '/admin/bridges')));
  });

  it('logs: neither gateway process logged a secret, although both logged the failures', async () => {
    await waitFor(() => b.logs().includes('attempt failed') && a.logs().includes('attempt failed'), 'failed attempts to be logged');
    expect(b.logs()).toContain('Incorrect API key provided');
    expectClean("B's log", b.logs());
    expectClean("A's log", a.logs());
    // the pieces the please-401-piece upstream echoed were logged scrubbed too
    expect(b.logs()).toContain('(sent as Basic [REDACTED])');
    for (const piece of [KEY.slice(-16), Buffer.from(`api:${KEY}`).toString('base64').slice(8, 40)]) expect(b.logs()).not.toContain(piece);
    expect(up.hits['please-401']).toBeGreaterThanOrEqual(4);
  });
});
