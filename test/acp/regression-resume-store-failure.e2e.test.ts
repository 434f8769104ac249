/**
 * A WebSocket resume (`GET /acp?sessionId=&afterSeq=`) that fails for another reason than FORBIDDEN or
 * UPDATE_LOG_TRUNCATED (here: the session store cannot be read) was only logged: the client got nothing, no error
 * and no close, and waited on a silent socket. It now gets the error envelope with its `data.code`, then close
 * 1011. Real gateway process on a real redis-server, which is killed before the resume.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { acpRpc, startProcess, waitFor, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';

const ACP = 'resume-store-failure-acp-token-3f90';
const started = stopAfterAll();
let redis: RedisServer;
let gw: GatewayProcess;

beforeAll(async () => {
  redis = await startRedis();
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_resume_store_failure' },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: { tokens: [ACP], gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }] },
      store: { kind: 'redis', url: redis.url },
    }),
  );
}, 60_000);

afterAll(async () => {
  await redis?.stop();
});

describe('a WebSocket resume the gateway cannot serve', () => {
  it('gets the error envelope with its code, then close 1011', async () => {
    const sessionId = 'resume-store-gone';
    expect((await acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', executionTarget: 'gateway' })).result).toMatchObject({
      status: 'completed',
    });
    await redis.kill();
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=${sessionId}&afterSeq=0`, { headers: { authorization: `Bearer ${ACP}` } });
    const messages: any[] = [];
    let closed: number | undefined;
    ws.on('message', (d) => messages.push(JSON.parse(d.toString())));
    ws.on('close', (code) => (closed = code));
    // on the old code: nothing comes, and the socket stays open
    const envelope = await waitFor(() => messages.find((m) => m.ok === false), 'the error envelope', 20_000);
    // a store that cannot be read is an internal error (its cause is logged, never sent)
    expect(envelope).toEqual({
      jsonrpc: '2.0',
      id: null,
      type: 'res',
      ok: false,
      error: { code: -32603, message: 'internal error', data: { code: 'INTERNAL' } },
    });
    expect(await waitFor(() => closed, 'the close')).toBe(1011);
    expect(gw.logs()).toContain('acp resume failed');
  }, 60_000);
});
