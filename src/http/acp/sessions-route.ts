/**
 * The task-session REST routes (addendum 2026-10 §6), beside `/acp/rpc` and with its access rules (Origin from
 * `acp.allowedOrigins`, then Bearer: `acp.tokens` or a virtual key created with `acp: true`):
 *
 *   GET  /api/v1/sessions/{id}/events?after_seq=N&limit=L  → 200 { events: [{ seq, type, payload, createdAt }], lastEventSeq }
 *   POST /api/v1/sessions/{id}/messages { clientRequestId, text } → 201 { event, run }; 200 with the original when the id repeats
 *
 * Errors are the gateway's JSON error body (`{ error: { message, type, code } }`, docs/errors.md). Other paths
 * under `/api/v1/sessions/` are 404, other methods 405. The logic is src/acp/session-api.ts.
 */
import type { RouteHandler } from '../server.js';
import { readBody, sendError, sendJson } from '../respond.js';
import { jsonDepthFor, parseJsonBody } from '../body.js';
import { decodeSegment, intParam, jsonContentTypeError } from '../guard.js';
import { GatewayError, type ErrorCode } from '../../wire/errors.js';
import type { AcpRpcError } from './envelope.js';
import { reqString } from '../../acp/params.js';
import { EVENTS_LIMIT_DEFAULT, EVENTS_LIMIT_MAX, messageBody, type SessionApi } from '../../acp/session-api.js';
import { authorize, checkOrigin, corsHeaders, sendPreflight, type AcpKeys } from './access.js';
import { traceOf } from '../../obs/request-meter.js';

export const SESSIONS_PREFIX = '/api/v1/sessions/';

export interface SessionsRouteOptions {
  tokens: readonly string[];
  keys?: AcpKeys | undefined;
  allowedOrigins: readonly string[];
  maxBodyBytes: number;
  sessions: SessionApi;
}

/**
 * An access refusal (made for /acp/rpc's envelope: ORIGIN_NOT_ALLOWED, UNAUTHORIZED, FORBIDDEN,
 * KEY_STORE_UNAVAILABLE with its Retry-After) in the gateway's error format.
 */
const asGatewayError = (e: AcpRpcError) =>
  new GatewayError(e.dataCode as ErrorCode, e.message, e.retryAfterSec !== undefined ? { retryAfterSec: e.retryAfterSec } : {});

export function sessionsRoute(o: SessionsRouteOptions): RouteHandler {
  return async (req, res, path, requestId) => {
    if (!path.startsWith(SESSIONS_PREFIX)) return false;
    const headers: Record<string, string> = { 'x-request-id': requestId };
    const refuse = (err: unknown) => {
      req.resume();
      if (!res.headersSent) for (const [k, v] of Object.entries(headers)) res.setHeader(k, v);
      sendError(res, err);
      return true;
    };
    const originErr = checkOrigin(req, o.allowedOrigins);
    if (originErr) return refuse(asGatewayError(originErr));
    Object.assign(headers, corsHeaders(req));

    const parts = path.slice(SESSIONS_PREFIX.length).split('/');
    const action = parts.length === 2 && parts[0] !== '' ? parts[1] : undefined;
    const method = action === 'events' ? 'GET' : action === 'messages' ? 'POST' : undefined;
    if (!method)
      return refuse(
        new GatewayError(
          'NOT_FOUND',
          `no route ${path}: the session routes are ${SESSIONS_PREFIX}{id}/events (GET) and ${SESSIONS_PREFIX}{id}/messages (POST)`,
        ),
      );
    if (req.method === 'OPTIONS') {
      sendPreflight(res, headers, `${method}, OPTIONS`);
      return true;
    }

    const access = await authorize(req, o.tokens, o.keys);
    if (!('caller' in access)) return refuse(asGatewayError(access));
    if (req.method !== method) {
      return refuse(
        new GatewayError('METHOD_NOT_ALLOWED', `${req.method ?? '?'} is not allowed on ${path}; use ${method}`, { details: { allow: `${method}, OPTIONS` } }),
      );
    }
    try {
      const sessionId = reqString({ sessionId: decodeSegment(parts[0]!, 'sessionId') }, 'sessionId');
      const caller = access.caller;
      if (method === 'GET') {
        const query = new URLSearchParams(req.url?.split('?')[1] ?? '');
        const afterSeq = intParam(query, 'after_seq', 0, 0, Number.MAX_SAFE_INTEGER);
        const limit = intParam(query, 'limit', EVENTS_LIMIT_DEFAULT, 1, EVENTS_LIMIT_MAX);
        sendJson(res, 200, await o.sessions.events(sessionId, afterSeq, limit, caller), { ...headers, 'cache-control': 'no-store' });
        return true;
      }
      const bad = jsonContentTypeError(req);
      if (bad) return refuse(bad);
      const body = messageBody(parseJsonBody(await readBody(req, o.maxBodyBytes), jsonDepthFor(req)));
      const out = await o.sessions.postMessage(sessionId, body, caller, traceOf(res));
      sendJson(res, out.created ? 201 : 200, { event: out.event, run: out.run }, { ...headers, 'cache-control': 'no-store' });
    } catch (err) {
      return refuse(err);
    }
    return true;
  };
}
