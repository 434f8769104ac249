/**
 * Operator routes beside the admin API (same token rules): POST /admin/config/reload applies the config
 * file again (an invalid file changes nothing and every problem comes back as CONFIG_INVALID with
 * `details.problems`), GET /admin/overview is the one snapshot `switchyard status` and the status page show.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ConfigError } from '../../config/load.js';
import { GatewayError } from '../../wire/errors.js';
import { buildOverview, type OverviewDeps } from '../overview.js';
import { sendJson } from '../respond.js';
import type { RouteHandler } from '../server.js';
import { authorize } from './admin.js';

/** The answer to a reload: what was applied live, and the key paths that differ but need a restart. */
export interface ReloadReport {
  applied: string[];
  restartRequired: string[];
}

export interface OpsDeps extends OverviewDeps {
  reload(): Promise<ReloadReport>;
}

export function opsRoutes(d: OpsDeps): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, path: string, requestId: string) => {
    if (path !== '/admin/config/reload' && path !== '/admin/overview') return false;
    res.setHeader('x-request-id', requestId);
    authorize(req, d.config);
    const method = req.method ?? 'GET';
    if (path === '/admin/overview') {
      if (method !== 'GET') throw new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use GET`, { details: { allow: 'GET' } });
      sendJson(res, 200, await buildOverview(d));
      return true;
    }
    if (method !== 'POST') throw new GatewayError('METHOD_NOT_ALLOWED', `method ${method} not allowed on ${path}; use POST`, { details: { allow: 'POST' } });
    req.resume();
    try {
      sendJson(res, 200, await d.reload());
    } catch (err) {
      if (err instanceof ConfigError) {
        throw new GatewayError('CONFIG_INVALID', `config not reloaded, the running config is unchanged: ${err.problems.length} problem(s)`, {
          details: { problems: err.problems },
        });
      }
      throw err;
    }
    return true;
  };
}
