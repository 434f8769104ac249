/**
 * Builds the key service from the `store` config: SQLite → SqliteKeyStore + MemoryLimiter; Redis →
 * RedisKeyStore + RedisLimiter (several instances share keys, usage and limits). The only place that
 * chooses the implementations.
 */
import type { Config } from '../config/schema.js';
import { resolvePath } from '../config/load.js';
import type { Logger } from '../util/log.js';
import { MemoryLimiter } from './memory-limiter.js';
import { KeyService } from './service.js';
import { SqliteKeyStore } from './sqlite-key-store.js';
import type { KeyStore } from './store.js';
import type { Limiter } from './limiter.js';

export async function openKeys(cfg: Config, baseDir: string, logger: Logger): Promise<KeyService> {
  const log = logger.child({ part: 'keys' });
  let store: KeyStore;
  let limiter: Limiter;
  if (cfg.store.kind === 'redis') {
    // loaded on demand, like the Redis session store
    const [{ RedisKeyStore }, { RedisLimiter }] = await Promise.all([import('./redis-key-store.js'), import('./redis-limiter.js')]);
    store = await RedisKeyStore.open(cfg.store.url, cfg.store.prefix, log);
    limiter = await RedisLimiter.open({
      url: cfg.store.url,
      prefix: cfg.store.prefix,
      share: cfg.gateway.limits.limitShare,
      timeoutMs: cfg.gateway.limits.redisTimeoutMs,
      logger: log,
    });
  } else {
    store = new SqliteKeyStore(resolvePath(baseDir, cfg.store.path), log);
    limiter = new MemoryLimiter();
  }
  const svc = new KeyService({ config: cfg, store, limiter, logger: log });
  try {
    await svc.start();
  } catch (err) {
    await svc.close().catch(() => undefined);
    throw err;
  }
  return svc;
}
