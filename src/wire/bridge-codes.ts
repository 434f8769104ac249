/**
 * The bridge's own code sets: WebSocket close codes and `bridge-error.code` strings. Kept apart from
 * bridge-frames.ts so that the error catalogue (errors.ts) can name them without importing the frame types.
 * Depends on nothing. Normative description: docs/bridge-protocol.md, docs/errors.md.
 */

/** WebSocket close codes used on the bridge (all in the private 4000–4999 range). */
export const CLOSE_CODES = {
  /** orderly shutdown or disconnect; the peer may reconnect */
  NORMAL: 4000,
  /** no frame from the peer for deadPeerMisses heartbeat intervals */
  HEARTBEAT_TIMEOUT: 4001,
  /** the peer did not read what it was sent: more than the backlog cap waited unwritten; the peer may reconnect */
  BACKLOG_FULL: 4002,
  /** unparsable/binary frame, or a bad frame before the handshake completed */
  BAD_FRAME: 4400,
  /** token not in gateway.bridge.allowedTokens */
  AUTH_FAILED: 4401,
  /** the peer may not connect at all (e.g. it is this gateway itself) */
  NOT_ALLOWED: 4403,
  /** no valid bridge-hello / bridge-hello-ok within handshakeTimeoutMs */
  HANDSHAKE_TIMEOUT: 4408,
  /** a link with this gatewayId already exists (or was replaced by a newer one) */
  DUPLICATE_PEER: 4409,
  /** a frame exceeded maxFrameBytes (preAuthFrameBytes before the handshake) */
  FRAME_TOO_LARGE: 4413,
  /** the responder already has maxPeers links */
  MAX_PEERS: 4429,
  /** no protocol version in common */
  VERSION_UNSUPPORTED: 4505,
} as const;
export type BridgeCloseCode = (typeof CLOSE_CODES)[keyof typeof CLOSE_CODES];

/** Every `bridge-error.code` of protocol v1. Each is a row of ERROR_TABLE (src/wire/errors.ts). */
export const BRIDGE_ERROR_CODES = [
  // handshake: sent in bridge-error, then the link is closed with the row's close code
  'AUTH_FAILED',
  'VERSION_UNSUPPORTED',
  'MAX_PEERS',
  'DUPLICATE_PEER',
  'SELF_CONNECTION',
  'BAD_HELLO',
  'HANDSHAKE_TIMEOUT',
  'GATEWAY_ID_BOUND',
  // per request: carry requestId, the link stays up
  'CHANNEL_NOT_SHARED',
  'AGENT_NOT_SHARED',
  'MODEL_NOT_FOUND',
  'UPSTREAM_ERROR',
  'UPSTREAM_TIMEOUT',
  'OVERLOADED',
  'RATE_LIMITED',
  'LOOP_DETECTED',
  'PAYLOAD_TOO_LARGE',
  'BAD_FRAME',
  'UNKNOWN_TYPE',
  'CANCELLED',
  // session transfer / ownership, and the catch-all
  'TRANSFER_REJECTED',
  'SESSION_NOT_FOUND',
  'NOT_OWNER',
  'INTERNAL',
] as const;
export type BridgeErrorCode = (typeof BRIDGE_ERROR_CODES)[number];

const BRIDGE_CODE_SET: ReadonlySet<string> = new Set(BRIDGE_ERROR_CODES);

export function isBridgeErrorCode(v: unknown): v is BridgeErrorCode {
  return typeof v === 'string' && BRIDGE_CODE_SET.has(v);
}
