/**
 * /admin/* — the operator API the CLI uses. Bearer `gateway.admin.token`; with no admin token configured
 * it is open only when the gateway listens on loopback (same rule as /v1), otherwise every call is 403.
 * Errors use the same JSON shape as /v1. Nothing here ever returns a token.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config/schema.js';
import { isLoopbackHost } from '../../config/load.js';
import type { Router } from '../../router/router.js';
import type { BridgeMesh } from '../../bridge/mesh.js';
import type { Logger } from '../../util/log.js';
import { GatewayError } from '../../wire/errors.js';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import { parseJsonBody, readBody, sendJson } from '../respond.js';
import type { RouteHandler } from '../server.js';

export interface AdminDeps {
  config: Config;
  gatewayId: string;
  router: Router;
  mesh: BridgeMesh;
  logger: Logger;
}

export const VERSION = '0.1.0';

function authorize(req: IncomingMessage, cfg: Config): void {
  const token = cfg.gateway.admin.token;
  if (!token) {
    if (isLoopbackHost(cfg.gateway.host)) return;
    throw new GatewayError('FORBIDDEN', 'admin API disabled: set gateway.admin.token to use it on a non-loopback bind');
  }
  if (!tokenMatches(bearerToken(req.headers.authorization), [token])) {
    throw new GatewayError('UNAUTHORIZED', req.headers.authorization ? 'invalid admin token' : 'missing admin token: send Authorization: Bearer <admin token>');
  }
}

export function adminRoutes(d: AdminDeps): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => {
    if (!path.startsWith('/admin/')) return false;
    res.setHeader('x-request-id', requestId);
    authorize(req, d.config);
    const method = req.method ?? 'GET';
    const ok = (body: unknown, status = 200) => sendJson(res, status, body);

    if (path === '/admin/status' && method === 'GET') {
      ok({
        id: d.gatewayId,
        name: d.config.gateway.name,
        version: VERSION,
        channels: channelRows(d),
        peers: d.mesh.list(),
        models: d.router.modelNames(),
        panics: d.router.panics,
      });
      return true;
    }
    if (path === '/admin/channels' && method === 'GET') {
      ok({ channels: channelRows(d) });
      return true;
    }
    if (path === '/admin/bridges' && method === 'GET') {
      ok({ peers: d.mesh.list() });
      return true;
    }
    if (path === '/admin/bridges/channels' && method === 'GET') {
      ok({ peers: d.mesh.channels() });
      return true;
    }
    if (path === '/admin/bridges' && method === 'POST') {
      const body = parseJsonBody(await readBody(req, 64 * 1024)) as Record<string, unknown>;
      if (!body || typeof body !== 'object') throw new GatewayError('INVALID_REQUEST', 'body: must be a JSON object');
      if (typeof body.url !== 'string') throw new GatewayError('INVALID_REQUEST', 'url: required string', { param: 'url' });
      if (typeof body.token !== 'string' || body.token.length === 0) throw new GatewayError('INVALID_REQUEST', 'token: required string', { param: 'token' });
      if (body.name !== undefined && typeof body.name !== 'string') throw new GatewayError('INVALID_REQUEST', 'name: must be a string', { param: 'name' });
      const share = body.share;
      if (share !== undefined && typeof share !== 'boolean' && !(Array.isArray(share) && share.every((s) => typeof s === 'string'))) {
        throw new GatewayError('INVALID_REQUEST', 'share: true, false, or a list of channel names', { param: 'share' });
      }
      const row = d.mesh.connect({ url: body.url, token: body.token, name: body.name as string | undefined, share: share as boolean | string[] | undefined });
      d.logger.info('bridge added at run time', { name: row.name, url: row.url });
      ok({ peer: row }, 201);
      return true;
    }
    const m = /^\/admin\/bridges\/([^/]+)$/.exec(path);
    if (m && method === 'DELETE') {
      const target = decodeURIComponent(m[1]!);
      if (!d.mesh.disconnect(target)) throw new GatewayError('NOT_FOUND', `no bridge named or with id "${target}"`);
      ok({ disconnected: target });
      return true;
    }
    throw new GatewayError('NOT_FOUND', `no admin route ${method} ${path}`);
  };
}

function channelRows(d: AdminDeps) {
  return d.router.all().map((c) => ({
    id: c.id,
    channel: c.channel,
    provider: c.provider,
    peer: c.peer?.name ?? null,
    mock: c.mock,
    models: c.models,
    priority: c.priority,
    weight: c.weight,
    inflight: d.router.inflightOf(c.id),
    maxConcurrent: c.load().maxConcurrent,
    latencyMsEwma: Math.round(d.router.latencyOf(c.id)),
    health: d.router.healthOf(c.id),
  }));
}
