/** The inbound model APIs besides OpenAI chat, built from config: what the gateway hands the HTTP server. */
import { noteRouted, noteUsage, traceOf } from '../../obs/request-meter.js';
import type { Config } from '../../config/schema.js';
import type { Router } from '../../router/router.js';
import type { SessionStore } from '../../sessions/store.js';
import type { Logger } from '../../util/log.js';
import type { ApiSurface } from './api-surface.js';
import type { LocalChannelLookup } from './messages.js';
import { ANTHROPIC_EDGE, GEMINI_EDGE, RESPONSES_EDGE, type ApiEdge } from './api-edges.js';
import type { KeyService } from '../../keys/service.js';
import type { ExchangeMeter } from '../../apis/common/exchange.js';

/** The request meter (src/obs) as every chat edge's exchange sees it, /v1 included. */
export const exchangeMeter: ExchangeMeter = { trace: traceOf, routed: noteRouted, usage: noteUsage };

export interface InboundApiDeps {
  config: Config;
  router: Router;
  store: SessionStore;
  logger: Logger;
  localChannel: LocalChannelLookup;
  keys?: KeyService | undefined;
}

export function inboundApis(d: InboundApiDeps): ApiSurface[] {
  const base = {
    router: d.router,
    keys: d.keys,
    logger: d.logger,
    maxBodyBytes: d.config.gateway.maxBodyBytes,
    timeoutMs: d.config.gateway.routing.timeoutMs,
    meter: exchangeMeter,
  };
  return [
    lazySurface(ANTHROPIC_EDGE, async () => (await import('./messages.js')).anthropicApi({ ...base, localChannel: d.localChannel })),
    lazySurface(RESPONSES_EDGE, async () => {
      const [{ responsesApi }, { ResponseStore }] = await Promise.all([import('./responses.js'), import('../../apis/responses/stored.js')]);
      return responsesApi({ ...base, stored: new ResponseStore(d.store, d.config.gateway.responses.storeTtlMs) });
    }),
    lazySurface(GEMINI_EDGE, async () => (await import('./gemini.js')).geminiApi(base)),
  ];
}

/**
 * An inbound API whose handler (its route module, translators and stream writers) is imported at its first
 * request, not at start: a gateway whose clients speak only OpenAI chat never loads them (~0.6 MB of idle RSS,
 * measured: docs/benchmarks.md, "Idle and per-stream memory"). What the server needs before the handler runs
 * (`edge`: the paths, the key in the query, the error format) is here at once. The first request waits for the
 * import (its body stays unread in the socket meanwhile); an import that fails is tried again by the next one.
 */
function lazySurface(edge: ApiEdge, load: () => Promise<ApiSurface>): ApiSurface {
  let loaded: Promise<ApiSurface> | undefined;
  return {
    ...edge,
    async handle(req, res, path, query, requestId, principal) {
      loaded ??= load().catch((err: unknown) => {
        loaded = undefined;
        throw err;
      });
      return (await loaded).handle(req, res, path, query, requestId, principal);
    },
  };
}
