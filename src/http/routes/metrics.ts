/**
 * GET /metrics — Prometheus text exposition (docs/operations.md lists every series). Bearer
 * `gateway.metrics.token` (so a scraper never holds the admin token) or the admin token; with neither
 * configured, the admin rule applies: open on a loopback bind, 403 elsewhere.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config/schema.js';
import type { GatewayMetrics } from '../../obs/metrics.js';
import { GatewayError } from '../../wire/errors.js';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import type { RouteHandler } from '../server.js';
import { authorize } from './admin.js';

export function metricsRoute(getConfig: () => Config, metrics: GatewayMetrics): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => {
    if (path !== '/metrics') return false;
    res.setHeader('x-request-id', requestId);
    const cfg = getConfig();
    const own = cfg.gateway.metrics.token;
    if (!(own && tokenMatches(bearerToken(req.headers.authorization), [own]))) {
      if (own && !cfg.gateway.admin.token)
        throw new GatewayError(
          'UNAUTHORIZED',
          req.headers.authorization ? 'invalid metrics token' : 'missing metrics token (send Authorization: Bearer <gateway.metrics.token>)',
        );
      authorize(req, cfg);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new GatewayError('METHOD_NOT_ALLOWED', `method ${req.method} not allowed on /metrics; use GET`, { details: { allow: 'GET' } });
    const body = await metrics.text();
    res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  };
}
