import { describe, expect, it } from 'vitest';
import { peerRpcHandler, remoteSessions } from './peers.js';
import type { Dispatch } from './methods.js';
import type { PeerInfo } from '../bridge/link.js';
import { fromBridgeError } from '../bridge/errors.js';
import type { BridgeErrorFrame } from '../wire/bridge-frames.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { SessionStore } from '../sessions/store.js';
import { GatewayError } from '../wire/errors.js';
import { toRpcError } from '../http/acp/envelope.js';

/** A mesh whose bridge-rpc fails the way a peer's bridge-error does (fromBridgeError marks it "try elsewhere"). */
function refusingMesh(frame: { code: string; gatewayCode?: string; message: string }): BridgeMesh {
  const mesh = {
    peerAgents: () => [],
    transfers: undefined,
    rpc: async () => Promise.reject(fromBridgeError(frame as BridgeErrorFrame, 'datacenter', 'call')),
  };
  return mesh as unknown as BridgeMesh;
}
const noStore = {} as unknown as SessionStore;

describe('errors of a forwarded /acp/rpc call', () => {
  it('a refusal reaches the client with retryable as the error table says (regression: AGENT_NOT_SHARED came back retryable)', async () => {
    const remote = remoteSessions(refusingMesh({ code: 'AGENT_NOT_SHARED', gatewayCode: 'CHANNEL_NOT_SHARED', message: 'not yours' }), noStore, new Set());
    const err = await remote
      .call('gw_b', 'session.message', { sessionId: 's1' }, () => undefined)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(err).toBeInstanceOf(GatewayError);
    expect((err as GatewayError).code).toBe('CHANNEL_NOT_SHARED');
    expect((err as GatewayError).retryable).toBe(false);
    expect(toRpcError(err).data.retryable).toBeUndefined();
  });

  it('a retryable one stays retryable', async () => {
    const remote = remoteSessions(refusingMesh({ code: 'UPSTREAM_TIMEOUT', message: 'slow' }), noStore, new Set());
    const err = await remote
      .call('gw_b', 'session.message', { sessionId: 's1' }, () => undefined)
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((err as GatewayError).code).toBe('UPSTREAM_TIMEOUT');
    expect(toRpcError(err).data.retryable).toBe(true);
  });
});

describe("a peer's call on a session: the reach check fails closed", () => {
  const own = { id: 's1', origin: 'gw_other' } as const;
  const call = (dispatch: Dispatch) =>
    peerRpcHandler(dispatch, { get: () => Promise.resolve(own) } as unknown as SessionStore, () => Promise.resolve())({
      peer: { id: 'gw_peer' } as PeerInfo,
      method: 'xworkmate.tasks.get',
      params: { sessionId: 's1' },
      sharedAgents: new Set(),
      hops: ['gw_peer', 'gw_here'],
      signal: new AbortController().signal,
      emit: () => undefined,
    });

  it('an answer the dispatch gave without making the check (a session method that bypasses atOwner) is not handed to the peer', async () => {
    const bypassing = (() => Promise.resolve({ secret: "the session's tasks" })) as unknown as Dispatch;
    await expect(call(bypassing)).rejects.toMatchObject({ code: 'CHANNEL_NOT_SHARED' });
  });
});
