/**
 * The private details of the ws library (8.x, pinned) the gateway reaches for, in one place, each guarded so that
 * a ws that changed them is noticed rather than misused:
 *
 * - `raiseMaxPayload`: ws takes `maxPayload` once, when a socket is made, and has no public way to change it later
 *   (websockets/ws#1473 proposed one and was closed). A socket is therefore opened with a small pre-auth limit
 *   (the bridge's listener, the OpenClaw client) and lifted once the peer has authenticated, by setting the
 *   receiver's `_maxPayload`. Why that is safe: the receiver reads `_maxPayload` afresh each time a frame header's
 *   length is known (and per inflated chunk), it holds no other copy, and the frame that authenticated was already
 *   read in full, so the new limit applies from the next frame on. Pinned by test/bridge/ws-limits.test.ts
 *   against the installed ws.
 * - `wsSocket`: the socket under a WebSocket (`_socket`), for corking and for waiting on its drain (bridge links,
 *   the `/acp` WebSocket's paced resume). Callers do without it when it is absent.
 */
import type { Duplex } from 'node:stream';
import type WebSocket from 'ws';
import { isObj } from './is-object.js';

/** Lifts an accepted socket's limit to `bytes`; false when this ws version does not have the field. */
export function raiseMaxPayload(ws: WebSocket, bytes: number): boolean {
  const receiver: unknown = Reflect.get(ws, '_receiver');
  if (!isObj(receiver) || typeof receiver._maxPayload !== 'number') return false;
  receiver._maxPayload = bytes;
  return true;
}

/** The socket under `ws`, if this ws version keeps it where 8.x does. */
export function wsSocket(ws: WebSocket): Duplex | undefined {
  return (ws as unknown as { _socket?: Duplex })._socket;
}
