/** Small response helpers shared by every HTTP route. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { toGatewayError, type GatewayError } from '../wire/errors.js';
import { seqId } from '../util/ids.js';
import { LimitError } from '../keys/limit-error.js';
import { holdsKeySecret, secrets } from '../util/redact.js';

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  sendJsonText(res, status, JSON.stringify(body), headers);
}

/** `sendJson` for a body that already is JSON text (an upstream's answer relayed as received). */
export function sendJsonText(res: ServerResponse, status: number, text: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

/** OpenAI-style error JSON with the status from the error table; Retry-After when known. */
export function sendError(res: ServerResponse, err: unknown): void {
  const e = toGatewayError(err);
  sendErrorBody(res, e, e.toOpenAI());
}

/**
 * The one exit for error bodies, whatever the surface's format (`body`: OpenAI's, Anthropic's, Google's…):
 * the catalogue's status, the headers the error calls for, and the body scrubbed of every known secret and
 * credential shape. A response already started cannot take an error: its socket is destroyed.
 */
export function sendErrorBody(res: ServerResponse, e: GatewayError, body: unknown, status = e.status): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  // a refused reload's problems (`<key path>: <message>`, ours) are scrubbed as problems: a key named like a
  // credential (`gateway.admin.token: Too small: …`) keeps the schema's message (SecretScrubber.scrubProblem)
  const text = secrets.scrubError(JSON.stringify(body), configProblems(e));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...errorHeaders(e) });
  res.end(text);
}

/** The config problems a refused reload's error lists (`details.problems`, src/http/routes/ops.ts). */
function configProblems(e: GatewayError): string[] | undefined {
  const problems = e.code === 'CONFIG_INVALID' ? e.details?.problems : undefined;
  return Array.isArray(problems) ? problems.filter((p): p is string => typeof p === 'string') : undefined;
}

/** The headers an error calls for, whatever the surface's body format (`/v1`, the inbound APIs, `/acp/rpc`). */
export function errorHeaders(e: GatewayError): Record<string, string> {
  const headers: Record<string, string> = {};
  if (e.retryAfterSec !== undefined) headers['retry-after'] = String(Math.ceil(e.retryAfterSec));
  // the body was not read to its end: the connection cannot carry another request
  if (e.status === 413 || e.code === 'REQUEST_TIMEOUT' || e.code === 'BODY_BUFFER_FULL') headers.connection = 'close';
  if (e.status === 405 && typeof e.details?.allow === 'string') headers.allow = e.details.allow;
  if (e instanceof LimitError) Object.assign(headers, e.headers);
  return headers;
}

const VALID_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * x-request-id: echoed when sane, generated otherwise. A key secret is no request id (a client that sends its key in
 * the wrong header): the id is echoed in a response header, sent upstream and logged, and only the log is scrubbed.
 */
export function requestIdOf(req: IncomingMessage): string {
  const h = req.headers['x-request-id'];
  return typeof h === 'string' && VALID_ID.test(h) && !holdsKeySecret(h) ? h : seqId('req');
}

// Body reading lives in body.ts; re-exported for the routes that import it from here.
export { parseJsonBody, readBody, readJson, readJsonSized } from './body.js';
