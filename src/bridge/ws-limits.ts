/**
 * WebSocket-level message limits on /bridge: small until the handshake is done, then the link's limit.
 *
 * The ws library (8.x) takes `maxPayload` once, when a socket is upgraded, and has no public way to change
 * it later (websockets/ws#1473 proposed one and was closed). The server is therefore created with the
 * pre-auth limit, and `raiseMaxPayload` lifts it on an authenticated socket by setting the receiver's
 * `_maxPayload`. Why that is safe: the receiver reads `_maxPayload` afresh each time a frame header's length
 * is known (and per inflated chunk), it holds no other copy, and the hello that authenticates was already
 * read in full — so the new limit applies from the next frame on. It is a private field, so the access is
 * guarded (a plain number, or nothing is changed and the caller is told) and pinned by
 * test/bridge/ws-limits.test.ts against the installed ws.
 */
import type WebSocket from 'ws';
import { isObj } from '../util/is-object.js';
import { wsPayloadLimit } from './codec.js';

/**
 * The WebSocket limit before the handshake. Frames up to twice `preAuthFrameBytes` (and at least 16 KiB over
 * it) still reach the codec and get the protocol's answer (PAYLOAD_TOO_LARGE, close 4413); anything larger
 * is refused by ws as soon as its header is read (close 1009), before any of its payload is buffered.
 */
export function preAuthPayloadLimit(preAuthFrameBytes: number): number {
  return Math.max(wsPayloadLimit(preAuthFrameBytes), preAuthFrameBytes + 16 * 1024);
}

/** Lifts an accepted socket's limit to `bytes`; false when this ws version does not have the field. */
export function raiseMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver: unknown = Reflect.get(ws, '_receiver');
  if (!isObj(receiver) || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}
