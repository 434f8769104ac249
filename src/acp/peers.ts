/**
 * /acp/rpc across the bridge, both ways.
 *
 * Requesting side (`RemoteSessions`): a session lives on a peer when it was started on a runtime the peer shares
 * with us, or when it was transferred there (its record here says `moved` to that peer). `session.message`,
 * `session.cancel` and `session.close` for such a session cross the bridge as bridge-rpc; its session.update
 * notifications are relayed in order; its result or JSON-RPC error comes back unchanged. An owner that cannot be
 * reached gives -32002 with data.code SESSION_OWNER_UNREACHABLE and data.owner naming it.
 *
 * Serving side (`peerRpcHandler`): a peer may start sessions only on the runtimes we share with it
 * (gateway.bridge.shareAgents, checked here, on the serving side), and may continue, cancel or close only the
 * sessions it started here or transferred to us. Nothing it sends is forwarded again to another peer.
 */
import { GatewayError } from '../wire/errors.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { RpcServeHandler } from '../bridge/link.js';
import type { SessionStore } from '../sessions/store.js';
import { markMoved, newSession, type SessionTarget } from '../sessions/model.js';
import { AcpRpcError, RPC, toRpcError, type RpcRequest } from './envelope.js';
import type { Dispatch, RemoteSessions } from './methods.js';
import type { PeerRuntime } from './capabilities.js';

/** Runtimes peers share with us, minus ids that are also local (a local runtime always wins). */
export function peerRuntimes(mesh: BridgeMesh, localIds: ReadonlySet<string>): PeerRuntime[] {
  const seen = new Set<string>();
  const out: PeerRuntime[] = [];
  for (const { peerId, peerName, agent } of mesh.peerAgents()) {
    if (localIds.has(agent.id) || seen.has(agent.id)) continue;
    seen.add(agent.id);
    out.push({ peerId, peerName, id: agent.id, label: agent.label, kind: agent.kind });
  }
  return out;
}

export function remoteSessions(mesh: BridgeMesh, store: SessionStore, localIds: ReadonlySet<string>): RemoteSessions {
  const unreachable = (sessionId: string, owner: string) =>
    new AcpRpcError(RPC.SESSION_CONTINUATION_UNAVAILABLE, 'SESSION_OWNER_UNREACHABLE', `session "${sessionId}" is owned by gateway ${owner}, which cannot be reached now; retry later`, { sessionId, owner });
  return {
    peerFor(target: SessionTarget) {
      const id = target.executionTarget === 'agent' ? target.providerId : target.gatewayProviderId;
      return peerRuntimes(mesh, localIds).find((r) => r.id === id && r.kind === target.executionTarget)?.peerId;
    },
    async ownerOf(sessionId) {
      // a provisional copy from a transfer is settled with its sender first (throws naming the owner)
      const settled = mesh.transfers
        ? await mesh.transfers.ensureOwned(sessionId).catch((err) => {
            const owner = err instanceof GatewayError ? err.details?.owner : undefined;
            if (!owner) throw err;
            if (err.code === 'PEER_UNAVAILABLE') throw unreachable(sessionId, String(owner));
            throw new AcpRpcError(RPC.SESSION_CONTINUATION_UNAVAILABLE, 'SESSION_NOT_OWNED_HERE', err.message, { sessionId, owner });
          })
        : await store.get(sessionId);
      return settled?.status === 'moved' && settled.movedTo ? settled.movedTo : undefined;
    },
    async call(peerId, method, params, notify) {
      let out;
      try {
        out = await mesh.rpc(peerId, method, params, { onEvent: (m, p) => m === 'session.update' && notify(p) });
      } catch (err) {
        if (err instanceof GatewayError && err.code === 'PEER_UNAVAILABLE') throw unreachable(String(params.sessionId ?? ''), peerId);
        throw err;
      }
      if ('error' in out) {
        const data = (out.error.data ?? {}) as Record<string, unknown>;
        throw new AcpRpcError(out.error.code, typeof data.code === 'string' ? data.code : 'REMOTE_ERROR', out.error.message, data);
      }
      return out.result;
    },
    async recordRemote(sessionId, peerId, target, threadId) {
      const pointer = markMoved(newSession({ id: sessionId, kind: target.executionTarget === 'agent' ? 'agent' : 'chat', ownerGatewayId: peerId, target, threadId, metadata: { source: 'acp', runsOnPeer: true } }), peerId);
      const cur = await store.get(sessionId);
      if (!cur) await store.create(pointer);
      else await store.update({ ...pointer, version: cur.version }, cur.version);
    },
  };
}

/** Serves peers' bridge-rpc calls with this gateway's own dispatch, under the rules above. */
export function peerRpcHandler(dispatch: Dispatch, store: SessionStore, cancel: (sessionId: string) => Promise<unknown>): RpcServeHandler {
  return async ({ peer, method, params, sharedAgents, signal, emit }) => {
    const sessionId = typeof params.sessionId === 'string' ? params.sessionId : '';
    if (method === 'session.message' || method === 'session.cancel' || method === 'session.close') {
      const rec = sessionId ? await store.get(sessionId) : undefined;
      const mine = rec && rec.status !== 'moved' && (rec.metadata.viaPeer === peer.id || rec.metadata.transferredFrom === peer.id);
      if (!mine) throw new GatewayError('CHANNEL_NOT_SHARED', `session "${sessionId}" is not one you started or transferred here`);
    } else if (method !== 'session.start') {
      return { error: { code: RPC.METHOD_NOT_FOUND, message: `method not available over the bridge: ${method}`, data: { code: 'METHOD_NOT_FOUND' } } };
    }
    // bridge-cancel (the requesting side gave up on the call) cancels the turn, as session.cancel would
    const onAbort = () => void cancel(sessionId).catch(() => undefined);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const req: RpcRequest = { jsonrpc: '2.0', id: 'bridge', method, params } as RpcRequest;
      const result = await dispatch(req, { notify: emit }, { origin: peer.id, allowTarget: (t) => sharedAgents.has(t.executionTarget === 'agent' ? t.providerId : t.gatewayProviderId), localOnly: true });
      return { result };
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'CHANNEL_NOT_SHARED') throw err;
      const e = toRpcError(err);
      return { error: { code: e.rpcCode, message: e.message, data: { ...e.data, code: e.dataCode } } };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };
}
