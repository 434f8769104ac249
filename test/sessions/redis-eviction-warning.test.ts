/**
 * A Redis that evicts keys at maxmemory (any `maxmemory-policy` but `noeviction`) can drop a running turn's lease,
 * a session's record or its update log (docs/operations.md): the store warns about it when it opens, and says
 * nothing when the policy is `noeviction` or Redis refuses `CONFIG GET` (a managed Redis). A real redis-server.
 */
import { describe, expect, it, vi } from 'vitest';
import { openStore } from '../../src/sessions/open-store.js';
import { rootLogger } from '../../src/util/log.js';
import { redisForFile } from './fixtures/redis-server.js';

const redis = redisForFile();

/** the eviction warnings logged while a store opens on `url` */
async function warningsAtOpen(url: string): Promise<Array<Record<string, unknown> | undefined>> {
  const warn = vi.spyOn(rootLogger, 'warn');
  try {
    redis.stores.push(await openStore({ kind: 'redis', url, prefix: 'evict:' }));
    return warn.mock.calls.filter(([msg]) => /evicts keys/.test(msg)).map(([, fields]) => fields);
  } finally {
    warn.mockRestore();
  }
}

describe('a Redis that evicts keys at maxmemory', () => {
  it('is warned about when the store opens, naming the policy', async () => {
    await redis.raw.config('SET', 'maxmemory-policy', 'volatile-lru');
    expect(await warningsAtOpen(redis.server.url)).toEqual([{ prefix: 'evict:', maxmemoryPolicy: 'volatile-lru' }]);
    await redis.raw.config('SET', 'maxmemory-policy', 'allkeys-lfu');
    expect(await warningsAtOpen(redis.server.url)).toEqual([{ prefix: 'evict:', maxmemoryPolicy: 'allkeys-lfu' }]);
  });

  it('is not warned about with noeviction, nor when CONFIG is refused', async () => {
    await redis.raw.config('SET', 'maxmemory-policy', 'noeviction');
    expect(await warningsAtOpen(redis.server.url)).toEqual([]);
    // a user that may not run CONFIG (as on managed Redis services), on an evicting Redis
    await redis.raw.config('SET', 'maxmemory-policy', 'allkeys-lru');
    await redis.raw.call('ACL', 'SETUSER', 'noconfig', 'on', '>pw-noconfig', '~*', '&*', '+@all', '-config');
    const url = new URL(redis.server.url);
    url.username = 'noconfig';
    url.password = 'pw-noconfig';
    expect(await warningsAtOpen(url.toString())).toEqual([]);
    await redis.raw.config('SET', 'maxmemory-policy', 'noeviction');
  });
});
