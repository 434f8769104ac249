/**
 * Gateway errors ↔ bridge errors, both directions through the one catalogue (src/wire/errors.ts): a
 * bridge-error may carry `gatewayCode` (the serving side's own code) so a Switchyard requester can rebuild the
 * exact error; the bridge `code` is the portable part of the protocol.
 */
import { GatewayError, RELAYED_TEXT_MAX, cutText, describeError, isErrorCode, type ErrorCode } from '../wire/errors.js';
import type { BridgeErrorCode, BridgeErrorFrame } from '../wire/bridge-frames.js';
import type { LinkContext, PendingRequest } from './link-types.js';

export function toBridgeCode(code: ErrorCode): BridgeErrorCode {
  return describeError(code).bridge;
}

/**
 * A peer's bridge-error → GatewayError. The code is the catalogue's `fromPeer` of the peer's `gatewayCode`
 * when it sent one, else of the bridge code. `retryable`:
 * - 'forward': "another candidate may serve it" (the row's `failover`): a peer's CHANNEL_NOT_SHARED or
 *   MODEL_NOT_FOUND says only that THIS candidate cannot serve it;
 * - 'call' (agent tasks, transfers; no other candidate): what the peer said, which defaults to the row's.
 */
export function fromBridgeError(f: BridgeErrorFrame, peerName: string, use: 'forward' | 'call'): GatewayError {
  const code = describeError(isErrorCode(f.gatewayCode) ? f.gatewayCode : f.code).fromPeer;
  const retryable = use === 'forward' ? describeError(code).failover : f.retryable;
  return new GatewayError(code, `via peer ${peerName}: ${peerText(f.message)}`, {
    retryable,
    details: { bridgeCode: f.code },
    ...(f.param !== undefined ? { param: f.param } : {}),
    ...(f.retryAfterMs !== undefined ? { retryAfterSec: Math.ceil(Math.min(f.retryAfterMs, MAX_PEER_RETRY_AFTER_MS) / 1000) } : {}),
  });
}

/** A peer's Retry-After is passed on up to a day: a larger one is a peer's mistake, not a wait to tell a client. */
export const MAX_PEER_RETRY_AFTER_MS = 86_400_000;

/**
 * How much of a peer's error message is kept (in an error we raise, a log line, a link's last error): the bound of
 * every relayed text (RELAYED_TEXT_MAX), plus room for what the peer put before the upstream's own text
 * (`channel c: upstream answered 400: `, a `via peer x: ` for each further hop), so an upstream's message that
 * reached the peer whole reaches this gateway's client whole too.
 */
const PEER_TEXT_MAX = RELAYED_TEXT_MAX + 200;

/** A peer's free text, cut to PEER_TEXT_MAX characters. */
export function peerText(message: string): string {
  return cutText(message, PEER_TEXT_MAX);
}

/**
 * A frame of ours that `LinkContext.send` refused, larger than the peer takes in one frame: the error its request
 * (a forward, an agent-task call, a session offer) fails with here. Another candidate may take a forward.
 */
export function tooLargeToSend(l: Pick<LinkContext, 'name' | 'peerMaxFrameBytes'>, what: 'request' | 'call' | 'session', retryable = false): GatewayError {
  return new GatewayError('PAYLOAD_TOO_LARGE', `the ${what} is larger than bridge peer ${l.name} takes in one frame (${l.peerMaxFrameBytes} bytes)`, {
    retryable,
  });
}

/**
 * An answer we serve that `LinkContext.send` refused: the peer gets PAYLOAD_TOO_LARGE for that request (the
 * protocol's code for a reply too large to send) and, for a Switchyard requester, UPSTREAM_BAD_RESPONSE as the
 * gateway code. The link stays up.
 */
export function sendAnswerTooLarge(l: LinkContext, requestId: string, what: string, extra: { retryable: boolean; started?: boolean }): void {
  l.sendError('PAYLOAD_TOO_LARGE', `${what} is larger than this link takes in one frame (${l.peerMaxFrameBytes} bytes)`, {
    requestId,
    ...extra,
    gatewayCode: 'UPSTREAM_BAD_RESPONSE',
  });
}

const ASKED: Record<PendingRequest['kind'], string> = { forward: 'a forward', rpc: 'an agent-task call', transfer: 'a session offer' };

/**
 * An answer of another kind of request (a bridge-response or bridge-stream to an agent-task call, a
 * bridge-rpc-result to a forward, a bridge-session-transfer-ok to either…): nothing would ever settle the request
 * it names, so it fails now as a bad answer and the peer is told to stop (bridge-cancel), as a forward answered
 * with the wrong one of its own frames does.
 */
export function answeredWrongKind(l: Pick<LinkContext, 'name' | 'abandon'>, requestId: string, p: PendingRequest, type: string): void {
  l.abandon(requestId, new GatewayError('UPSTREAM_BAD_RESPONSE', `bridge peer ${l.name} answered ${ASKED[p.kind]} with ${type}`));
}
