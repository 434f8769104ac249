/**
 * The internal `bridge.session.*` calls a peer sends (bridge-rpc, about transfers) are requests it asks us to
 * serve like any other (docs/bridge-protocol.md, Capacity): while one runs it counts against maxInflightPerPeer,
 * and its requestId is in flight. They were admitted by the same checks but never recorded as served, so a peer
 * could have any number of them running at once, and a second call with the id of a running one was answered
 * too (two results for one id) instead of BAD_FRAME.
 *
 * A raw peer sends four calls in one turn of the event loop (the gateway reads them in one read and dispatches
 * them before the first one's store read resolves): the same id twice, then two more, with maxInflightPerPeer 2.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Gateway } from '../../src/gateway.js';
import { helloFrame } from '../fakes/raw-bridge-peer.js';
import { cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'session-calls-token-57721';
let gw: Gateway | undefined;
let ws: WebSocket | undefined;

beforeAll(async () => {
  gw = await startInProcess({
    gateway: { id: 'gw_session_calls', bridge: { enabled: true, allowedTokens: [TOKEN], limits: { maxInflightPerPeer: 2 } } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
  });
});

afterAll(async () => {
  ws?.terminate();
  await gw?.close();
  cleanupDirs();
});

describe('bridge.session.* calls from a peer', () => {
  it('count as served while they run: a second call with a running id gets BAD_FRAME, one past maxInflightPerPeer OVERLOADED', async () => {
    const frames: Array<Record<string, any>> = [];
    ws = new WebSocket(wsUrl(gw!.url));
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, any>));
    await new Promise((r) => ws!.once('open', r));
    ws.send(helloFrame('gw_session_caller', TOKEN));
    await waitFor(() => frames.find((f) => f.type === 'bridge-hello-ok'), 'the hello-ok');

    const call = (requestId: string) =>
      JSON.stringify({ type: 'bridge-rpc', requestId, method: 'bridge.session.status', params: { sessionId: 'sess-unknown' } });
    for (const id of ['c1', 'c1', 'c2', 'c3']) ws.send(call(id));
    const about = (id: string) => frames.filter((f) => f.requestId === id);
    await waitFor(() => about('c1').length >= 2 && about('c2').length >= 1 && about('c3').length >= 1, 'an answer to every call');

    // the first c1 is answered; the second, sent while the first ran, is refused
    expect(
      about('c1')
        .map((f) => f.type)
        .sort(),
    ).toEqual(['bridge-error', 'bridge-rpc-result']);
    expect(about('c1').find((f) => f.type === 'bridge-rpc-result')).toMatchObject({ result: { owner: 'unknown' } });
    expect(about('c1').find((f) => f.type === 'bridge-error')).toMatchObject({ code: 'BAD_FRAME', message: 'requestId c1 is already in flight on this link' });
    // c1 and c2 run at once: the limit's two
    expect(about('c2')).toEqual([{ type: 'bridge-rpc-result', requestId: 'c2', result: { owner: 'unknown' } }]);
    expect(about('c3')).toEqual([expect.objectContaining({ type: 'bridge-error', code: 'OVERLOADED', retryable: true })]);

    // once they are answered, the same ids are free again
    frames.length = 0;
    ws.send(call('c1'));
    await waitFor(() => about('c1').length >= 1, 'the answer to c1 again');
    expect(about('c1')).toEqual([{ type: 'bridge-rpc-result', requestId: 'c1', result: { owner: 'unknown' } }]);
  });
});
