/**
 * Graceful stop with `gateway.shutdown.drainSessionsTo`, real processes: A owns three sessions (one with a
 * turn still running) and is stopped with SIGTERM; the running turn completes, every session moves to B
 * before A's link closes, and the metrics on both sides count the turns and the transfers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, startProcess, waitFor, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { exitCodeOf } from '../helpers/sharing-pair.js';
import { parseProm, value } from './prom-text.js';

const BRIDGE_TOKEN = 'drain-bridge-token-9c4e';
const ADMIN = 'drain-admin-token-2a6b';
const ACP = 'drain-acp-token-8f1d';
let a: GatewayProcess;
let b: GatewayProcess;

const acp = {
  tokens: [ACP],
  gateways: [
    { id: 'fast', label: 'Fast', kind: 'channels', model: 'mock-1' },
    { id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' },
  ],
};
const channels = [
  { name: 'm', provider: 'mock', models: ['mock-1'] },
  { name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 60, chunks: 20 } },
];

async function rpc(url: string, body: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${ACP}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', ...body }),
  });
}

async function scrape(gw: GatewayProcess) {
  const res = await fetch(`${gw.url}/metrics`, { headers: { authorization: `Bearer ${ADMIN}` } });
  return parseProm(await res.text());
}

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_db', name: 'datacenter', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], acceptSessions: true } },
    channels,
    acp,
  });
  a = await startProcess({
    gateway: {
      id: 'gw_da',
      name: 'office',
      admin: { token: ADMIN },
      shutdownGraceMs: 15_000,
      shutdown: { drainSessionsTo: 'datacenter' },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE_TOKEN, shareChannels: false, reconnectInterval: 200 }],
    },
    channels,
    acp,
  });
  await waitForBridgeOpen(a.url, ADMIN);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('graceful stop with drainSessionsTo', () => {
  it('moves every open session to the peer (after the running turn ends), then stops', async () => {
    const ids = ['s-drain-1', 's-drain-2', 's-drain-3'];
    for (const sessionId of ids.slice(0, 2)) {
      const r = await rpc(a.url, {
        id: 1,
        method: 'session.start',
        params: { sessionId, taskPrompt: `hello ${sessionId}`, routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'fast' } },
      });
      expect(((await r.json()) as any).ok).toBe(true);
    }
    const started = await rpc(a.url, {
      method: 'session.start',
      params: { sessionId: ids[2], taskPrompt: 'still running at stop', routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'slowgw' } },
    });
    expect(started.status).toBe(204);
    await waitFor(
      async () => (await adminGet(a.url, '/admin/sessions?status=running', ADMIN)).sessions.some((s: any) => s.id === ids[2]),
      'the slow turn running on A',
    );
    expect(value(await scrape(a), 'switchyard_acp_turns_total', { runtime: 'gateway:fast', outcome: 'completed' })).toBe(2);

    a.kill('SIGTERM');
    const code = await exitCodeOf(a);
    expect(code).toBe(0);

    const onB = (await adminGet(b.url, '/admin/sessions', ADMIN)).sessions as Array<{
      id: string;
      owner: string;
      status: string;
      lastTurn: { status: string } | null;
    }>;
    for (const id of ids) {
      const s = onB.find((x) => x.id === id);
      expect(s, id).toBeDefined();
      expect(s!.owner).toBe('gw_db');
      expect(s!.lastTurn?.status).toBe('completed');
    }
    expect(value(await scrape(b), 'switchyard_session_transfers_total', { direction: 'in', outcome: 'accepted' })).toBe(3);
  });
});
