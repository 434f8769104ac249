/**
 * A peer's session offers are bounded like its other requests (docs/bridge-protocol.md, docs/sessions.md): an
 * offer counts against `limits.maxInflightPerPeer` while it is served (past it: OVERLOADED), and one peer cannot
 * leave more than MAX_PROVISIONAL_PER_PEER provisional copies (offers it never confirmed) in the store (past it:
 * TRANSFER_REJECTED). A raw peer plays the sender that offers and never commits; a gateway plays the sender whose
 * transfer meets the in-flight limit (it fails with overloaded, retryable, and the session stays).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { newSession } from '../../src/sessions/model.js';
import { adminGet, cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'transfer-limits-bridge-token-1618';
const ADMIN = 'transfer-limits-admin-token-1414';
const PEER = 'gw_offerer';
/** the documented bound (docs/sessions.md) */
const MAX_PROVISIONAL = 64;
let gw: Gateway;

beforeAll(async () => {
  gw = await startInProcess({
    gateway: {
      id: 'gw_taker',
      name: 'taker',
      admin: { token: ADMIN },
      bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true, shareChannels: ['slow'], limits: { maxInflightPerPeer: 1 } },
    },
    // the forward that holds the peer's one in-flight slot: answered after this delay
    channels: [{ name: 'slow', provider: 'mock', models: ['slow-model'], options: { delayMs: 1500 } }],
  });
});

afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

interface RawPeer {
  ws: WebSocket;
  /** the first frame about `id` (a requestId or transferId) */
  answer(id: string): Promise<any>;
}

async function connect(): Promise<RawPeer> {
  const ws = new WebSocket(wsUrl(gw.url));
  const seen = new Map<string, any>();
  const waiting = new Map<string, (f: any) => void>();
  let helloOk!: (f: any) => void;
  const hello = new Promise<any>((r) => (helloOk = r));
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString());
    if (f.type === 'bridge-hello-ok') return helloOk(f);
    const id: string | undefined = f.transferId ?? f.requestId;
    if (id === undefined || seen.has(id)) return;
    seen.set(id, f);
    waiting.get(id)?.(f);
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId: PEER,
      gatewayName: 'offerer',
      version: '1.0',
      token: TOKEN,
      capabilities: { shareChannels: false, acceptSessions: true, loadBalance: false },
      sharedChannels: [],
    }),
  );
  expect(await hello).toMatchObject({ type: 'bridge-hello-ok' });
  return {
    ws,
    answer: (id) => (seen.has(id) ? Promise.resolve(seen.get(id)) : new Promise((r) => waiting.set(id, r))),
  };
}

/** Offers a session the peer owns; resolves with the receiver's answer (transfer-ok or bridge-error). */
function offer(p: RawPeer, n: number, attempt = 1): Promise<any> {
  const s = newSession({
    id: `s-offered-${n}`,
    kind: 'chat',
    ownerGatewayId: PEER,
    target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'slow-model' },
  });
  const transferId = `xfer_limits_${n}_${attempt}`;
  p.ws.send(JSON.stringify({ type: 'bridge-session-transfer', transferId, session: { ...s, owner: PEER } }));
  return p.answer(transferId);
}

describe("a peer's session offers", () => {
  let peer: RawPeer;
  beforeAll(async () => {
    peer = await connect();
  });
  afterAll(() => peer?.ws.terminate());

  it('count against maxInflightPerPeer like its other requests: OVERLOADED while a forward holds the one slot', async () => {
    peer.ws.send(
      JSON.stringify({
        type: 'bridge-forward',
        requestId: 'fwd-1',
        targetChannel: 'slow',
        payload: { model: 'slow-model', messages: [{ role: 'user', content: 'hold' }] },
      }),
    );
    await waitFor(async () => (await adminGet(gw.url, '/admin/bridges', ADMIN)).peers.find((p: any) => p.inflight.in === 1), 'the forward in flight');
    const refused = await offer(peer, 0);
    expect(refused).toMatchObject({ type: 'bridge-error', code: 'OVERLOADED', retryable: true });
    expect(refused.message).toMatch(/maxInflightPerPeer|limit 1/);
    expect(await gw.store.get('s-offered-0')).toBeUndefined();
    // once the forward is answered, the same offer is taken
    expect(await peer.answer('fwd-1')).toMatchObject({ type: 'bridge-response' });
    expect(await offer(peer, 0, 2)).toMatchObject({ type: 'bridge-session-transfer-ok', sessionId: 's-offered-0' });
  });

  it('leave at most the documented number of provisional copies; the next is TRANSFER_REJECTED, nothing stored', async () => {
    // s-offered-0 is one already (never confirmed); one at a time, as the in-flight limit is 1
    for (let n = 1; n < MAX_PROVISIONAL; n++) expect(await offer(peer, n)).toMatchObject({ type: 'bridge-session-transfer-ok' });
    const refused = await offer(peer, MAX_PROVISIONAL);
    expect(refused).toMatchObject({ type: 'bridge-error', code: 'TRANSFER_REJECTED', retryable: false });
    expect(refused.message).toMatch(/64 .*not confirmed|not confirmed.*64/);
    expect(await gw.store.get(`s-offered-${MAX_PROVISIONAL}`)).toBeUndefined();
    expect((await gw.store.list()).length).toBe(MAX_PROVISIONAL);
    // an offer of a session it already left here replaces its copy (not a new one): still taken
    expect(await offer(peer, 5, 2)).toMatchObject({ type: 'bridge-session-transfer-ok', sessionId: 's-offered-5' });
    // a copy that is settled (here: deleted by an operator) makes room again
    await gw.store.delete('s-offered-7');
    expect(await offer(peer, MAX_PROVISIONAL, 2)).toMatchObject({ type: 'bridge-session-transfer-ok' });
  });
});

describe('a transfer to a peer serving its in-flight limit of our requests', () => {
  const ADMIN_A = 'transfer-limits-admin-a-2236';
  let receiver: Gateway;
  let sender: Gateway;
  beforeAll(async () => {
    receiver = await startInProcess({
      gateway: {
        id: 'gw_busy_b',
        name: 'busy',
        bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true, shareChannels: ['slow'], limits: { maxInflightPerPeer: 1 } },
      },
      channels: [{ name: 'slow', provider: 'mock', models: ['slow-model'], options: { delayMs: 1500 } }],
    });
    sender = await startInProcess({
      gateway: { id: 'gw_busy_a', admin: { token: ADMIN_A }, bridges: [{ name: 'busy', url: wsUrl(receiver.url), token: TOKEN }] },
      channels: [],
    });
    await waitFor(async () => (await adminGet(sender.url, '/admin/bridges', ADMIN_A)).peers[0]?.state === 'open', 'A→B link');
  });
  afterAll(async () => {
    await sender?.close();
    await receiver?.close();
  });

  it('fails with overloaded (503, retryable); the session stays with the sender, and moves once the slot is free', async () => {
    await sender.store.create(
      newSession({
        id: 's-busy',
        kind: 'chat',
        ownerGatewayId: 'gw_busy_a',
        target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'slow-model' },
      }),
    );
    // a request of A's client takes B's one slot for A
    const held = fetch(`${sender.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'slow-model', messages: [{ role: 'user', content: 'hold' }] }),
    });
    await waitFor(async () => (await adminGet(receiver.url, '/admin/bridges')).peers.find((p: any) => p.inflight.in === 1), 'the forward in flight on B');
    const transfer = () =>
      fetch(`${sender.url}/admin/sessions/s-busy/transfer`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN_A}` },
        body: JSON.stringify({ to: 'busy' }),
      });
    const refused = await transfer();
    const body = (await refused.json()) as { error: { code: string; message: string } };
    expect(refused.status, JSON.stringify(body)).toBe(503);
    expect(body.error).toMatchObject({ code: 'overloaded' });
    expect(body.error.message).toMatch(/maxInflightPerPeer|limit 1/);
    expect(await sender.store.get('s-busy')).toMatchObject({ status: 'active', ownerGatewayId: 'gw_busy_a' });
    expect(await receiver.store.get('s-busy')).toBeUndefined();
    expect((await held).status).toBe(200);
    const moved = await transfer();
    expect(moved.status, await moved.clone().text()).toBe(200);
    expect(await sender.store.get('s-busy')).toMatchObject({ status: 'moved', movedTo: 'gw_busy_b' });
  });
});
