/**
 * Gateway error codes ↔ bridge error codes. A bridge-error may carry `gatewayCode` (our internal code) so a
 * Switchyard requester can rebuild the exact error; the bridge `code` is the portable part of the protocol.
 */
import { GatewayError, isErrorCode, type ErrorCode } from '../wire/errors.js';
import { BRIDGE_ERROR_TABLE, isBridgeErrorCode, type BridgeErrorCode } from '../wire/bridge-frames.js';

const TO_BRIDGE: Partial<Record<ErrorCode, BridgeErrorCode>> = {
  MODEL_NOT_FOUND: 'MODEL_NOT_FOUND',
  NOT_FOUND: 'CHANNEL_NOT_SHARED',
  CHANNEL_NOT_SHARED: 'CHANNEL_NOT_SHARED',
  UPSTREAM_TIMEOUT: 'UPSTREAM_TIMEOUT',
  OVERLOADED: 'OVERLOADED',
  RATE_LIMITED: 'RATE_LIMITED',
  SHUTTING_DOWN: 'OVERLOADED',
  UPSTREAM_ERROR: 'UPSTREAM_ERROR',
  UPSTREAM_BAD_RESPONSE: 'UPSTREAM_ERROR',
  UPSTREAM_STREAM_ERROR: 'UPSTREAM_ERROR',
  UPSTREAM_CLIENT_ERROR: 'UPSTREAM_ERROR',
  PEER_UNAVAILABLE: 'UPSTREAM_ERROR',
  LOOP_DETECTED: 'LOOP_DETECTED',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  INVALID_REQUEST: 'BAD_FRAME',
  INVALID_JSON: 'BAD_FRAME',
  BAD_FRAME: 'BAD_FRAME',
  CANCELLED: 'CANCELLED',
};

export function toBridgeCode(code: ErrorCode): BridgeErrorCode {
  return TO_BRIDGE[code] ?? 'INTERNAL';
}

/**
 * A peer's bridge-error for one of our forwards → GatewayError. The code comes from the peer's
 * `gatewayCode` when it sent one, else from BRIDGE_ERROR_TABLE (one mapping for the whole project). Here
 * `retryable` means "another candidate may serve it": everything but a cancel or the client's own fault,
 * since a peer's CHANNEL_NOT_SHARED or MODEL_NOT_FOUND says only that THIS candidate cannot serve it.
 */
export function fromBridgeError(f: { code?: unknown; message?: unknown; retryable?: unknown; started?: unknown; gatewayCode?: unknown; retryAfterMs?: unknown }, peerName: string): GatewayError {
  const bridgeCode = typeof f.code === 'string' ? f.code : 'INTERNAL';
  let code: ErrorCode = isErrorCode(f.gatewayCode) ? f.gatewayCode : isBridgeErrorCode(bridgeCode) ? BRIDGE_ERROR_TABLE[bridgeCode].gatewayCode : 'PEER_UNAVAILABLE';
  if (code === 'INTERNAL' || code === 'NOT_FOUND') code = 'PEER_UNAVAILABLE';
  const clientFault = code === 'UPSTREAM_CLIENT_ERROR' || code === 'INVALID_REQUEST' || code === 'PAYLOAD_TOO_LARGE';
  const retryable = code !== 'CANCELLED' && !clientFault;
  const msg = typeof f.message === 'string' ? f.message.slice(0, 500) : bridgeCode;
  return new GatewayError(code, `via peer ${peerName}: ${msg}`, {
    retryable,
    details: { bridgeCode },
    ...(typeof f.retryAfterMs === 'number' ? { retryAfterSec: Math.ceil(f.retryAfterMs / 1000) } : {}),
  });
}
