/**
 * Session transfer over a link, both ways: `offerSession` sends bridge-session-transfer and waits for the
 * peer's bridge-session-transfer-ok (or its refusal, link loss, timeout); `serveTransfer` hands a peer's
 * offer to the TransferCoordinator (src/sessions/transfer.ts), which decides and stores.
 */
import { GatewayError, toGatewayError } from '../wire/errors.js';
import { MAX_TRANSFER_EVENT_BYTES, MAX_TRANSFER_EVENTS } from '../wire/bridge-frames.js';
import type { BridgeSessionEvent, BridgeSessionSnapshot, BridgeSessionTransferFrame, BridgeSessionTransferOkFrame } from '../wire/bridge-frames.js';
import { isTransfer, type LinkContext, type PendingTransfer } from './link-types.js';
import { answeredWrongKind, peerText, tooLargeToSend } from './errors.js';
import { refuseToServe } from './serve-guard.js';

/**
 * Offers a session with the newest entries of its update log (`events`, oldest first; those that fit in
 * MAX_TRANSFER_EVENT_BYTES and a quarter of the frame limit the peer takes) and the highest seq not carried (`droppedThrough`,
 * what the sender's log dropped, raised to the newest entry left out here); resolves on bridge-session-transfer-ok,
 * rejects on a refusal, link loss or timeout.
 */
export function offerSession(
  l: LinkContext,
  transferId: string,
  session: Record<string, unknown>,
  events: readonly BridgeSessionEvent[],
  timeoutMs: number,
  droppedThrough = 0,
): Promise<void> {
  if (!l.open) return Promise.reject(new GatewayError('PEER_UNAVAILABLE', `bridge peer ${l.name} is not connected`));
  const { id, owner } = session;
  if (typeof id !== 'string' || typeof owner !== 'string')
    return Promise.reject(new GatewayError('INTERNAL', 'a session snapshot needs a string id and owner'));
  const snapshot: BridgeSessionSnapshot = { ...session, id, owner };
  return new Promise((resolve, reject) => {
    const entry: PendingTransfer = {
      kind: 'transfer',
      resolve,
      fail: reject,
      refused: (f) =>
        reject(
          f.code === 'OVERLOADED'
            ? new GatewayError('OVERLOADED', `peer ${l.name} is serving too many of our requests to take the session now: ${peerText(f.message)}`)
            : new GatewayError('FORBIDDEN', `peer ${l.name} refused the session (${f.code}): ${peerText(f.message)}`, { details: { reason: f.code } }),
        ),
    };
    l.pending.add(transferId, entry, {
      timeoutMs,
      timeoutError: () => new GatewayError('UPSTREAM_TIMEOUT', `peer ${l.name} did not acknowledge the session within ${timeoutMs} ms`),
    });
    const carried = newestThatFit(events, Math.min(MAX_TRANSFER_EVENT_BYTES, Math.floor(l.peerMaxFrameBytes / 4)));
    const left = events.length - carried.length;
    const dropped = Math.max(droppedThrough, left > 0 ? events[left - 1]!.seq : 0);
    const frame: BridgeSessionTransferFrame = { type: 'bridge-session-transfer', transferId, session: snapshot };
    if (carried.length > 0) frame.events = carried;
    if (dropped > 0) frame.droppedThroughSeq = dropped;
    if (!l.send(frame) && l.pending.take(transferId)) {
      reject(tooLargeToSend(l, 'session'));
    }
  });
}

/** The newest entries (at most MAX_TRANSFER_EVENTS) whose JSON fits in `budget` bytes, oldest first. */
function newestThatFit(events: readonly BridgeSessionEvent[], budget: number): BridgeSessionEvent[] {
  let used = 0;
  let from = events.length;
  while (from > 0 && events.length - from < MAX_TRANSFER_EVENTS) {
    const size = Buffer.byteLength(JSON.stringify(events[from - 1])) + 1;
    if (used + size > budget) break;
    used += size;
    from--;
  }
  return events.slice(from);
}

export function onTransferOk(l: LinkContext, f: BridgeSessionTransferOkFrame): void {
  const p = l.pending.get(f.transferId);
  if (!p) return;
  if (!isTransfer(p)) return answeredWrongKind(l, f.transferId, p, f.type);
  l.pending.take(f.transferId);
  p.resolve();
}

/**
 * A peer's offer is a request it asks us to serve: it passes the same checks as a forward (serve-guard.ts: the
 * per-peer in-flight limit, past it OVERLOADED) and counts in that limit until it is answered.
 */
export async function serveTransfer(l: LinkContext, f: BridgeSessionTransferFrame): Promise<void> {
  const refusal = refuseToServe(l, f.transferId, []);
  if (refusal) return l.sendError(refusal.code, refusal.message, { requestId: f.transferId });
  // nothing to stop: the copy is stored or not; an ok the link's end keeps from leaving is settled like a lost one
  l.serving.set(f.transferId, { abort: () => undefined });
  const t = l.transfers();
  try {
    if (!t) throw new GatewayError('FORBIDDEN', 'this gateway does not accept sessions', { details: { reason: 'TRANSFER_REJECTED' } });
    const sessionId = await t.receive(l.peer.id, f.transferId, f.session, f.events ?? [], f.droppedThroughSeq ?? 0);
    l.send({ type: 'bridge-session-transfer-ok', transferId: f.transferId, sessionId });
  } catch (err) {
    const e = toGatewayError(err);
    const reason = e.details?.reason;
    l.sendError(reason === 'NOT_OWNER' ? 'NOT_OWNER' : 'TRANSFER_REJECTED', e.code === 'INTERNAL' ? 'could not store the session' : e.message, {
      requestId: f.transferId,
      retryable: false,
    });
  } finally {
    l.serving.delete(f.transferId);
  }
}
