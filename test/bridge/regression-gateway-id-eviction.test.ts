/**
 * Regression (issue 10, item 10): any bridge-token holder could evict another peer by reusing its gatewayId
 * (a second hello replaced the first link). Now a gatewayId is bound to the token it first authenticated
 * with: a hello with that id and another token is refused (GATEWAY_ID_BOUND, close 4403) and the first
 * link stays; the same token may still replace its own link (a restarted peer).
 */
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const ALICE = 'bridge-token-alice-0123456789';
const MALLORY = 'bridge-token-mallory-9876543210';
let gw: Gateway;

interface Frame {
  type: string;
  code?: string;
  [k: string]: unknown;
}

/**
 * A raw peer: connects, says hello with `token` as `id`, records frames and the close code, and answers each
 * bridge-ping as every peer does (a link that replaces another tells the old one's peer only once its own peer
 * answered a ping: mesh.ts `retire`).
 */
async function peer(id: string, token: string) {
  const ws = new WebSocket(wsUrl(gw.url));
  const frames: Frame[] = [];
  let close: number | undefined;
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as Frame;
    frames.push(f);
    if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f['ts'], ...(f['nonce'] === undefined ? {} : { nonce: f['nonce'] }) }));
  });
  ws.on('close', (code) => (close = code));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  ws.send(helloFrame(id, token));
  const first = await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok' || f.type === 'bridge-error'), 'a handshake reply', 5000);
  return { ws, frames, first, closeCode: () => close };
}

const peerIds = async () =>
  ((await (await fetch(`${gw.url}/admin/bridges`)).json()) as { peers: Array<{ id: string; state: string }> }).peers.map((b) => `${b.id}:${b.state}`);

beforeAll(async () => {
  gw = await startInProcess({
    gateway: { id: 'gw_server', bridge: { enabled: true, allowedTokens: [ALICE, MALLORY], maxPeers: 4 } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

describe('a gatewayId belongs to the token it first connected with', () => {
  it('another token holder reusing the id is refused, and the first link stays up and answers', async () => {
    const alice = await peer('gw_alice', ALICE);
    expect(alice.first.type).toBe('bridge-hello-ok');

    const mallory = await peer('gw_alice', MALLORY);
    expect(mallory.first).toMatchObject({ type: 'bridge-error', code: 'GATEWAY_ID_BOUND', retryable: false });
    expect(JSON.stringify(mallory.frames)).not.toContain(MALLORY);
    await waitFor(() => mallory.closeCode() === 4403, 'mallory closed with 4403', 5000);

    // the first link was not replaced: still open, still served
    expect(alice.closeCode()).toBeUndefined();
    alice.ws.send(JSON.stringify({ type: 'bridge-ping', ts: 42 }));
    await waitFor(() => alice.frames.find((f) => f.type === 'bridge-pong' && f.ts === 42), 'a pong on the first link', 5000);
    expect(await peerIds()).toEqual(['gw_alice:open']);

    // the id stays bound while its owner is away: no takeover after a disconnect either
    alice.ws.close();
    await waitFor(async () => (await peerIds()).length === 0, 'the link gone', 5000);
    const again = await peer('gw_alice', MALLORY);
    expect(again.first).toMatchObject({ type: 'bridge-error', code: 'GATEWAY_ID_BOUND' });
  });

  it('the same token may replace its own link (a restarted peer), and other ids are free for other tokens', async () => {
    const first = await peer('gw_bob', MALLORY);
    expect(first.first.type).toBe('bridge-hello-ok');
    const second = await peer('gw_bob', MALLORY);
    expect(second.first.type).toBe('bridge-hello-ok');
    await waitFor(() => first.closeCode() === 4409, 'the old link replaced (4409)', 5000);
    expect(second.closeCode()).toBeUndefined();
    second.ws.close();
  });
});
