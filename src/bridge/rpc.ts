/**
 * Agent tasks over a link, both ways: `callPeer` runs an /acp/rpc method on the peer (notifications relayed
 * in order, the outcome passed through), `serveRpc` runs a peer's call through the ACP layer's handler — only
 * for runtimes we share with it — and the internal `bridge.session.*` calls about transfers.
 */
import { GatewayError, describeError, toGatewayError } from '../wire/errors.js';
import type { BridgeRpcEventFrame, BridgeRpcFrame, BridgeRpcResultFrame } from '../wire/bridge-frames.js';
import { seqId } from '../util/ids.js';
import { answeredWrongKind, fromBridgeError, sendAnswerTooLarge, toBridgeCode, tooLargeToSend } from './errors.js';
import { refuseToServe } from './serve-guard.js';
import { isRpc, type LinkContext, type PendingRpc, type RpcOutcome } from './link-types.js';

export interface CallOptions {
  hops: string[];
  signal?: AbortSignal | undefined;
  onEvent: (method: string, params: Record<string, unknown>) => void;
}

/**
 * Runs an /acp/rpc method on the peer. Notifications arrive through `onEvent` in order; the promise resolves
 * with the peer's result or JSON-RPC error (passed through unchanged), and rejects only for link or policy
 * failures (GatewayError, with the peer's `retryable`). Aborting `signal` sends bridge-cancel.
 */
export function callPeer(l: LinkContext, method: string, params: Record<string, unknown>, o: CallOptions): Promise<RpcOutcome> {
  if (!l.open) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${l.name} is not connected`));
  const requestId = seqId('rpc');
  return new Promise<RpcOutcome>((resolve, reject) => {
    const onAbort = () => l.abandon(requestId, new GatewayError('CANCELLED', 'request cancelled'));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const entry: PendingRpc = { kind: 'rpc', onEvent: o.onEvent, resolve, fail: reject, refused: (f) => reject(fromBridgeError(f, l.name, 'call')) };
    l.pending.add(requestId, entry, { cleanup: () => o.signal?.removeEventListener('abort', onAbort) });
    if (!l.send({ type: 'bridge-rpc', requestId, method, params, hops: [...o.hops, l.selfId] }) && l.pending.take(requestId)) {
      reject(tooLargeToSend(l, 'call'));
    }
  });
}

export function onRpcEvent(l: LinkContext, f: BridgeRpcEventFrame): void {
  const p = l.pending.get(f.requestId);
  if (!p) return;
  if (!isRpc(p)) return answeredWrongKind(l, f.requestId, p, f.type);
  p.onEvent(f.method, f.params);
}

export function onRpcResult(l: LinkContext, f: BridgeRpcResultFrame): void {
  const p = l.pending.get(f.requestId);
  if (!p) return;
  if (!isRpc(p)) return answeredWrongKind(l, f.requestId, p, f.type);
  l.pending.take(f.requestId);
  p.resolve(f.error ? { error: f.error } : { result: f.result });
}

export async function serveRpc(l: LinkContext, f: BridgeRpcFrame): Promise<void> {
  const requestId = f.requestId;
  const hops = f.hops ?? [];
  const refusal = refuseToServe(l, requestId, hops);
  if (refusal) return l.sendError(refusal.code, refusal.message, { requestId });
  if (f.method.startsWith('bridge.session.')) return serveSessionCall(l, requestId, f.method, f.params);
  const handler = l.rpcHandler();
  // the handler checks what is shared: a session transferred here is served whatever shareAgents says
  if (!handler) return l.sendError('AGENT_NOT_SHARED', 'this gateway shares no agent runtimes with you', { requestId });
  const ac = new AbortController();
  // bridge-cancel cancels the turn (the requester gave up on it); the link's end does not: the turn goes on, as it
  // does when a local client disconnects, and its outcome is read later (xworkmate.tasks.get) once the link is back
  l.serving.set(requestId, { abort: () => ac.abort(), linkLost: () => undefined });
  const idJson = JSON.stringify(requestId);
  // an event or result larger than the peer takes in one frame is not sent (the peer would close the link): the
  // call ends with PAYLOAD_TOO_LARGE instead, its run cancelled, so the peer's client is never left waiting
  let tooLarge = false;
  const overflow = (): void => {
    tooLarge = true;
    ac.abort();
  };
  try {
    const out = await handler({
      peer: l.peer,
      method: f.method,
      params: f.params,
      sharedAgents: l.ourAgents,
      hops: [...hops, l.selfId],
      signal: ac.signal,
      emit: (method, params) => {
        if (tooLarge) return;
        if (!l.send(`{"type":"bridge-rpc-event","requestId":${idJson},"method":${JSON.stringify(method)},"params":${JSON.stringify(params)}}`)) overflow();
      },
    });
    if (!tooLarge && !l.send({ type: 'bridge-rpc-result', requestId, ...out })) overflow();
    if (tooLarge) rpcTooLarge(l, requestId);
  } catch (err) {
    if (tooLarge) return rpcTooLarge(l, requestId);
    const e = toGatewayError(err);
    // In an agent task, a refused runtime (the handler's CHANNEL_NOT_SHARED / FORBIDDEN) is AGENT_NOT_SHARED.
    // The gateway code says the same: a Switchyard requester reads it first (FORBIDDEN, the row's fromPeer).
    const refused = e.code === 'CHANNEL_NOT_SHARED' || e.code === 'FORBIDDEN';
    const code = refused ? 'AGENT_NOT_SHARED' : toBridgeCode(e.code);
    l.sendError(code, e.message, { requestId, retryable: e.retryable, gatewayCode: refused ? 'AGENT_NOT_SHARED' : e.code });
  } finally {
    l.serving.delete(requestId);
  }
}

function rpcTooLarge(l: LinkContext, requestId: string): void {
  sendAnswerTooLarge(l, requestId, 'an update or the result', { retryable: false });
}

/**
 * Internal calls between gateways about transfers (not /acp/rpc methods). Served like any other request of the
 * peer's while they run (serve-guard.ts): they count in maxInflightPerPeer and hold their requestId. There is
 * nothing to stop: bridge-cancel and the link's end leave the store read or write to finish.
 */
async function serveSessionCall(l: LinkContext, requestId: string, method: string, params: Record<string, unknown>): Promise<void> {
  l.serving.set(requestId, { abort: () => undefined });
  try {
    const t = l.transfers();
    const sessionId = typeof params.sessionId === 'string' ? params.sessionId : '';
    let out: RpcOutcome;
    if (!t) out = { error: { code: describeError('METHOD_NOT_FOUND').rpc, message: 'this gateway has no session store' } };
    else if (method === 'bridge.session.status') out = { result: await t.status(l.peer.id, sessionId) };
    else if (method === 'bridge.session.commit')
      out = { result: { confirmed: await t.confirm(l.peer.id, sessionId, typeof params.transferId === 'string' ? params.transferId : '') } };
    else out = { error: { code: describeError('METHOD_NOT_FOUND').rpc, message: `unknown method ${method}` } };
    if (!l.send({ type: 'bridge-rpc-result', requestId, ...out })) rpcTooLarge(l, requestId);
  } finally {
    l.serving.delete(requestId);
  }
}
