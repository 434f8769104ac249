/**
 * SSE writer for /v1 streams. Chunks are written as they arrive (`data: …\n\n`); the edge joins the events
 * one upstream read carried (often several, a fast upstream's whole answer) into one write
 * (ChunkStream.takeReady). Headers are sent with the first chunk, Nagle is off for the socket. Writes are
 * corked until the end of the current tick, so what is written in one tick leaves in one syscall and nothing
 * waits for later I/O. A normal end writes `data: [DONE]`; an abnormal end writes an OpenAI-style error
 * event and closes WITHOUT [DONE], so clients can tell.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../wire/errors.js';
import { secrets } from '../util/redact.js';

export { startSse } from '../util/sse-start.js';

// after end() the socket may already serve the next request: only uncork a response still open
function uncork(res: ServerResponse): void {
  if (!res.writableEnded) res.uncork();
}

/** One SSE event carrying `data` (a single line: chunks are JSON without raw newlines). */
export function sseEvent(data: string): string {
  return `data: ${data}\n\n`;
}

/** Writes events (`sseEvent` text, one or several); false when the client's buffer is full (wait for 'drain'). */
export function writeSse(res: ServerResponse, events: string): boolean {
  if (res.writableCorked === 0) {
    res.cork();
    process.nextTick(uncork, res);
  }
  return res.write(events);
}

export function endSseDone(res: ServerResponse): void {
  res.end('data: [DONE]\n\n');
}

export function endSseError(res: ServerResponse, err: GatewayError): void {
  res.end(`data: ${secrets.scrubError(JSON.stringify(err.toOpenAI()))}\n\n`);
}
