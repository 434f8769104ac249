/**
 * An `acp.tokens` entry a reload removes is refused on the `/acp` WebSockets already open with it, not only on new
 * requests: the socket was authorised once, at its upgrade, and went on serving calls (sessions, turns) with a token
 * the operator had revoked, while `/acp/rpc` refused it at once. Real process, real file: a socket that calls gets
 * UNAUTHORIZED for its call and is closed (1008); an idle one is closed at its next ping; a socket opened with the
 * new token works.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';

const OLD = 'acp-ws-old-token-7e1d';
const NEW = 'acp-ws-new-token-3a9c';
let gw: GatewayProcess & { configPath: string };

const config = (token: string) => ({
  gateway: { id: 'gw_acpws', port: 0 },
  channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  acp: { tokens: [token] },
  store: { kind: 'sqlite', path: './data/x.db' },
});

beforeAll(async () => {
  gw = await startProcess(config(OLD));
});

afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

async function open(token: string): Promise<WebSocket> {
  const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${token}` } });
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return ws;
}

function call(ws: WebSocket, id: number): Promise<any> {
  return new Promise((resolve) => {
    ws.once('message', (d) => resolve(JSON.parse(String(d))));
    ws.send(JSON.stringify({ jsonrpc: '2.0', id, method: 'acp.capabilities', params: {} }));
  });
}

const closed = (ws: WebSocket) =>
  new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, r) => resolve({ code, reason: String(r) })));

describe('an acp token removed by a reload', () => {
  it('is refused on the sockets already open with it', { timeout: 60_000 }, async () => {
    const calling = await open(OLD);
    const idle = await open(OLD);
    expect((await call(calling, 1)).result).toBeDefined();
    const idleClosed = closed(idle);

    writeFileSync(gw.configPath, JSON.stringify(config(NEW)));
    const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST' });
    expect(res.status).toBe(200);

    const callingClosed = closed(calling);
    const refused = await call(calling, 2);
    expect(refused).toMatchObject({ id: 2, error: { data: { code: 'UNAUTHORIZED' } } });
    expect(refused.result).toBeUndefined();
    expect(await callingClosed).toEqual({ code: 1008, reason: 'token no longer accepted' });
    // a socket that sends nothing is closed at its next ping (every 20 s)
    expect(await idleClosed).toEqual({ code: 1008, reason: 'token no longer accepted' });

    const fresh = await open(NEW);
    expect((await call(fresh, 3)).result).toBeDefined();
    fresh.close();
  });
});
