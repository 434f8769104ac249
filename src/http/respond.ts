/** Small response helpers shared by every HTTP route. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError, toGatewayError } from '../wire/errors.js';
import { seqId } from '../util/ids.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** OpenAI-style error JSON with the status from the error table; Retry-After when known. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toGatewayError(err);
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string> = {};
  if (e.retryAfterSec !== undefined) headers['retry-after'] = String(Math.ceil(e.retryAfterSec));
  if (e.status === 413) headers.connection = 'close';
  if (e.status === 405 && typeof e.details?.allow === 'string') headers.allow = e.details.allow;
  sendJson(res, e.status, e.toOpenAI(), headers);
}

const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** x-request-id: echoed when sane, generated otherwise. */
export function requestIdOf(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && VALID_ID.test(h) ? h : seqId('req');
}

/** Reads the body up to `limit` bytes; over the limit → PAYLOAD_TOO_LARGE (the rest is not read). */
export function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length']);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new GatewayError('PAYLOAD_TOO_LARGE', `request body is ${declared} bytes; the limit is ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let size = 0;
    const onData = (b: Buffer) => {
      size += b.length;
      if (size > limit) {
        req.off('data', onData);
        req.resume();
        reject(new GatewayError('PAYLOAD_TOO_LARGE', `request body exceeds the limit of ${limit} bytes`));
        return;
      }
      parts.push(b);
    };
    req.on('data', onData);
    req.once('end', () => resolve(parts.length === 1 ? parts[0]! : Buffer.concat(parts, size)));
    req.once('error', (err) => reject(new GatewayError('INVALID_REQUEST', 'request body could not be read', { cause: err })));
  });
}

export function parseJsonBody(buf: Buffer): unknown {
  if (buf.length === 0) throw new GatewayError('INVALID_JSON', 'request body is empty; expected a JSON object');
  try {
    return JSON.parse(buf.toString('utf8'));
  } catch (err) {
    throw new GatewayError('INVALID_JSON', `request body is not valid JSON: ${(err as Error).message}`);
  }
}
