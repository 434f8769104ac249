/**
 * Builds the session store from the `store` config key: SQLite (default `./data/switchyard.db`) or Redis.
 * The only place that chooses an implementation; everything else depends on `SessionStore`.
 */
import { DEFAULT_REDIS_PREFIX } from './redis-constants.js';
import { DEFAULT_SQLITE_PATH, SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
import type { SessionStore } from './store.js';
import type { Logger } from '../util/log.js';

export type StoreConfig = { kind: 'sqlite'; path?: string; synchronous?: SqliteStoreOptions['synchronous'] } | { kind: 'redis'; url: string; prefix?: string };

/** `logger`: where a Redis store logs (its connection errors, a QUIT not answered at close); the root logger if none */
export async function openStore(cfg: StoreConfig = { kind: 'sqlite' }, logger?: Logger): Promise<SessionStore> {
  // loaded on demand: ioredis is not needed (nor held in memory) by a SQLite gateway
  if (cfg.kind === 'redis') return (await import('./redis-store.js')).RedisStore.open(cfg.url, cfg.prefix ?? DEFAULT_REDIS_PREFIX, logger);
  const opts: SqliteStoreOptions = { path: cfg.path ?? DEFAULT_SQLITE_PATH };
  if (cfg.synchronous) opts.synchronous = cfg.synchronous;
  return new SqliteStore(opts);
}

/**
 * The gateway id persisted in the store: the configured one wins, else one generated on first start. A store that
 * cannot keep it (a Redis `meta` key of another type, a SQLite file it cannot write) fails the start with an error
 * that says so, the store's own message after it (the CLI prints it).
 */
export async function persistedGatewayId(store: SessionStore, configured: string | undefined, generate: () => string): Promise<string> {
  try {
    if (configured) {
      await store.setMeta('gatewayId', configured);
      return configured;
    }
    return await store.getOrSetMeta('gatewayId', generate());
  } catch (err) {
    throw new Error(`the ${store.kind} session store could not keep the gateway id: ${String((err as Error)?.message ?? err)}`, { cause: err });
  }
}
