/**
 * `bridge.session.status` answers any authenticated peer about any session id (docs/bridge-protocol.md, Session
 * transfer). While this gateway had an offer of the session open, the answer carried the offer's `transferId` to
 * whichever peer asked, not only to the peer the offer was made to: any token holder could read the id of a
 * transfer to another gateway. The commit checks the asking peer anyway, but the id is not another peer's to see.
 * Now only the peer the offer is for gets it; any other peer is told `{ owner: "me" }` and nothing more.
 *
 * Real parts: an in-process gateway on port 0 and two raw inbound peers over real WebSockets. `gw_taker_peer`
 * accepts sessions and never answers the offer, so it stays open; `gw_other_peer` asks about the session too.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { newSession } from '../../src/sessions/model.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'status-transfer-id-token-3301';
const SELF = 'gw_status_owner';
const SESSION = 's-offered';
let gw: Gateway | undefined;
const sockets: WebSocket[] = [];

interface Peer {
  ws: WebSocket;
  frames: Array<Record<string, any>>;
}

async function peer(id: string, acceptSessions: boolean): Promise<Peer> {
  const ws = new WebSocket(wsUrl(gw!.url));
  sockets.push(ws);
  const frames: Array<Record<string, any>> = [];
  ws.on('message', (d) => {
    const f = JSON.parse(String(d)) as Record<string, any>;
    frames.push(f);
    if (f.type === 'bridge-ping') ws.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
  });
  await new Promise((r) => ws.once('open', r));
  ws.send(helloFrame(id, TOKEN, { capabilities: { shareChannels: false, acceptSessions, loadBalance: false } }));
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), `${id}'s hello-ok`);
  return { ws, frames };
}

/** Asks the gateway bridge.session.status about SESSION as `p`; resolves with the call's result. */
async function status(p: Peer, requestId: string): Promise<Record<string, unknown>> {
  p.ws.send(JSON.stringify({ type: 'bridge-rpc', requestId, method: 'bridge.session.status', params: { sessionId: SESSION } }));
  const answer = await waitFor(() => p.frames.find((f) => f.requestId === requestId), `the answer to ${requestId}`);
  expect(answer.type).toBe('bridge-rpc-result');
  return answer.result as Record<string, unknown>;
}

let taker: Peer;
let other: Peer;
let transferId: string;

beforeAll(async () => {
  gw = await startInProcess({
    gateway: { id: SELF, bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  taker = await peer('gw_taker_peer', true);
  other = await peer('gw_other_peer', false);
  await gw.store.create(
    newSession({
      id: SESSION,
      kind: 'chat',
      ownerGatewayId: SELF,
      target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
    }),
  );
  // the offer stays open: the taker never answers it (the transfer waits up to its timeout)
  void gw.mesh.transfers!.transfer(SESSION, 'gw_taker_peer', { timeoutMs: 60_000 }).catch(() => undefined);
  const offer = await waitFor(() => taker.frames.find((f) => f.type === 'bridge-session-transfer'), 'the offer');
  transferId = offer.transferId as string;
  expect(transferId).toMatch(/^xfer/);
});

afterAll(async () => {
  for (const ws of sockets) ws.terminate();
  await gw?.close();
  cleanupDirs();
});

describe('bridge.session.status while an offer of the session is open', () => {
  it('tells a peer the offer is not for that this gateway owns the session, without the transferId', async () => {
    const answer = await status(other, 'st_other_1');
    expect(answer).toEqual({ owner: 'me' });
    expect(JSON.stringify(other.frames)).not.toContain(transferId);
  });

  it('tells the peer the offer is for the transferId of its offer', async () => {
    expect(await status(taker, 'st_taker_1')).toEqual({ owner: 'me', transferId });
  });
});
