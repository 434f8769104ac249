/**
 * How much an `/acp` stream may hold for a client that reads slower than its updates come.
 *
 * A turn never waits for a client: its updates go to the session's update log and to every stream that carries
 * them, and a client that stops reading must not stall the agent or the other clients. So the streams do not
 * wait for 'drain' either; instead each write first checks the bytes still waiting for the client (the
 * response's `writableLength`, the WebSocket's `bufferedAmount`: one getter per write, no promise). Past
 * `acp.maxStreamBacklogBytes` the stream is cut: it ends with one `CLIENT_TOO_SLOW` error envelope that names
 * the last `seq` it carried, and the client resumes from the update log (`xworkmate.tasks.get { sessionId,
 * afterSeq }`, `GET /api/v1/sessions/{id}/events?after_seq=`, or the WebSocket resume). What one stream holds is
 * thus at most the bound plus the one envelope written while under it (docs/acp.md, "Slow clients").
 *
 * `AcpStreams` counts the open streams' backlog for `/metrics` (read at scrape time) and the streams cut.
 */
import { GatewayError } from '../../wire/errors.js';

/**
 * A cut SSE response whose client does not take its end within this long is destroyed: a client that never
 * reads again would otherwise hold the bound for as long as its connection stays up. (A cut WebSocket gets the
 * same from `ws`'s close handshake timeout, also 30 s.)
 */
export const CUT_LINGER_MS = 30_000;

export type StreamTransport = 'sse' | 'ws';

/** The bytes one open stream holds for its client. */
type Backlog = () => number;

export class AcpStreams {
  private readonly open = new Set<Backlog>();
  /** streams cut because their client read too slowly, by transport */
  readonly cut: Record<StreamTransport, number> = { sse: 0, ws: 0 };

  /** Counts a stream until its returned `untrack` is called (at its close). */
  track(backlog: Backlog): () => void {
    this.open.add(backlog);
    return () => this.open.delete(backlog);
  }

  /** Bytes waiting for clients: over every open stream, and the largest one's. Read at scrape time. */
  backlog(): { total: number; max: number } {
    let total = 0;
    let max = 0;
    for (const b of this.open) {
      const n = b();
      total += n;
      if (n > max) max = n;
    }
    return { total, max };
  }
}

/** The error a cut stream ends with; `sessionId` / `lastSeq`: of the last update the stream carried, if any. */
export function clientTooSlow(maxBacklogBytes: number, last: { sessionId: string; lastSeq: number } | undefined): GatewayError {
  const resume = last
    ? `Resume after seq ${last.lastSeq} from the update log: xworkmate.tasks.get { sessionId, afterSeq: ${last.lastSeq} }, GET /api/v1/sessions/{id}/events?after_seq=${last.lastSeq}, or the WebSocket resume`
    : 'Resume each session after the last seq you received from the update log: xworkmate.tasks.get { sessionId, afterSeq }, GET /api/v1/sessions/{id}/events?after_seq=, or the WebSocket resume';
  return new GatewayError(
    'CLIENT_TOO_SLOW',
    `the client read this stream slower than its updates came (more than ${maxBacklogBytes} bytes were waiting for it): the stream ends here and the turn goes on. ${resume}`,
    { details: { maxBacklogBytes, ...(last ?? {}) } },
  );
}
