/**
 * /acp/rpc across the bridge, both ways.
 *
 * Requesting side (`RemoteSessions`): a session lives on a peer when it was started on a runtime the peer shares
 * with us, or when it was transferred there (its record here says `moved` to that peer). `session.message`,
 * `session.cancel` and `session.close` for such a session cross the bridge as bridge-rpc; its session.update
 * notifications are relayed in order; its result or error comes back unchanged (same code, message and data). An
 * owner that cannot be reached gives SESSION_OWNER_UNREACHABLE with details.owner naming it.
 *
 * Bridge-rpc carries errors as JSON-RPC-shaped objects `{ code, message, data: { code, … } }`: `code` from the
 * error table, `data.code` the ErrorCode. Both directions map through GatewayError here.
 *
 * Serving side (`peerRpcHandler`): a peer may start sessions only on the runtimes we share with it
 * (gateway.bridge.shareAgents, checked here, on the serving side), and may continue, cancel, close or read only
 * the sessions it started here or transferred to us, whatever we share. A session that moved on from here
 * (A→B→C) is followed to its owner with the bridge hop list (loops and more than 8 hops are refused there); a
 * peer's session.start is never sent on to another peer.
 */
import { ERROR_TABLE, GatewayError, isErrorCode, toGatewayError } from '../wire/errors.js';
import type { BridgeMesh } from '../bridge/mesh.js';
import type { RpcServeHandler } from '../bridge/link.js';
import type { SessionStore } from '../sessions/store.js';
import { markMoved, newSession, notPeersSession, peerReaches, type SessionTarget } from '../sessions/model.js';
import type { Dispatch, DispatchOptions, RemoteSessions } from './methods.js';
import type { PeerRuntime } from './capabilities.js';

interface BridgeRpcError {
  code: number;
  message: string;
  data: Record<string, unknown>;
}

/** A throwable as the bridge-rpc error object the requesting peer turns back into the same GatewayError. */
function toBridgeRpcError(err: unknown): BridgeRpcError {
  const e = toGatewayError(err);
  const data: Record<string, unknown> = {};
  if (e.param) data.field = e.param;
  if (e.details) Object.assign(data, e.details);
  if (e.retryable) data.retryable = true;
  return { code: ERROR_TABLE[e.code].rpc, message: e.message, data: { ...data, code: e.code } };
}

/** A peer's bridge-rpc error as a GatewayError (a code this version does not know → REMOTE_ERROR). */
function fromBridgeRpcError(err: { message: string; data?: unknown }): GatewayError {
  const { code, field, retryable, ...details } = (err.data && typeof err.data === 'object' ? err.data : {}) as Record<string, unknown>;
  if (!isErrorCode(code) && code !== undefined) details.remoteCode = code;
  return new GatewayError(isErrorCode(code) ? code : 'REMOTE_ERROR', err.message, {
    ...(typeof field === 'string' ? { param: field } : {}),
    retryable: retryable === true,
    details,
  });
}

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
    new GatewayError('SESSION_OWNER_UNREACHABLE', `session "${sessionId}" is owned by gateway ${owner}, which cannot be reached now; retry later`, {
      details: { sessionId, owner },
    });
  return {
    peerFor(target: SessionTarget) {
      const id = target.executionTarget === 'agent' ? target.providerId : target.gatewayProviderId;
      return peerRuntimes(mesh, localIds).find((r) => r.id === id && r.kind === target.executionTarget)?.peerId;
    },
    async ownerOf(sessionId, known) {
      // a provisional copy from a transfer is settled with its sender first (throws naming the owner)
      const settled = mesh.transfers
        ? await mesh.transfers.ensureOwned(sessionId, known).catch((err: unknown) => {
            const owner = err instanceof GatewayError ? err.details?.owner : undefined;
            if (!(err instanceof GatewayError) || typeof owner !== 'string' || !owner) throw err;
            if (err.code === 'PEER_UNAVAILABLE') throw unreachable(sessionId, owner);
            throw new GatewayError('SESSION_NOT_OWNED_HERE', err.message, { details: { sessionId, owner } });
          })
        : known
          ? known.rec
          : await store.get(sessionId);
      return { owner: settled?.status === 'moved' && settled.movedTo ? settled.movedTo : undefined, record: settled };
    },
    async call(peerId, method, params, notify, hops) {
      let out;
      try {
        out = await mesh.rpc(peerId, method, params, { ...(hops ? { hops } : {}), onEvent: (m, p) => m === 'session.update' && notify(p) });
      } catch (err) {
        if (err instanceof GatewayError && err.code === 'PEER_UNAVAILABLE')
          throw unreachable(typeof params.sessionId === 'string' ? params.sessionId : '', peerId);
        // a refusal from the peer: `retryable` as the error table says (the bridge marks it "try another candidate")
        if (err instanceof GatewayError)
          throw new GatewayError(err.code, err.message, {
            details: err.details,
            ...(err.retryAfterSec !== undefined ? { retryAfterSec: err.retryAfterSec } : {}),
          });
        throw err;
      }
      if ('error' in out) throw fromBridgeRpcError(out.error);
      return out.result;
    },
    async recordRemote(sessionId, peerId, target, threadId, caller) {
      const pointer = markMoved(
        newSession({
          id: sessionId,
          kind: target.executionTarget === 'agent' ? 'agent' : 'chat',
          ownerGatewayId: peerId,
          target,
          threadId,
          metadata: { source: 'acp', runsOnPeer: true, ...(caller ? { caller } : {}) },
        }),
        peerId,
      );
      const cur = await store.get(sessionId);
      if (!cur) await store.create(pointer);
      else await store.update({ ...pointer, version: cur.version }, cur.version);
    },
  };
}

/** Serves peers' bridge-rpc calls with this gateway's own dispatch, under the rules above. */
/** Methods a peer may call on a session it started here or transferred here, whatever shareAgents says. */
const SESSION_METHODS: ReadonlySet<string> = new Set([
  'session.message',
  'session.cancel',
  'session.close',
  'xworkmate.tasks.get',
  'xworkmate.permissions.respond',
  'xworkmate.permissions.list',
]);

export function peerRpcHandler(dispatch: Dispatch, store: SessionStore, cancel: (sessionId: string) => Promise<unknown>): RpcServeHandler {
  return async ({ peer, method, params, sharedAgents, hops, signal, emit }) => {
    const sessionId = typeof params.sessionId === 'string' ? params.sessionId : '';
    // also when it moved on from here (A→B→C): the call follows it, with the hop list guarding against loops. Made
    // by the dispatch on the record read its owner check then shares (every method of SESSION_METHODS that names a
    // session goes through it: methods.ts atOwner); one naming none is refused here
    let reach: DispatchOptions['reach'];
    // a bridge-cancel never reaches a session the peer may not (the check has not passed yet, or refused it)
    let reached = true;
    if (SESSION_METHODS.has(method)) {
      if (!sessionId) throw notPeersSession(sessionId);
      reached = false;
      reach = {
        sessionId,
        read: () => store.get(sessionId),
        check: (rec) => {
          if (!rec || !peerReaches(rec, peer.id)) throw notPeersSession(sessionId);
          reached = true;
        },
      };
    } else if (method === 'session.start') {
      // a start replaces the session of that id: the runner refuses one this peer cannot reach (a local
      // client's, another peer's) where it replaces the record (TurnRunner.replace, `origin`)
      if (sharedAgents.size === 0) throw new GatewayError('CHANNEL_NOT_SHARED', 'this gateway shares no agent runtimes with you');
    } else {
      return { error: toBridgeRpcError(new GatewayError('METHOD_NOT_FOUND', `method not available over the bridge: ${method}`)) };
    }
    // bridge-cancel (the requesting side gave up on the call) cancels the turn, as session.cancel would
    const onAbort = () => {
      if (reached) void cancel(sessionId).catch(() => undefined);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const result = await dispatch(
        { method, params },
        { notify: emit },
        // hops ends with this gateway; the link appends it again when the call goes on
        {
          origin: peer.id,
          allowTarget: (t) => sharedAgents.has(t.executionTarget === 'agent' ? t.providerId : t.gatewayProviderId),
          localOnly: true,
          hops: hops.slice(0, -1),
          reach,
        },
      );
      // fail closed: a session method answered without the check (one of SESSION_METHODS that does not go through
      // the dispatch's atOwner) never hands its answer to the peer
      if (!reached) throw notPeersSession(sessionId);
      return { result };
    } catch (err) {
      if (err instanceof GatewayError && err.code === 'CHANNEL_NOT_SHARED') throw err;
      return { error: toBridgeRpcError(err) };
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  };
}
