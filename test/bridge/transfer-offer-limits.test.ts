/**
 * A peer's session offers are bounded like its other requests (docs/bridge-protocol.md, docs/sessions.md): an
 * offer counts against `limits.maxInflightPerPeer` while it is served (past it: OVERLOADED), and one peer cannot
 * leave more than MAX_PROVISIONAL_PER_PEER provisional copies (offers it never confirmed) in the store (past it:
 * TRANSFER_REJECTED). A raw peer plays the sender that offers and never commits.
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
