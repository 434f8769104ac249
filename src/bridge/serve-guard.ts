/**
 * The checks every request a peer asks us to serve passes first (forwards and agent-task calls alike): a
 * requestId already in flight, the per-peer in-flight limit, then the request's own policy (e.g. the channel
 * share list), then a forwarding loop. The first that fails is the refusal (retryable from the catalogue).
 */
import { hasLoop } from './codec.js';
import type { BridgeErrorCode } from '../wire/bridge-frames.js';
import type { LinkContext } from './link-types.js';

export interface Refusal {
  code: BridgeErrorCode;
  message: string;
}

export function refuseToServe(l: LinkContext, requestId: string, hops: readonly string[], policy?: () => Refusal | undefined): Refusal | undefined {
  if (l.serving.has(requestId)) return { code: 'BAD_FRAME', message: `requestId ${requestId} is already in flight on this link` };
  if (l.serving.size >= l.limits.maxInflightPerPeer) {
    return { code: 'OVERLOADED', message: `too many requests in flight from this peer (limit ${l.limits.maxInflightPerPeer})` };
  }
  const p = policy?.();
  if (p) return p;
  if (hasLoop(hops, l.selfId)) return { code: 'LOOP_DETECTED', message: `request already passed this gateway (${l.selfId}) or too many hops` };
  return undefined;
}
