/**
 * A `gateway.bridge.allowedTokens` entry a reload removes is refused on the inbound bridge links already open with
 * it, not only at the next handshake: the link was authorised once, at its hello, and went on serving forwards of the
 * shared channels with a token the operator had revoked (fail open). And the peer ids bound to the removed token are
 * unbound, so a peer moved to a token that is accepted comes back without a restart of the responder (before, its id
 * stayed bound to the revoked token: GATEWAY_ID_BOUND for as long as the responder ran). Real processes, real file:
 * the link closes with 4401 at the reload (the stream on it is cut, visibly), the dialler stops retrying, and once
 * the requesting side's bridge names the new token, the link opens again and serves.
 */
import { writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../../src/util/gateway-process.js';
import { adminGet, cleanupDirs, readAll, slowClient, startProcess, waitFor, wsUrl } from '../helpers/env.js';

const OLD = 'bridge-revoke-old-token-5d2e';
const NEW = 'bridge-revoke-new-token-8c1f';
const ADMIN = 'bridge-revoke-admin-9a4b';
let a: GatewayProcess & { configPath: string };
let b: GatewayProcess & { configPath: string };

const bConfig = (token: string, enabled = true) => ({
  gateway: { id: 'gw_rvb', name: 'datacenter', admin: { token: ADMIN }, bridge: { enabled, allowedTokens: [token], shareChannels: ['gpu'] } },
  channels: [{ name: 'gpu', provider: 'mock', models: ['llama'], options: { chunkDelayMs: 100, chunks: 100 } }],
  store: { kind: 'sqlite', path: './data/b.db' },
});
const aConfig = (token: string) => ({
  gateway: {
    id: 'gw_rva',
    name: 'office',
    admin: { token: ADMIN },
    routing: { retries: 0 },
    bridges: [{ name: 'dc', url: wsUrl(b.url), token, shareChannels: false, reconnectInterval: 100 }],
  },
  channels: [],
  store: { kind: 'sqlite', path: './data/a.db' },
});

async function reload(gw: GatewayProcess): Promise<{ status: number; body: any }> {
  const res = await fetch(`${gw.url}/admin/config/reload`, { method: 'POST', headers: { authorization: `Bearer ${ADMIN}` } });
  return { status: res.status, body: await res.json() };
}
const peersOf = async (gw: GatewayProcess) => (await adminGet(gw.url, '/admin/bridges', ADMIN)).peers as any[];

beforeAll(async () => {
  b = await startProcess(bConfig(OLD));
  a = await startProcess(aConfig(OLD));
  await waitFor(async () => (await peersOf(a)).find((p) => p.state === 'open' && p.sharedWithUs.includes('gpu')), 'bridge office→datacenter open');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a bridge token removed by a reload', () => {
  it('closes the inbound links opened with it, and a peer moved to the new token comes back', { timeout: 60_000 }, async () => {
    // a stream in flight over the link (100 chunks, 100 ms apart: it outlives the reload)
    const res = await slowClient(a.url, 'llama', 'a long answer');
    expect(res.statusCode).toBe(200);
    const events = readAll(res);
    await waitFor(async () => (await peersOf(b)).find((p) => p.direction === 'inbound' && p.inflight.in > 0), 'the stream in flight on the link');

    writeFileSync(b.configPath, JSON.stringify(bConfig(NEW)));
    const r = await reload(b);
    expect(r.status).toBe(200);
    expect(r.body.applied).toContain('bridge link office closed (its token is no longer in gateway.bridge.allowedTokens)');
    expect(JSON.stringify(r.body)).not.toContain(OLD);
    expect(JSON.stringify(r.body)).not.toContain(NEW);

    // the link is gone on both sides at once, and the dialler does not retry with the revoked token
    await waitFor(async () => (await peersOf(b)).length === 0, 'no inbound link left on datacenter');
    const dc = await waitFor(async () => (await peersOf(a)).find((p) => p.name === 'dc' && p.state === 'failed'), 'office: bridge dc failed');
    expect(dc.lastError).toMatch(/4401/);
    // the stream on the link did not end as a success
    const text = (await events).join('\n');
    expect(text).toMatch(/peer_unavailable/);
    expect(text).not.toMatch(/\[DONE\][\s\S]*\[DONE\]/);

    // the office moves to the new token: its link opens again (its id is no longer bound to the revoked token)
    writeFileSync(a.configPath, JSON.stringify(aConfig(NEW)));
    expect((await reload(a)).status).toBe(200);
    await waitFor(async () => (await peersOf(a)).find((p) => p.name === 'dc' && p.state === 'open' && p.sharedWithUs.includes('gpu')), 'bridge dc open again');
    const again = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], stream: false }),
    });
    expect(again.status).toBe(200);
    expect(again.headers.get('x-switchyard-peer')).toBe('dc');
  });

  it('inbound bridges disabled by a reload: every inbound link closes (4401), not only the next handshake', { timeout: 60_000 }, async () => {
    await waitFor(async () => (await peersOf(b)).find((p) => p.direction === 'inbound' && p.state === 'open'), 'the inbound link open on datacenter');
    writeFileSync(b.configPath, JSON.stringify(bConfig(NEW, false)));
    const r = await reload(b);
    expect(r.status).toBe(200);
    expect(r.body.applied).toContain('bridge link office closed (inbound bridges are disabled: gateway.bridge.enabled is false)');
    await waitFor(async () => (await peersOf(b)).length === 0, 'no inbound link left on datacenter');
    const dc = await waitFor(async () => (await peersOf(a)).find((p) => p.name === 'dc' && p.state === 'failed'), 'office: bridge dc failed');
    expect(dc.lastError).toMatch(/4401/);
    const after = await fetch(`${a.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'llama', messages: [{ role: 'user', content: 'hi' }], stream: false }),
    });
    expect(after.status).not.toBe(200);
  });
});
