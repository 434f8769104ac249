/**
 * /admin/* — the operator API the CLI uses. Bearer `gateway.admin.token`; with no admin token configured
 * it is open only when the gateway listens on loopback (same rule as /v1), otherwise every call is 403.
 * Errors use the same JSON shape as /v1. Nothing here ever returns a token: bridge URLs are shown with
 * userinfo and query values redacted, and error texts (lastError) go through the secret scrubber.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config/schema.js';
import { decodeSegment } from '../guard.js';
import { isLoopbackHost } from '../../config/load.js';
import type { Router } from '../../router/router.js';
import type { BridgeMesh } from '../../bridge/mesh.js';
import type { Logger } from '../../util/log.js';
import { GatewayError } from '../../wire/errors.js';
import { bearerToken, tokenMatches } from '../../util/secret.js';
import { readJson, sendJson } from '../respond.js';
import { redactUrl, secrets } from '../../util/redact.js';
import type { PeerRow } from '../../bridge/mesh.js';
import type { RouteHandler } from '../server.js';
import type { SessionStore } from '../../sessions/store.js';
import type { Session } from '../../sessions/model.js';
import { TRANSFER_TIMEOUT_MS, transferMarker } from '../../sessions/transfer.js';
import { VERSION } from '../../version.js';
import { ADMIN_TRANSFER_BOUND_MS, fromStore } from './admin-store.js';
import { listLimit, sessionAfterParam, sessionCursorOf } from './admin-page.js';

export interface AdminDeps {
  config: Config;
  gatewayId: string;
  router: Router;
  mesh: BridgeMesh;
  store: SessionStore;
  logger: Logger;
}

/** One line per session for lists (the full record comes from GET /admin/sessions/:id). */
export function sessionSummary(s: Session) {
  const last = s.history[s.history.length - 1];
  const m = transferMarker(s);
  return {
    id: s.id,
    kind: s.kind,
    status: s.status,
    owner: s.ownerGatewayId,
    movedTo: s.movedTo ?? null,
    transfer: m ? `${m.state} ${m.state === 'offering' ? 'to' : 'from'} ${m.peer}` : null,
    target: s.target,
    turns: s.history.length,
    lastTurn: last ? { turnId: last.turnId, status: last.status } : null,
    updatedAt: new Date(s.updatedAt).toISOString(),
  };
}

const SESSION_STATUSES = new Set(['active', 'running', 'closed', 'moved']);

/** Which methods each admin path takes (for 405 + Allow). */
const ADMIN_METHODS: Array<[RegExp, string]> = [
  [/^\/admin\/(status|channels|bridges\/channels|sessions)$/, 'GET'],
  [/^\/admin\/bridges$/, 'GET, POST'],
  [/^\/admin\/bridges\/[^/]+$/, 'DELETE'],
  [/^\/admin\/sessions\/[^/]+$/, 'GET'],
  [/^\/admin\/sessions\/[^/]+\/transfer$/, 'POST'],
];

/** Admin bearer check (also used by admin-keys.ts). */
export function authorize(req: IncomingMessage, cfg: Config): void {
  const token = cfg.gateway.admin.token;
  if (!token) {
    if (isLoopbackHost(cfg.gateway.host)) return;
    throw new GatewayError('FORBIDDEN', 'admin API disabled: set gateway.admin.token to use it on a non-loopback bind');
  }
  if (!tokenMatches(bearerToken(req.headers.authorization), [token])) {
    throw new GatewayError(
      'UNAUTHORIZED',
      req.headers.authorization ? 'invalid admin token' : 'missing admin token (send Authorization: Bearer <admin token>)',
    );
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
        peers: d.mesh.list().map(safePeer),
        // the links a reload or a newer link let go, counted as on /admin/overview: `peers` keeps to the current ones
        retiringLinks: d.mesh.retiringSummary(),
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
      // with the links still draining after a reload or a replacement, or routing until their bridge's new link opens
      ok({ peers: d.mesh.list({ retiring: true }).map(safePeer) });
      return true;
    }
    if (path === '/admin/bridges/channels' && method === 'GET') {
      ok({ peers: d.mesh.channels() });
      return true;
    }
    if (path === '/admin/bridges' && method === 'POST') {
      const body = (await readJson(req, 64 * 1024)) as Record<string, unknown>;
      if (!body || typeof body !== 'object') throw new GatewayError('INVALID_REQUEST', 'body: must be a JSON object');
      if (typeof body.url !== 'string') throw new GatewayError('INVALID_REQUEST', 'url: required string', { param: 'url' });
      if (typeof body.token !== 'string' || body.token.length === 0)
        throw new GatewayError('INVALID_REQUEST', 'the bridge token is required, a string', { param: 'token' });
      if (body.name !== undefined && typeof body.name !== 'string') throw new GatewayError('INVALID_REQUEST', 'name: must be a string', { param: 'name' });
      const share = body.share;
      if (share !== undefined && typeof share !== 'boolean' && !(Array.isArray(share) && share.every((s) => typeof s === 'string'))) {
        throw new GatewayError('INVALID_REQUEST', 'share: true, false, or a list of channel names', { param: 'share' });
      }
      if (body.ca !== undefined && (typeof body.ca !== 'string' || !body.ca.includes('-----BEGIN CERTIFICATE-----'))) {
        throw new GatewayError('INVALID_REQUEST', "ca: a PEM certificate (the CA or the peer's self-signed certificate)", { param: 'ca' });
      }
      // a token added at run time is a secret from now on, as is a credential in its URL
      secrets.register(body.token);
      secrets.registerUrl(body.url);
      const row = d.mesh.connect({ url: body.url, token: body.token, name: body.name, share, ca: body.ca });
      const shown = safePeer(row);
      d.logger.info('bridge added at run time', { name: shown.name, url: shown.url });
      ok({ peer: shown }, 201);
      return true;
    }
    if (path === '/admin/sessions' && method === 'GET') {
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const status = q.get('status') ?? undefined;
      if (status !== undefined && !SESSION_STATUSES.has(status))
        throw new GatewayError('INVALID_REQUEST', 'status: one of active, running, closed, moved', { param: 'status' });
      // the most recently updated `limit` (each whole record is read, with its history): a store of many sessions is
      // never read at once, which held the event loop for seconds and the records in memory; `after` (keyset) pages on
      const limit = listLimit(q);
      const after = sessionAfterParam(q);
      // bounded, and a store that fails is a 503, never a 500 (admin-store.ts)
      const list = await fromStore('session', 'list', d.logger, () =>
        d.store.list({ ...(status ? { status: status as Session['status'] } : {}), limit: limit + 1, ...(after ? { after } : {}) }),
      );
      const page = list.slice(0, limit);
      const more = list.length > limit;
      ok({ sessions: page.map(sessionSummary), more, ...(more ? { next: sessionCursorOf(page[page.length - 1]!) } : {}) });
      return true;
    }
    const sm = /^\/admin\/sessions\/([^/]+)(\/transfer)?$/.exec(path);
    if (sm) {
      const id = decodeSegment(sm[1]!, 'session');
      if (!sm[2] && method === 'GET') {
        const s = await fromStore('session', 'show', d.logger, () => d.store.get(id));
        if (!s) throw new GatewayError('NOT_FOUND', `no session ${id}`);
        ok({ session: s });
        return true;
      }
      if (sm[2] && method === 'POST') {
        const body = (await readJson(req, 16 * 1024)) as Record<string, unknown>;
        if (!body || typeof body !== 'object' || typeof body.to !== 'string' || body.to.length === 0)
          throw new GatewayError('INVALID_REQUEST', 'to: required, a peer name or gateway id', { param: 'to' });
        if (body.whenRunning !== undefined && body.whenRunning !== 'wait' && body.whenRunning !== 'refuse')
          throw new GatewayError('INVALID_REQUEST', 'whenRunning: "wait" or "refuse"', { param: 'whenRunning' });
        if (!d.mesh.transfers) throw new GatewayError('UNSUPPORTED', 'this gateway has no session store');
        const peer = d.mesh.resolvePeer(body.to);
        if (!peer) throw new GatewayError('NOT_FOUND', `no connected peer named or with id "${body.to}"`, { param: 'to' });
        const transfers = d.mesh.transfers;
        const whenRunning = body.whenRunning;
        // the transfer's own refusals are GatewayErrors; anything else it throws came from the session store. Bounded
        // by its own timeout and one store read past it: a store that stops answering under it is a 503, not a hang
        // (the transfer goes on, and settles itself when the store answers: the message says to check)
        const moved = await fromStore(
          'session',
          'transfer',
          d.logger,
          () => transfers.transfer(id, peer.peer.id, { whenRunning, timeoutMs: TRANSFER_TIMEOUT_MS }),
          { change: true, timeoutMs: ADMIN_TRANSFER_BOUND_MS },
        );
        ok({ session: sessionSummary(moved), to: { id: peer.peer.id, name: peer.name } });
        return true;
      }
    }
    const m = /^\/admin\/bridges\/([^/]+)$/.exec(path);
    if (m && method === 'DELETE') {
      const target = decodeSegment(m[1]!, 'bridge');
      if (!d.mesh.disconnect(target)) throw new GatewayError('NOT_FOUND', `no bridge named or with id "${target}"`);
      ok({ disconnected: target });
      return true;
    }
    const allow = ADMIN_METHODS.find(([re]) => re.test(path))?.[1];
    if (allow) throw new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use ${allow}`, { details: { allow } });
    throw new GatewayError('NOT_FOUND', `no admin route ${method} ${path}`);
  };
}

/** A peer row fit to show (here and in /admin/overview): its URL as redactUrl shows it, lastError scrubbed. */
export function safePeer(p: PeerRow): PeerRow {
  return { ...p, url: redactUrl(p.url), lastError: p.lastError === null ? null : secrets.scrubError(p.lastError) };
}

export function channelRows(d: Pick<AdminDeps, 'router'>) {
  return d.router.all().map((c) => ({
    id: c.id,
    channel: c.channel,
    provider: c.provider,
    peer: c.peer?.name ?? null,
    mock: c.capabilities.synthetic,
    models: c.models,
    priority: c.priority,
    weight: c.weight,
    inflight: d.router.inflightOf(c.id),
    maxConcurrent: c.load().maxConcurrent,
    latencyMsEwma: Math.round(d.router.latencyOf(c.id)),
    health: scrubHealth(d.router.healthOf(c.id)),
    // the models it answered it does not have, skipped for it until `until` (health is not affected)
    skippedModels: d.router.skippedOf(c.id).map((m) => ({ ...m, error: secrets.scrubError(m.error) })),
  }));
}

function scrubHealth<T extends { lastError: string | null }>(h: T): T {
  return h.lastError === null ? h : { ...h, lastError: secrets.scrubError(h.lastError) };
}
