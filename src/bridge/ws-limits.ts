/**
 * WebSocket-level message limits on /bridge: small until the handshake is done, then the link's limit. The server
 * is created with the pre-auth limit below, and an authenticated socket's limit is lifted by `raiseMaxPayload`
 * (src/util/ws-internals.ts: ws has no public way to change it).
 */
import { wsPayloadLimit } from './codec.js';

/**
 * The WebSocket limit before the handshake. Frames up to twice `preAuthFrameBytes` (and at least 16 KiB over
 * it) still reach the codec and get the protocol's answer (PAYLOAD_TOO_LARGE, close 4413); anything larger
 * is refused by ws as soon as its header is read (close 1009), before any of its payload is buffered.
 */
export function preAuthPayloadLimit(preAuthFrameBytes: number): number {
  return Math.max(wsPayloadLimit(preAuthFrameBytes), preAuthFrameBytes + 16 * 1024);
}
