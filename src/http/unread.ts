/**
 * During a graceful stop: responses whose last bytes are written but whose client does not take them.
 *
 * A response counts as in flight until its socket has handed its last byte to the kernel. A client that stopped
 * reading (a status page in a background tab, an `/acp/rpc` stream or a `/v1` stream whose socket is paused) leaves
 * its response ended but never finished, once the kernel's buffers are full: the stop waited for it for the whole
 * grace period, though nothing more was to be done for it. While a stop runs, such a response gets `boundMs` to
 * make progress (the bytes waiting for its client go down); one that makes none is cut (its socket destroyed), so
 * it holds the stop about a second, not the grace. A client that reads, however slowly, keeps its grace period.
 *
 * A response still being written is not cut here: a stream that waits for its client to read (a `/v1` stream holds
 * back its upstream rather than buffer it) is in flight like any other, until the grace period ends.
 */
import type { ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/** how long a written-out response may make no progress during a stop before its socket is destroyed */
export const UNREAD_BOUND_MS = 1000;

/** node's names for what it keeps on a server socket: the response it serves now, and the libuv handle */
interface ServedSocket {
  _httpMessage?: ServerResponse | null;
  _handle?: { writeQueueSize?: unknown } | null;
}

/**
 * The bytes a socket still holds for its client, if its response is ended and not yet handed to the kernel whole;
 * else undefined (also when node does not show libuv's count). `writableLength` is what node's stream holds; the handle's `writeQueueSize` what libuv holds of
 * the writes it was given (it goes down as the kernel takes them, while `writableLength` waits for a whole write).
 */
function waitingBytes(socket: Duplex): number | undefined {
  const served = socket as unknown as ServedSocket;
  const res = served._httpMessage;
  if (!res || !res.writableEnded || res.writableFinished) return undefined;
  const queued = served._handle?.writeQueueSize;
  // without libuv's count (a node whose internals moved) a slow reader of one large write looks stuck: judge nothing,
  // so the response keeps the grace period as before
  if (typeof queued !== 'number') return undefined;
  return socket.writableLength + queued;
}

/**
 * Watches `sockets` (every connection the HTTP layer serves, read at each look) every `everyMs` until the returned
 * function is called, and destroys the socket of each ended response that made no progress for `boundMs`.
 */
export function cutUnread(sockets: ReadonlySet<Duplex>, onCut: (waiting: number) => void, boundMs = UNREAD_BOUND_MS, everyMs = 100): () => void {
  const seen = new Map<Duplex, { waiting: number; since: number }>();
  const timer = setInterval(() => {
    const now = Date.now();
    for (const [s] of seen) if (!sockets.has(s)) seen.delete(s);
    for (const s of sockets) {
      const waiting = waitingBytes(s);
      if (waiting === undefined || s.destroyed) {
        seen.delete(s);
        continue;
      }
      const last = seen.get(s);
      if (!last || waiting < last.waiting) {
        seen.set(s, { waiting, since: now });
      } else if (now - last.since >= boundMs) {
        seen.delete(s);
        onCut(waiting);
        s.destroy();
      }
    }
  }, everyMs);
  timer.unref();
  return () => {
    clearInterval(timer);
    seen.clear();
  };
}
