/**
 * Regression: an `/acp` WebSocket opened with a virtual key kept working after the key was disabled, rotated or
 * expired: the key was checked at the upgrade only, so new `session.start` and prompts on that socket were still
 * accepted (and the sessions they started billed to a key its operator had just turned off). The socket now checks
 * its key again on every call, against the loaded keys (no store call), as it checks an `acp.tokens` entry a
 * reload removed: the call is answered UNAUTHORIZED (-32001, its id) and the socket closes with 1008.
 *
 * An in-process gateway (SQLite store) with a gateway chat task over the mock channel.
 */
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, startGw } from '../helpers/env.js';
import { admin, createKey } from './helpers.js';

const ACP = 'acp-ws-key-revoked-token-5d1e';
const chatTask = { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'chat' };
let gw: Gateway & { logs: string[] };

beforeAll(async () => {
  gw = await startGw({
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: { tokens: [ACP], gateways: [{ id: 'chat', label: 'Chat', kind: 'channels', model: 'mock-1' }] },
  });
}, 30_000);

const sockets: WebSocket[] = [];

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await gw?.close();
  cleanupDirs();
});

interface Socket {
  call(id: number, method: string, params: Record<string, unknown>): Promise<any>;
  closed: Promise<{ code: number; reason: string }>;
}

/** An `/acp` socket opened with `secret`: one call at a time, answered by the envelope with its id. */
function open(secret: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${secret}` } });
    sockets.push(ws);
    const waiting = new Map<number, (env: any) => void>();
    ws.on('message', (data) => {
      const env = JSON.parse(String(data));
      if (typeof env.id === 'number') waiting.get(env.id)?.(env);
    });
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.once('open', () =>
      resolve({
        call: (id, method, params) =>
          new Promise((r) => {
            waiting.set(id, r);
            ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
          }),
        closed,
      }),
    );
    ws.once('error', reject);
  });
}

const start = (s: Socket, id: number, sessionId: string) => s.call(id, 'session.start', { sessionId, taskPrompt: 'hi', routing: chatTask });

describe('an /acp WebSocket whose key changes while it is open', () => {
  it('a key disabled since the upgrade: the next session.start is refused UNAUTHORIZED and the socket closes 1008', async () => {
    const k = await createKey(gw.url, { name: 'ws-disabled', acp: true });
    const s = await open(k.secret);
    const first = await start(s, 1, 'ws-disabled-1');
    expect(first.error).toBeUndefined();
    expect(first.result).toMatchObject({ success: true });

    expect((await admin(gw.url, 'POST', '/admin/keys/ws-disabled/disable')).status).toBe(200);
    const refused = await start(s, 2, 'ws-disabled-2');
    expect(refused).toMatchObject({ id: 2, ok: false, error: { code: -32001, data: { code: 'UNAUTHORIZED' } } });
    expect(refused.error.message).toMatch(/^API key sy-.{4}… is disabled$/);
    expect(refused.error.message).not.toContain(k.secret);
    expect(await s.closed).toEqual({ code: 1008, reason: 'key no longer accepted' });
    // nothing was started for the refused call
    expect((await admin(gw.url, 'GET', '/admin/sessions/ws-disabled-2')).status).toBe(404);
  });

  it('a key rotated since the upgrade: the old secret on the open socket is refused, and the socket closes 1008', async () => {
    const k = await createKey(gw.url, { name: 'ws-rotated', acp: true });
    const s = await open(k.secret);
    expect((await start(s, 1, 'ws-rotated-1')).result).toMatchObject({ success: true });

    const rotated = await admin(gw.url, 'POST', '/admin/keys/ws-rotated/rotate');
    expect(rotated.status).toBe(200);
    const refused = await s.call(2, 'session.message', { sessionId: 'ws-rotated-1', taskPrompt: 'again' });
    expect(refused).toMatchObject({ id: 2, ok: false, error: { code: -32001, data: { code: 'UNAUTHORIZED' } } });
    expect(refused.error.message).toMatch(/was rotated or no longer exists/);
    expect(await s.closed).toEqual({ code: 1008, reason: 'key no longer accepted' });

    // the new secret opens a socket that works
    const again = await open(rotated.json.secret);
    expect((await start(again, 1, 'ws-rotated-2')).result).toMatchObject({ success: true });
  });

  it('a key that is still good, and an acp.tokens entry, keep their sockets', async () => {
    const k = await createKey(gw.url, { name: 'ws-kept', acp: true });
    const other = await createKey(gw.url, { name: 'ws-other', acp: true });
    const s = await open(k.secret);
    const t = await open(ACP);
    // another key's change does not touch this socket
    expect((await admin(gw.url, 'POST', '/admin/keys/ws-other/disable')).status).toBe(200);
    expect(other.id).not.toBe(k.id);
    expect((await start(s, 1, 'ws-kept-1')).result).toMatchObject({ success: true });
    expect((await start(t, 1, 'ws-token-1')).result).toMatchObject({ success: true });
  });
});
