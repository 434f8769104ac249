/**
 * A session store of either kind per test, for the turn-runner suites that run each case on both: a real SQLite
 * file in the test's temp dir, or a real redis-server started for the file (one per file, a fresh key prefix per
 * store). What a test opens, and the runners it pushes to `runners`, are stopped and closed after each test.
 */
import { afterEach } from 'vitest';
import { join } from 'node:path';
import type { TurnRunner } from '../../src/acp/turn-runner.js';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { tmpDir } from './env.js';
import { redisForFile } from '../sessions/fixtures/redis-server.js';

export function runnerStores(tag: string): { open: (kind: 'sqlite' | 'redis') => Promise<SessionStore>; runners: TurnRunner[] } {
  const redis = redisForFile();
  const stores: SessionStore[] = [];
  const runners: TurnRunner[] = [];
  afterEach(async () => {
    await Promise.all(runners.splice(0).map((r) => r.shutdown(1_000)));
    await Promise.all(stores.splice(0).map((s) => s.close()));
  });
  const open = async (kind: 'sqlite' | 'redis'): Promise<SessionStore> => {
    if (kind === 'sqlite') {
      const s = await openStore({ kind: 'sqlite', path: join(tmpDir(), `${tag}.db`) });
      stores.push(s);
      return s;
    }
    const s = await openStore({ kind: 'redis', url: redis.server.url, prefix: `${tag}${Math.random().toString(36).slice(2, 8)}:` });
    redis.stores.push(s);
    return s;
  };
  return { open, runners };
}
