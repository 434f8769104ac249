/**
 * Answers of another kind of request. A forward answered with the wrong one of its own frames (a bridge-response
 * to a stream, a bridge-stream to a plain request) fails at once as a bad answer and the peer is told to stop; an
 * agent-task call answered with a bridge-response, bridge-stream or bridge-stream-end (or a
 * bridge-session-transfer-ok naming its id) was ignored instead, and nothing else would ever settle it: the call
 * waited as long as the link lasted (an agent-task call has no timeout of its own). It now fails the same way
 * (UPSTREAM_BAD_RESPONSE, naming the frame), and the peer gets bridge-cancel for it.
 *
 * The other way round, a forward answered with a bridge-rpc-event or bridge-rpc-result fails the same way.
 *
 * A raw 1.0 initiator dials an in-process gateway; the gateway calls it (`link.rpc`, `link.forwardChat`), and it
 * answers each request with the frame the test names.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { Abort } from '../../src/util/abort.js';
import { GatewayError } from '../../src/wire/errors.js';
import { helloFrame, peerCompletion, type RawFrame } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startGw, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'wrong-kind-answers-token-14142';
const PEER = 'gw_wrong_kind';

let gw: (Gateway & { logs: string[] }) | undefined;
let ws: WebSocket | undefined;
const frames: RawFrame[] = [];
/** the frame the peer answers a bridge-rpc with */
let answer: (requestId: string) => Record<string, unknown>;

beforeAll(async () => {
  gw = await startGw({
    gateway: { id: 'gw_wrong_kind_caller', bridge: { enabled: true, allowedTokens: [TOKEN] } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
  ws = new WebSocket(wsUrl(gw.url));
  ws.on('message', (d) => {
    const f = JSON.parse(String(d)) as RawFrame;
    frames.push(f);
    if (f.type === 'bridge-ping') ws!.send(JSON.stringify({ type: 'bridge-pong', ts: f.ts }));
    if (f.type === 'bridge-rpc' || f.type === 'bridge-forward') ws!.send(JSON.stringify(answer(f.requestId!)));
  });
  await new Promise((r) => ws!.once('open', r));
  ws.send(helloFrame(PEER, TOKEN));
  await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'the hello-ok');
});

afterAll(async () => {
  ws?.terminate();
  await gw?.close();
  cleanupDirs();
});

const chunk = {
  id: 'c1',
  object: 'chat.completion.chunk',
  created: 1,
  model: 'mock-1',
  choices: [{ index: 0, delta: { content: 'hi' }, finish_reason: null }],
};

const wrongAnswers: Array<[string, (requestId: string) => Record<string, unknown>]> = [
  ['bridge-response', (requestId) => ({ type: 'bridge-response', requestId, payload: peerCompletion('mock-1') })],
  ['bridge-stream', (requestId) => ({ type: 'bridge-stream', requestId, chunk })],
  ['bridge-stream-end', (requestId) => ({ type: 'bridge-stream-end', requestId })],
  ['bridge-session-transfer-ok', (requestId) => ({ type: 'bridge-session-transfer-ok', transferId: requestId, sessionId: 's-1' })],
];

describe('an agent-task call answered with a frame of another kind of request', () => {
  it.each(wrongAnswers)('%s fails the call at once as a bad answer, and the peer is told to stop', async (type, frame) => {
    answer = frame;
    const from = frames.length;
    const link = gw!.mesh.resolvePeer(PEER)!;
    const call = link.rpc('session.start', { sessionId: 's-1' }, { hops: [], onEvent: () => undefined }).then(
      (outcome) => ({ outcome }),
      (err: unknown) => ({ err }),
    );
    const settled = await Promise.race([call, new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000).unref())]);
    expect(settled).toMatchObject({ err: expect.any(GatewayError) });
    const err = (settled as { err: GatewayError }).err;
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toContain(`answered an agent-task call with ${type}`);
    const rpc = frames.slice(from).find((f) => f.type === 'bridge-rpc')!;
    await waitFor(() => frames.slice(from).find((f) => f.type === 'bridge-cancel' && f.requestId === rpc.requestId), 'the bridge-cancel');
    // nothing else fails: the link stays up and a call answered properly still settles
    answer = (requestId) => ({ type: 'bridge-rpc-result', requestId, result: { ok: true } });
    await expect(link.rpc('session.start', {}, { hops: [], onEvent: () => undefined })).resolves.toEqual({ result: { ok: true } });
    expect(link.open).toBe(true);
  });
});

describe('a forward answered with a frame of an agent-task call', () => {
  it.each([
    ['bridge-rpc-event', (requestId: string) => ({ type: 'bridge-rpc-event', requestId, method: 'session.update', params: {} })],
    ['bridge-rpc-result', (requestId: string) => ({ type: 'bridge-rpc-result', requestId, result: { ok: true } })],
  ])('%s fails the forward at once as a bad answer, and the peer is told to stop', async (type, frame) => {
    answer = frame;
    const from = frames.length;
    const link = gw!.mesh.resolvePeer(PEER)!;
    const req = { model: 'mock-1', messages: [{ role: 'user' as const, content: 'hi' }] };
    const forward = link.forwardChat('up', req, { signal: new Abort().signal, hops: [], deadline: Date.now() + 60_000 }).then(
      (outcome) => ({ outcome }),
      (err: unknown) => ({ err }),
    );
    const settled = await Promise.race([forward, new Promise((r) => setTimeout(() => r('still waiting after 5 s'), 5000).unref())]);
    expect(settled).toMatchObject({ err: expect.any(GatewayError) });
    const err = (settled as { err: GatewayError }).err;
    expect(err.code).toBe('UPSTREAM_BAD_RESPONSE');
    expect(err.message).toContain(`answered a forward with ${type}`);
    const fwd = frames.slice(from).find((f) => f.type === 'bridge-forward')!;
    await waitFor(() => frames.slice(from).find((f) => f.type === 'bridge-cancel' && f.requestId === fwd.requestId), 'the bridge-cancel');
    expect(link.open).toBe(true);
  });
});
