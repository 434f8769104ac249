/** The inbound model APIs besides OpenAI chat, built from config: what the gateway hands the HTTP server. */
import { noteRouted, noteUsage, traceOf } from '../../obs/request-meter.js';
import type { Config } from '../../config/schema.js';
import type { Router } from '../../router/router.js';
import type { SessionStore } from '../../sessions/store.js';
import type { Logger } from '../../util/log.js';
import type { ApiSurface } from './api-surface.js';
import { anthropicApi, type LocalChannelLookup } from './messages.js';
import { responsesApi } from './responses.js';
import { geminiApi } from './gemini.js';
import { ResponseStore } from '../../apis/responses/stored.js';
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
    anthropicApi({ ...base, localChannel: d.localChannel }),
    responsesApi({ ...base, stored: new ResponseStore(d.store, d.config.gateway.responses.storeTtlMs) }),
    geminiApi(base),
  ];
}
