/**
 * SSE framing for /v1 streams. The exchange's pump (src/apis/common/exchange.ts) writes a whole upstream
 * read's events at once, corked until the end of the tick (`writeSse`), so the last events and the end leave
 * in one syscall. A normal end writes `data: [DONE]`; an abnormal end writes an OpenAI-style error event and
 * closes WITHOUT [DONE], so clients can tell.
 */
import type { ServerResponse } from 'node:http';
import type { GatewayError } from '../wire/errors.js';
import { secrets } from '../util/redact.js';
import { sseFrame } from '../util/lines.js';

export { startSse } from '../util/sse-start.js';

/** One SSE event carrying `data` (over several `data:` lines when it holds newlines: sseFrame). */
export function sseEvent(data: string): string {
  return sseFrame(data);
}

export function endSseDone(res: ServerResponse): void {
  res.end('data: [DONE]\n\n');
}

export function endSseError(res: ServerResponse, err: GatewayError): void {
  res.end(`data: ${secrets.scrubError(JSON.stringify(err.toOpenAI()))}\n\n`);
}
