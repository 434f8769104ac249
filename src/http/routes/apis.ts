/** The inbound model APIs besides OpenAI chat, built from config: what the gateway hands the HTTP server. */
import type { Config } from '../../config/schema.js';
import type { Router } from '../../router/router.js';
import type { SessionStore } from '../../sessions/store.js';
import type { Logger } from '../../util/log.js';
import type { ApiSurface } from './api-surface.js';
import { anthropicApi, type LocalChannelLookup } from './messages.js';

export interface InboundApiDeps {
  config: Config;
  router: Router;
  store: SessionStore;
  logger: Logger;
  localChannel: LocalChannelLookup;
}

export function inboundApis(d: InboundApiDeps): ApiSurface[] {
  const base = { router: d.router, logger: d.logger, maxBodyBytes: d.config.gateway.maxBodyBytes, timeoutMs: d.config.gateway.routing.timeoutMs };
  return [anthropicApi({ ...base, localChannel: d.localChannel })];
}
