/**
 * SSE writer for /v1 streams. Each chunk is written as it arrives (`data: …\n\n`), headers are sent with
 * the first chunk, Nagle is off for the socket. A normal end writes `data: [DONE]`; an abnormal end writes
 * an OpenAI-style error event and closes WITHOUT [DONE], so clients can tell.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../wire/errors.js';
import { secrets } from '../util/redact.js';

export { startSse } from '../util/sse-start.js';

export function writeSseData(res: ServerResponse, data: string): boolean {
  return res.write(`data: ${data}\n\n`);
}

export function endSseDone(res: ServerResponse): void {
  res.end('data: [DONE]\n\n');
}

export function endSseError(res: ServerResponse, err: GatewayError): void {
  res.end(`data: ${secrets.scrubError(JSON.stringify(err.toOpenAI()))}\n\n`);
}
