/**
 * A peer's answer to an internal `bridge.session.*` call that is not an object. Before a provisional copy of a
 * session (a transfer the sender has not committed) is served, the receiver asks the sender who owns it
 * (`bridge.session.status`) and reads `owner` off the answer: a `result` of null made that read throw a
 * TypeError, so the client's request failed as an internal error instead of naming the owner it could not
 * settle with. Every bridge.* call answers an object; anything else is now a failed call, like an error answer:
 * PEER_UNAVAILABLE, naming the owner (SESSION_OWNER_UNREACHABLE for the client).
 *
 * A peer that does not answer such a call at all held its caller for as long as the link lasted (the call had no
 * timeout, and the caller no way to give up on it: each request for the session added a call that waited
 * forever). A call the peer leaves unanswered for the dead-peer window (deadPeerMisses × heartbeatIntervalMs) now
 * fails the same way, and the peer is told to stop (bridge-cancel).
 *
 * A raw peer offers a session it owns, never commits it, answers the gateway's pings, and answers every
 * bridge.session.status with a `result` that is not an object, or not at all. The gateway's heartbeat is 100 ms
 * (× 3 misses: a 300 ms window).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { newSession } from '../../src/sessions/model.js';
import { GatewayError } from '../../src/wire/errors.js';
import { cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'session-status-bad-answer-token-4669';
const PEER = 'gw_bad_status';
let gw: Gateway | undefined;
let ws: WebSocket | undefined;
/** how the raw peer answers bridge.session.status (undefined: it does not) */
let answer: (requestId: string) => Record<string, unknown> | undefined;
let asked = 0;
const cancels: string[] = [];

beforeAll(async () => {
  gw = await startInProcess({
    gateway: {
      id: 'gw_status_taker',
      bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true, limits: { heartbeatIntervalMs: 100, deadPeerMisses: 3 } },
    },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  const frames: Array<Record<string, any>> = [];
  ws = new WebSocket(wsUrl(gw.url));
  ws.on('message', (d) => {
    const f = JSON.parse(String(d)) as Record<string, any>;
    frames.push(f);
    if (f.type === 'bridge-ping') ws!.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
    if (f.type === 'bridge-cancel') cancels.push(f.requestId as string);
    if (f.type === 'bridge-rpc' && f.method === 'bridge.session.status') {
      asked++;
      const a = answer(f.requestId as string);
      if (a) ws!.send(JSON.stringify({ type: 'bridge-rpc-result', requestId: f.requestId, ...a }));
    }
  });
  await new Promise((r) => ws!.once('open', r));
  ws.send(
    JSON.stringify({
      type: 'bridge-hello',
      gatewayId: PEER,
      gatewayName: 'bad-status',
      version: '1.0',
      token: TOKEN,
      capabilities: { shareChannels: false, acceptSessions: true, loadBalance: false },
      sharedChannels: [],
    }),
  );
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'the hello-ok');
  const s = newSession({
    id: 's-uncommitted',
    kind: 'chat',
    ownerGatewayId: PEER,
    target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
  });
  ws.send(JSON.stringify({ type: 'bridge-session-transfer', transferId: 'xfer_bad_status_1', session: { ...s, owner: PEER } }));
  await waitFor(() => frames.find((f) => f.transferId === 'xfer_bad_status_1'), 'the answer to the offer');
  expect(frames.find((f) => f.transferId === 'xfer_bad_status_1')).toMatchObject({ type: 'bridge-session-transfer-ok' });
});

afterAll(async () => {
  ws?.terminate();
  await gw?.close();
  cleanupDirs();
});

/** What settling the provisional copy with its sender throws. */
async function settleError(): Promise<unknown> {
  const before = asked;
  const err = await gw!.mesh.transfers!.ensureOwned('s-uncommitted').then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(asked).toBe(before + 1);
  return err;
}

describe('a peer that answers bridge.session.status with no object, or not at all', () => {
  it('a null result fails the call (PEER_UNAVAILABLE naming the owner), not a TypeError; the copy stays provisional', async () => {
    answer = () => ({ result: null });
    const err = await settleError();
    expect(err).toBeInstanceOf(GatewayError);
    expect(err).toMatchObject({ code: 'PEER_UNAVAILABLE', details: { owner: PEER } });
    expect(await gw!.store.get('s-uncommitted')).toBeDefined();
  });

  it('a result that is a string or an array fails the same way', async () => {
    for (const result of ['you', ['you']]) {
      answer = () => ({ result });
      expect(await settleError()).toMatchObject({ code: 'PEER_UNAVAILABLE', details: { owner: PEER } });
    }
  });

  it('no answer fails the call once it waited the dead-peer window, and the peer is told to stop; the link stays up', async () => {
    answer = () => undefined;
    const started = Date.now();
    const err = await Promise.race([settleError(), new Promise((r) => setTimeout(() => r('still waiting after 10 s'), 10_000).unref())]);
    expect(err).toMatchObject({ code: 'PEER_UNAVAILABLE', details: { owner: PEER } });
    expect(Date.now() - started).toBeGreaterThanOrEqual(300);
    await waitFor(() => cancels.length === 1, 'the bridge-cancel');
    expect(gw!.mesh.resolvePeer(PEER)?.open).toBe(true);
    expect(await gw!.store.get('s-uncommitted')).toBeDefined();
  });
});
