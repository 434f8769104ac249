/**
 * The status page: GET /ui (page), /ui/app.js, /ui/app.css — static, no data, no auth, strict CSP — and
 * GET /ui/events, an SSE stream of /admin/overview snapshots (admin token, same rules as /admin), one every
 * `interval` ms (?interval=, 200–10000, default 1000), skipped while the client has not taken the last. The stream
 * ends when the gateway starts draining, so it never holds a graceful stop, and when its token no longer passes (the
 * admin token was changed by a reload).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GatewayError } from '../../wire/errors.js';
import { buildOverview, type OverviewDeps } from '../overview.js';
import type { RouteHandler } from '../server.js';
import { authorize } from './admin.js';
import { PAGE_CSS, PAGE_HTML } from '../ui/page.js';
import { APP_JS } from '../ui/app-script.js';

const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const STATIC: Record<string, { type: string; body: string }> = {
  '/ui': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/ui/': { type: 'text/html; charset=utf-8', body: PAGE_HTML },
  '/ui/app.js': { type: 'text/javascript; charset=utf-8', body: APP_JS },
  '/ui/app.css': { type: 'text/css; charset=utf-8', body: PAGE_CSS },
};

export function uiRoutes(d: OverviewDeps): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => {
    if (path !== '/ui' && !path.startsWith('/ui/')) return false;
    res.setHeader('x-request-id', requestId);
    const method = req.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD')
      throw new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use GET`, { details: { allow: 'GET' } });
    const file = STATIC[path];
    if (file) {
      res.writeHead(200, {
        'content-type': file.type,
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        'cache-control': 'no-store',
      });
      res.end(method === 'HEAD' ? undefined : file.body);
      return true;
    }
    if (path !== '/ui/events') throw new GatewayError('NOT_FOUND', `no route ${method} ${path}`);
    authorize(req, d.config);
    const q = new URL(req.url ?? '/', 'http://x').searchParams.get('interval');
    const interval = Math.min(10_000, Math.max(200, Number(q) || 1000));
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', 'x-accel-buffering': 'no' });
    await streamSnapshots(d, res, interval, () => {
      try {
        authorize(req, d.config);
        return true;
      } catch {
        return false;
      }
    });
    return true;
  };
}

/**
 * `allowed` is asked before every snapshot: the admin token can change under a running stream (a reload), and
 * a page signed in with the old one gets nothing more (the stream ends; its reconnect is refused).
 */
async function streamSnapshots(d: OverviewDeps, res: ServerResponse, interval: number, allowed: () => boolean): Promise<void> {
  let open = true;
  let wake: () => void = () => undefined;
  res.once('close', () => {
    open = false;
    wake();
  });
  // the stream has no end of its own: a stop ends it at once, not at its next snapshot (up to `interval` later, which
  // held the stop that long); a client that does not read its end is cut by the server's stop (server.ts, cutUnread)
  const unsubscribe = d.obs.onDrain(() => wake());
  while (open && !d.obs.draining && allowed()) {
    // a snapshot only replaces the one before: while the client has not taken the last (a tab the browser froze, a
    // laptop asleep with its connection up), none is made, so what waits for it is one snapshot. Before, one more
    // waited in the response's buffer each interval, for as long as the connection stayed up.
    if (res.writableLength === 0) {
      const snap = await buildOverview(d);
      if (!open || d.obs.draining) break;
      res.write(`data: ${JSON.stringify(snap)}\n\n`);
    }
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, interval);
      wake = () => (clearTimeout(t), resolve());
    });
  }
  unsubscribe();
  if (!res.destroyed) res.end();
}
