/**
 * `POST /acp/rpc`: JSON-RPC over HTTP, replying with one JSON envelope, or (Accept: text/event-stream) an SSE
 * stream of notification envelopes, then the final envelope, then `data: [DONE]`. Also the CORS preflight,
 * and the two paths that must never work: `/acp-server/*` (410) and `/gateway/openclaw` (not a route: 404).
 *
 * Order of checks: Origin (403) → OPTIONS preflight (204) → Bearer auth (401) → POST only (405) → body size
 * (413) → JSON (400 -32700) → JSON-RPC shape (400 -32600). Method-level errors are HTTP 200.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteHandler } from '../server.js';
import { errorHeaders, readBody } from '../respond.js';
import { jsonDepthFor, parseJsonBody } from '../body.js';
import type { Logger } from '../../util/log.js';
import { AcpRpcError, RPC, errorEnvelope, notificationEnvelope, parseRequest, resultEnvelope, toRpcError, type RpcId } from './envelope.js';
import { GatewayError, toGatewayError } from '../../wire/errors.js';
import { authorize, checkOrigin, corsHeaders, sendPreflight, type AcpKeys } from './access.js';
import type { Dispatch } from '../../acp/methods.js';
import { traceOf } from '../../obs/request-meter.js';

export const DEFAULT_KEEPALIVE_MS = 20_000;

export interface AcpHttpOptions {
  tokens: readonly string[];
  /** virtual keys created with `acp: true` are accepted too (absent: `tokens` only) */
  keys?: AcpKeys | undefined;
  allowedOrigins: readonly string[];
  maxBodyBytes: number;
  dispatch: Dispatch;
  logger: Logger;
  /** quiet SSE streams get `xworkmate.bridge.keepalive` this often */
  keepaliveMs?: number;
}

function sendEnvelope(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  let text: string;
  try {
    text = JSON.stringify(body);
  } catch {
    // a result no string can hold: the caller still gets an envelope for its id, never a bare 500
    const id = (body as { id?: RpcId | null }).id ?? null;
    text = JSON.stringify(errorEnvelope(id, new GatewayError('INTERNAL', 'the result could not be serialised')));
    status = 500;
  }
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

function wantsSse(req: IncomingMessage): boolean {
  const a = req.headers.accept;
  return typeof a === 'string' && a.toLowerCase().includes('text/event-stream');
}

export function acpHttpRoute(o: AcpHttpOptions): RouteHandler {
  const keepaliveMs = o.keepaliveMs ?? DEFAULT_KEEPALIVE_MS;

  const fail = (res: ServerResponse, headers: Record<string, string>, id: RpcId | null, e: AcpRpcError) => {
    const h = { ...headers };
    if (e.httpStatus === 413) h.connection = 'close';
    sendEnvelope(res, e.httpStatus, errorEnvelope(id, e), h);
  };

  return async (req, res, path, requestId) => {
    const isRpc = path === '/acp/rpc';
    const isDirect = path === '/acp-server' || path.startsWith('/acp-server/');
    if (!isRpc && !isDirect) return false; // /gateway/openclaw included: not a route, the server answers 404

    const headers: Record<string, string> = { 'x-request-id': requestId };
    const originErr = checkOrigin(req, o.allowedOrigins);
    if (originErr) {
      if (req.method !== 'POST') req.resume();
      fail(res, headers, null, originErr);
      return true;
    }
    Object.assign(headers, corsHeaders(req));

    if (isRpc && req.method === 'OPTIONS') {
      sendPreflight(res, headers, 'POST, OPTIONS');
      return true;
    }

    const access = await authorize(req, o.tokens, o.keys);
    if (access instanceof AcpRpcError) {
      req.resume();
      fail(res, headers, null, access);
      return true;
    }
    const caller = access.caller;
    if (isDirect) {
      req.resume();
      fail(
        res,
        headers,
        null,
        new AcpRpcError(
          RPC.PROVIDER_DIRECT_PATH_DISABLED,
          'PROVIDER_DIRECT_PATH_DISABLED',
          'direct provider paths (/acp-server/*) are disabled: send every task to /acp/rpc with routing params',
          {},
          410,
        ),
      );
      return true;
    }
    if (req.method !== 'POST') {
      req.resume();
      fail(
        res,
        { ...headers, allow: 'POST, OPTIONS' },
        null,
        new AcpRpcError(RPC.INVALID_REQUEST, 'METHOD_NOT_ALLOWED', `HTTP method ${req.method ?? '?'} not allowed on /acp/rpc; use POST`, {}, 405),
      );
      return true;
    }

    let body: Buffer;
    try {
      body = await readBody(req, o.maxBodyBytes);
    } catch (err) {
      // each as on /v1 (the table's status and code: 413, 408, 503 buffer full with Retry-After); the body was
      // not read to its end, so the connection cannot carry another request
      const e = toGatewayError(err);
      sendEnvelope(res, e.status, errorEnvelope(null, e), { ...headers, ...errorHeaders(e), connection: 'close' });
      return true;
    }
    let value: unknown;
    try {
      // gateway.maxJsonDepth holds here as on every JSON body
      value = parseJsonBody(body, jsonDepthFor(req));
    } catch (err) {
      fail(res, headers, null, toRpcError(err));
      return true;
    }
    const parsed = parseRequest(value);
    if (!parsed.ok) {
      fail(res, headers, parsed.id, parsed.error);
      return true;
    }
    const rpc = parsed.request;

    if (rpc.id === undefined) {
      // a notification: it runs (and keeps running), nothing is replied
      void o
        .dispatch(rpc, { notify: () => undefined, trace: traceOf(res), caller })
        .catch((err: unknown) => o.logger.debug('acp notification failed', { requestId, method: rpc.method, error: String(err) }));
      res.writeHead(204, headers);
      res.end();
      return true;
    }
    const id = rpc.id;

    if (!wantsSse(req)) {
      let reply: Record<string, unknown>;
      try {
        reply = resultEnvelope(id, await o.dispatch(rpc, { notify: () => undefined, trace: traceOf(res), caller }));
      } catch (err) {
        reply = errorEnvelope(id, err);
      }
      if (!res.destroyed) sendEnvelope(res, 200, reply, headers);
      return true;
    }

    // SSE: the turn does not depend on this response; a client that goes away only stops the writes
    res.socket?.setNoDelay(true);
    res.writeHead(200, {
      ...headers,
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-accel-buffering': 'no',
    });
    let open = true;
    let lastWrite = Date.now();
    res.once('close', () => {
      open = false;
    });
    const write = (env: unknown) => {
      if (!open || res.writableEnded) return;
      lastWrite = Date.now();
      res.write(`data: ${JSON.stringify(env)}\n\n`);
    };
    const timer = setInterval(
      () => {
        if (Date.now() - lastWrite >= keepaliveMs - 5) write(notificationEnvelope('xworkmate.bridge.keepalive', { intervalMs: keepaliveMs }));
      },
      Math.max(10, Math.floor(keepaliveMs / 4)),
    );
    timer.unref();
    let final: Record<string, unknown>;
    try {
      final = resultEnvelope(
        id,
        await o.dispatch(rpc, { notify: (method, params) => write(notificationEnvelope(method, params)), trace: traceOf(res), caller }),
      );
    } catch (err) {
      final = errorEnvelope(id, err);
    } finally {
      clearInterval(timer);
    }
    write(final);
    if (open && !res.writableEnded) res.end('data: [DONE]\n\n');
    return true;
  };
}
