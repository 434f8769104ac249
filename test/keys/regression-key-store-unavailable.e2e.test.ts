/**
 * Regression: while the key store could not be read (Redis down or stalled, a SQLite error), a request with a
 * virtual key the gateway had not loaded was answered `401 invalid API key`, as if the key were wrong: a client
 * told so drops a good key, and the operator sees auth failures instead of an outage. It now fails closed and says
 * so: `503 key_store_unavailable`, retryable, with `Retry-After`, in each surface's own error format (/v1 OpenAI,
 * /v1/messages Anthropic, /acp/rpc JSON-RPC, the /acp WebSocket upgrade, the task-session REST routes), and
 * nothing of the store (its address, its error) in the answer. The keys loaded before stay in force, a static
 * token still works (also one shaped like a key), and a secret the store had already said it does not know is
 * still 401.
 *
 * A gateway in this process on a real redis-server, which is killed.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { call, cleanupDirs, memoryLogger, startInProcess, within } from '../helpers/env.js';
import { ask, chat, createKey } from './helpers.js';

const STATIC = 'sy-static-client-token-shaped-like-a-key-0001';
const ACP = 'sy-static-acp-token-shaped-like-a-key-00002';
const unknownSecret = (c: string) => `sy-${c.repeat(43)}`;

let redis: RedisServer;
let gw: Gateway;
const log = memoryLogger();

beforeAll(async () => {
  redis = await startRedis();
  gw = await startInProcess(
    {
      gateway: { keys: { refreshMs: 100 }, auth: { tokens: [STATIC] } },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: { tokens: [ACP] },
      store: { kind: 'redis', url: redis.url, prefix: 'down:' },
    },
    log.logger,
  );
}, 30_000);

afterAll(async () => {
  await gw?.close();
  await redis?.stop();
  cleanupDirs();
});

function rpc(secret: string) {
  return call(gw, '/acp/rpc', {
    body: { jsonrpc: '2.0', id: 1, method: 'xworkmate.capabilities', params: {} },
    headers: { authorization: `Bearer ${secret}` },
  });
}

function messages(secret: string) {
  return call(gw, '/v1/messages', {
    body: { model: 'mock-1', max_tokens: 16, messages: [{ role: 'user', content: 'hi' }] },
    headers: { 'x-api-key': secret, 'anthropic-version': '2023-06-01' },
  });
}

/** the `/acp` upgrade's outcome: 101, or the refusal's status, Retry-After and body */
function upgrade(secret: string): Promise<{ status: number; retryAfter?: string; body?: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${secret}` } });
    ws.once('open', () => {
      ws.close();
      resolve({ status: 101 });
    });
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'], body });
        ws.terminate();
      });
    });
    ws.once('error', reject);
  });
}

/** nothing of the store in an answer: not its address, not its client's error */
function expectNoStoreDetail(text: string): void {
  expect(text).not.toContain(String(redis.port));
  expect(text).not.toContain('127.0.0.1');
  expect(text.toLowerCase()).not.toContain('redis');
  expect(text).not.toMatch(/ECONNREFUSED|MaxRetriesPerRequest|did not answer within/);
}

describe('a virtual key while the Redis key store is down', () => {
  it('is answered 503 key_store_unavailable (retryable, Retry-After) on every surface, never 401', async () => {
    const loaded = await createKey(gw.url, { name: 'loaded', acp: true });
    expect((await chat(gw.url, loaded.secret, ask('mock-1'))).status).toBe(200);
    // a secret the store said it does not know, before it went down
    const known = await chat(gw.url, unknownSecret('k'), ask('mock-1'));
    expect(known.status).toBe(401);

    await redis.kill();

    const v1 = await within(chat(gw.url, unknownSecret('a'), ask('mock-1')), 8000, '/v1 with a secret not loaded');
    expect(v1.status).toBe(503);
    expect(v1.json.error).toMatchObject({ code: 'key_store_unavailable', type: 'server_error' });
    expect(v1.headers.get('retry-after')).toBe('1');
    expectNoStoreDetail(v1.text);

    const anthropic = await within(messages(unknownSecret('b')), 8000, '/v1/messages with a secret not loaded');
    expect(anthropic.status).toBe(503);
    expect(anthropic.json).toMatchObject({ type: 'error', error: { type: 'overloaded_error', code: 'key_store_unavailable' } });
    expect(anthropic.headers.get('retry-after')).toBe('1');
    expectNoStoreDetail(anthropic.text);

    const acp = await within(rpc(unknownSecret('c')), 8000, '/acp/rpc with a secret not loaded');
    expect(acp.status).toBe(503);
    expect(acp.json).toMatchObject({ jsonrpc: '2.0', ok: false, error: { code: -32000, data: { code: 'KEY_STORE_UNAVAILABLE', retryable: true } } });
    expect(acp.headers.get('retry-after')).toBe('1');
    expectNoStoreDetail(acp.text);

    // the task-session REST routes, in the gateway's JSON error format
    const rest = await within(
      call(gw, '/api/v1/sessions/s1/events', { headers: { authorization: `Bearer ${unknownSecret('e')}` } }),
      8000,
      'the session events route with a secret not loaded',
    );
    expect(rest.status).toBe(503);
    expect(rest.json.error).toMatchObject({ code: 'key_store_unavailable', type: 'server_error' });
    expect(rest.headers.get('retry-after')).toBe('1');
    expectNoStoreDetail(rest.text);

    const ws = await within(upgrade(unknownSecret('d')), 8000, 'the /acp upgrade with a secret not loaded');
    expect(ws.status).toBe(503);
    expect(ws.retryAfter).toBe('1');
    expect(JSON.parse(ws.body!)).toMatchObject({ error: { code: -32000, data: { code: 'KEY_STORE_UNAVAILABLE' } } });
    expectNoStoreDetail(ws.body!);

    // an agent session's model request for a key not loaded here
    await expect(
      within(Promise.resolve(gw.keys.admit({ kind: 'agent', agentId: 'a', sessionId: 's', keyId: 'key_not_loaded' }, 'mock-1')), 8000, 'a session key'),
    ).rejects.toMatchObject({ code: 'KEY_STORE_UNAVAILABLE', status: 503, retryable: true });

    // what does not need the store goes on as before
    expect((await chat(gw.url, loaded.secret, ask('mock-1'))).status).toBe(200);
    expect((await rpc(loaded.secret)).status).toBe(200);
    expect((await chat(gw.url, STATIC, ask('mock-1'))).status).toBe(200);
    expect((await rpc(ACP)).status).toBe(200);
    const stillUnknown = await chat(gw.url, unknownSecret('k'), ask('mock-1'));
    expect(stillUnknown.status).toBe(401);
    expect(stillUnknown.json.error.message).toBe('invalid API key');
    // the operator is told, once, with the cause
    expect(log.lines.filter((l) => l.includes('cannot read the key store')).length).toBe(1);
  }, 60_000);
});
