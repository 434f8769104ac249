/**
 * A peer this gateway dials is authenticated by the URL it dials; an inbound hello only by a token any of its
 * holders may present. So an inbound hello claiming the id of a dialled peer never stands in for it
 * (docs/bridge-protocol.md "Peer identity"): with real processes, a raw inbound peer holding A's token claims
 * B's id before A dials B (accepted: nothing contradicts it yet), is replaced by A's dialled link to the real B,
 * and a second claim while that link is open is refused with DUPLICATE_PEER; A's requests reach the real B.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { adminGet, call, chatBody, cleanupDirs, startProcess, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';

const B_TOKEN = 'dialled-b-token-5a7c9e';
const A_INBOUND = 'a-inbound-token-3d5f7b';
const ADMIN = 'dialled-admin-token-8e6f4a';
let a: GatewayProcess;
let b: GatewayProcess;

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_real_b', name: 'datacenter', bridge: { enabled: true, allowedTokens: [B_TOKEN], shareChannels: ['gpu'] } },
    channels: [{ name: 'gpu', provider: 'mock', models: ['b-model'] }],
  });
  // A's id sorts after B's: the rule before this one let the inbound link to the smaller id win
  a = await startProcess({
    gateway: { id: 'gw_zz_a', name: 'office', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [A_INBOUND] } },
    channels: [{ name: 'own', provider: 'mock', models: ['a-model'] }],
  });
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

/** A raw inbound peer on A claiming `gatewayId`: its first reply, and a promise of its close code. */
async function claim(gatewayId: string): Promise<{ ws: WebSocket; first: any; closed: Promise<number> }> {
  const ws = new WebSocket(wsUrl(a.url));
  const frames: any[] = [];
  ws.on('message', (d) => frames.push(JSON.parse(d.toString())));
  const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
  await new Promise((r) => ws.once('open', r));
  ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId,
      gatewayName: 'datacenter',
      version: '1.0',
      token: A_INBOUND,
      capabilities: { shareChannels: true, acceptSessions: false, loadBalance: false },
      sharedChannels: [{ name: 'gpu', provider: 'mock', models: ['b-model'] }],
    }),
  );
  const first = await waitFor(() => frames[0], 'a reply to the hello');
  return { ws, first, closed };
}

const peers = async () => (await adminGet<{ peers: Array<{ id: string | null; direction: string; state: string }> }>(a.url, '/admin/bridges', ADMIN)).peers;

describe('an inbound hello never stands in for a peer this gateway dials', () => {
  it('the dialled link replaces an inbound one claiming its id; a claim while it is open is refused; requests reach the real peer', async () => {
    const early = await claim('gw_real_b');
    expect(early.first.type).toBe('bridge-hello-ok');
    await waitFor(async () => (await peers()).find((p) => p.id === 'gw_real_b' && p.direction === 'inbound' && p.state === 'open'), 'the claim registered');

    const res = await fetch(`${a.url}/admin/bridges`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: wsUrl(b.url), token: B_TOKEN, name: 'datacenter-dialled' }),
    });
    expect(res.status).toBeLessThan(300);
    expect(await early.closed).toBe(4409);
    await waitFor(async () => (await peers()).find((p) => p.id === 'gw_real_b' && p.direction === 'outbound' && p.state === 'open'), 'A→B open');

    const late = await claim('gw_real_b');
    expect(late.first).toMatchObject({ type: 'bridge-error', code: 'DUPLICATE_PEER' });
    expect(await late.closed).toBe(4409);

    const rows = await peers();
    expect(rows.filter((p) => p.id === 'gw_real_b')).toEqual([expect.objectContaining({ direction: 'outbound', state: 'open' })]);
    const r = await call(a, '/v1/chat/completions', { body: chatBody('b-model', 'who answers?') });
    expect(r.status).toBe(200);
    expect(r.headers.get('x-switchyard-peer')).toBe('datacenter-dialled');
    expect(r.json.choices[0].message.content).toBe('[mock b-model] You said: who answers?');
  });
});
