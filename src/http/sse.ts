/**
 * SSE writer for /v1 streams. Each chunk is written as it arrives (`data: …\n\n`), headers are sent with
 * the first chunk, Nagle is off for the socket. Writes are corked until the end of the current tick: the
 * events one upstream read carried (often several) leave in one syscall instead of one each, and no event
 * waits for later I/O. A normal end writes `data: [DONE]`; an abnormal end writes
 * an OpenAI-style error event and closes WITHOUT [DONE], so clients can tell.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../wire/errors.js';
import { secrets } from '../util/redact.js';

export { startSse } from '../util/sse-start.js';

// after end() the socket may already serve the next request: only uncork a response still open
function uncork(res: ServerResponse): void {
  if (!res.writableEnded) res.uncork();
}

export function writeSseData(res: ServerResponse, data: string): boolean {
  if (res.writableCorked === 0) {
    res.cork();
    process.nextTick(uncork, res);
  }
  return res.write(`data: ${data}\n\n`);
}

export function endSseDone(res: ServerResponse): void {
  res.end('data: [DONE]\n\n');
}

export function endSseError(res: ServerResponse, err: GatewayError): void {
  res.end(`data: ${secrets.scrubError(JSON.stringify(err.toOpenAI()))}\n\n`);
}
