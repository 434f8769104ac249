/**
 * /admin/keys and /admin/usage — virtual keys and usage reports over the admin API (same bearer rule and
 * error shape as admin.ts). A secret appears only in the answers to create and rotate, never again.
 *
 *   POST /admin/keys                 {name, owner?, models?, expiresAt?, limits?, budget?} → 201 {key, secret}
 *   GET  /admin/keys?limit=&after=   → {keys, more, next?}  (a page by name; admin-page.ts)
 *   GET  /admin/keys/:idOrName       → {key}  (with this period's budget spend)
 *   POST /admin/keys/:idOrName/disable | /enable | /rotate → {key} (rotate: {key, secret})
 *   GET  /admin/usage?key=&by=model|key|peer|day|channel&since=<ISO date | epoch ms | 24h | 7d>
 *                                    → {by, since, rows, total}
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../../config/schema.js';
import { decodeSegment } from '../guard.js';
import type { KeyService } from '../../keys/service.js';
import { expiryFromText, keySummary } from '../../keys/model.js';
import type { UsageGroup } from '../../usage/record.js';
import { GatewayError } from '../../wire/errors.js';
import { readJson, sendJson } from '../respond.js';
import type { RouteHandler } from '../server.js';
import { authorize } from './admin.js';
import { fromStore } from './admin-store.js';
import { afterParam, cursorOf, listLimit } from './admin-page.js';
import type { Logger } from '../../util/log.js';

const GROUPS = new Set<UsageGroup>(['model', 'key', 'peer', 'day', 'channel']);

/**
 * `24h`, `7d`, `30m`, epoch ms, or an ISO date or date-time as `--expires` takes them (EXPIRES_FORMS: a date is its
 * UTC midnight, a date-time has a zone) → epoch ms. Not Date.parse: it took `-5` for May 2001 and `Dec 25 2027` in
 * the gateway's local time.
 */
export function parseSince(v: string, now = Date.now()): number {
  const rel = /^(\d+)([mhd])$/.exec(v);
  const t = rel
    ? now - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as 'm' | 'h' | 'd']
    : /^\d+$/.test(v)
      ? Number(v)
      : (expiryFromText(v) ?? NaN);
  // a time a Date can hold (±8.64e15 ms): a duration too long for it is as wrong as a bad date
  if (Number.isNaN(new Date(t).getTime()))
    throw new GatewayError('INVALID_REQUEST', 'since: an ISO date, epoch ms, or a duration such as 24h, 7d, 30m', { param: 'since' });
  return t;
}

export function adminKeyRoutes(d: { config: Config; keys: KeyService; logger: Logger }): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => {
    if (path !== '/admin/keys' && !path.startsWith('/admin/keys/') && path !== '/admin/usage') return false;
    res.setHeader('x-request-id', requestId);
    authorize(req, d.config);
    const method = req.method ?? 'GET';
    const ok = (body: unknown, status = 200) => sendJson(res, status, body);
    // every call below reads or writes the key store: bounded, and a store that fails is a 503, never a 500; while it
    // is known to fail (a read just failed or timed out), at once (admin-store.ts, KeyCache.failFast)
    const store = <T>(what: string, work: () => Promise<T>, change = false) => fromStore('key', what, d.logger, work, { change, health: d.keys.cache });

    if (path === '/admin/usage') {
      if (method !== 'GET') throw notAllowed(method, path, 'GET');
      const q = new URL(req.url ?? '/', 'http://x').searchParams;
      const by = (q.get('by') ?? 'model') as UsageGroup;
      if (!GROUPS.has(by)) throw new GatewayError('INVALID_REQUEST', 'by: one of model, key, peer, day, channel', { param: 'by' });
      const since = q.get('since') ? parseSince(q.get('since')!) : undefined;
      const r = await store('usage', () => d.keys.usage({ by, since, key: q.get('key') ?? undefined }));
      ok({ by, since: since === undefined ? null : new Date(since).toISOString(), ...r });
      return true;
    }
    if (path === '/admin/keys') {
      if (method === 'GET') {
        const q = new URL(req.url ?? '/', 'http://x').searchParams;
        const limit = listLimit(q);
        const after = afterParam(q);
        const page = await store('list', () => d.keys.page(after, limit));
        const more = page.next !== undefined;
        ok({ keys: page.keys.map((k) => keySummary(k)), more, ...(more ? { next: cursorOf(page.next!) } : {}) });
        return true;
      }
      if (method === 'POST') {
        const body = await readJson(req, 64 * 1024);
        const { key, secret } = await store('create', () => d.keys.create(body), true);
        ok({ key: keySummary(key), secret }, 201);
        return true;
      }
      throw notAllowed(method, path, 'GET, POST');
    }
    const m = /^\/admin\/keys\/([^/]+)(?:\/(disable|enable|rotate))?$/.exec(path);
    if (!m) throw new GatewayError('NOT_FOUND', `no admin route ${method} ${path}`);
    const id = decodeSegment(m[1]!, 'key');
    if (!m[2]) {
      if (method !== 'GET') throw notAllowed(method, path, 'GET');
      ok({ key: await store('show', () => d.keys.describe(id)) });
      return true;
    }
    if (method !== 'POST') throw notAllowed(method, path, 'POST');
    if (m[2] === 'rotate') {
      const { key, secret } = await store('rotate', () => d.keys.rotate(id), true);
      ok({ key: keySummary(key), secret });
      return true;
    }
    ok({ key: keySummary(await store(m[2], () => d.keys.setDisabled(id, m[2] === 'disable'), true)) });
    return true;
  };
}

function notAllowed(method: string, path: string, allow: string): GatewayError {
  return new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use ${allow}`, { details: { allow } });
}
