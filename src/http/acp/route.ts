/**
 * `POST /acp/rpc`: JSON-RPC over HTTP, replying with one JSON envelope, or (Accept: text/event-stream) an SSE
 * stream of notification envelopes, then the final envelope, then `data: [DONE]`; a client that reads too slowly
 * gets a CLIENT_TOO_SLOW envelope instead and no `[DONE]` (streams.ts). Also the CORS preflight,
 * and the two paths that must never work: `/acp-server/*` (410) and `/gateway/openclaw` (not a route: 404).
 *
 * A plain (not upgraded) request to `/acp`, the WebSocket entry, gets 426 UPGRADE_REQUIRED after the Origin and
 * Bearer checks.
 *
 * Order of checks: Origin (403) → OPTIONS preflight (204) → Bearer auth (401) → POST only (405) → body size
 * (413) → JSON (400 -32700) → JSON-RPC shape (400 -32600). Method-level errors are HTTP 200.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RouteHandler } from '../server.js';
import { errorHeaders, readBody } from '../respond.js';
import { jsonDepthFor, parseJsonBody } from '../body.js';
import type { Logger } from '../../util/log.js';
import { AcpRpcError, RPC, errorEnvelope, notificationText, parseRequest, resultEnvelope, toRpcError, type RpcId } from './envelope.js';
import { GatewayError, toGatewayError } from '../../wire/errors.js';
import { authorize, checkOrigin, corsHeaders, sendPreflight, type AcpKeys } from './access.js';
import type { Dispatch } from '../../acp/methods.js';
import { traceOf } from '../../obs/request-meter.js';
import { clientTooSlow, CUT_LINGER_MS, type AcpStreams } from './streams.js';
import { quotedMethod } from '../../acp/params.js';

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
  /** an SSE stream with more than this waiting for its client is cut (`acp.maxStreamBacklogBytes`, streams.ts) */
  maxStreamBacklogBytes: number;
  /** open streams' backlog and cuts, for /metrics */
  streams?: AcpStreams | undefined;
  /** a cut stream whose client has not taken its end after this long is destroyed; default CUT_LINGER_MS */
  cutLingerMs?: number;
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
  const maxBacklog = o.maxStreamBacklogBytes;
  const lingerMs = o.cutLingerMs ?? CUT_LINGER_MS;

  const fail = (res: ServerResponse, headers: Record<string, string>, id: RpcId | null, e: AcpRpcError) => {
    const h = { ...headers };
    if (e.httpStatus === 413) h.connection = 'close';
    if (e.retryAfterSec !== undefined) h['retry-after'] = String(Math.ceil(e.retryAfterSec));
    sendEnvelope(res, e.httpStatus, errorEnvelope(id, e), h);
  };

  return async (req, res, path, requestId) => {
    const isRpc = path === '/acp/rpc';
    const isDirect = path === '/acp-server' || path.startsWith('/acp-server/');
    // `/acp` is the WebSocket entry (ws.ts); a plain request there is told so, in the entry's own format
    const isWsEntry = path === '/acp';
    if (!isRpc && !isDirect && !isWsEntry) return false; // /gateway/openclaw included: not a route, the server answers 404

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
    if (isWsEntry) {
      req.resume();
      fail(
        res,
        { ...headers, upgrade: 'websocket', connection: 'Upgrade' },
        null,
        new AcpRpcError(
          RPC.INVALID_REQUEST,
          'UPGRADE_REQUIRED',
          '/acp is the WebSocket entry: open it with a WebSocket upgrade (GET, Upgrade: websocket), or POST JSON-RPC requests to /acp/rpc',
          {},
          426,
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
        .catch((err: unknown) => o.logger.debug('acp notification failed', { requestId, method: quotedMethod(rpc.method), error: String(err) }));
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

    // SSE: the turn does not depend on this response; a client that goes away only stops the writes, and one
    // that reads too slowly gets its stream cut (streams.ts): the turn never waits for it
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
    // the last update this stream carried: a cut stream tells its client where to resume
    let lastSession: string | undefined;
    let lastSeq = 0;
    const last = () => (lastSession === undefined ? undefined : { sessionId: lastSession, lastSeq });
    const untrack = o.streams?.track(() => res.writableLength);
    res.once('close', () => {
      open = false;
      untrack?.();
    });
    const cut = () => {
      open = false;
      clearInterval(timer);
      if (o.streams) o.streams.cut.sse++;
      o.logger.info('acp stream cut: the client reads slower than its updates come', {
        requestId,
        waitingBytes: res.writableLength,
        maxStreamBacklogBytes: maxBacklog,
        ...last(),
      });
      // no [DONE]: the turn has not ended. Its end must reach the client within the linger, or the socket goes
      res.end(`data: ${JSON.stringify(errorEnvelope(id, clientTooSlow(maxBacklog, last())))}\n\n`);
      const linger = setTimeout(() => res.destroy(), lingerMs);
      linger.unref();
      const done = () => clearTimeout(linger);
      res.once('finish', done);
      res.once('close', done);
    };
    /** false when nothing was written (the stream is gone, or cut now); `json`: one envelope */
    const write = (json: string): boolean => {
      if (!open || res.writableEnded) return false;
      if (res.writableLength > maxBacklog) {
        cut();
        return false;
      }
      lastWrite = Date.now();
      res.write(`data: ${json}\n\n`);
      return true;
    };
    const notify = (method: string, params: Record<string, unknown>) => {
      if (write(notificationText(method, params)) && typeof params.seq === 'number' && typeof params.sessionId === 'string') {
        lastSession = params.sessionId;
        lastSeq = params.seq;
      }
    };
    const timer = setInterval(
      () => {
        if (Date.now() - lastWrite >= keepaliveMs - 5) write(notificationText('xworkmate.bridge.keepalive', { intervalMs: keepaliveMs }));
      },
      Math.max(10, Math.floor(keepaliveMs / 4)),
    );
    timer.unref();
    let final: Record<string, unknown>;
    try {
      final = resultEnvelope(id, await o.dispatch(rpc, { notify, trace: traceOf(res), caller }));
    } catch (err) {
      final = errorEnvelope(id, err);
    } finally {
      clearInterval(timer);
    }
    if (write(JSON.stringify(final))) res.end('data: [DONE]\n\n');
    return true;
  };
}
