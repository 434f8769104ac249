/**
 * Regression: KeyService.close closed the rate limiter, then the key store, one after the other: on one Redis that
 * stopped answering each waited its own bound in turn (test/ops/regression-stop-redis-frozen.e2e.test.ts), and a
 * limiter whose close failed left the key store open (its close never called). Now both are closed together, and a
 * failure of one is thrown only once the other is closed.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultRawConfig, validateConfig } from '../../src/config/load.js';
import { MemoryLimiter } from '../../src/keys/memory-limiter.js';
import { KeyService } from '../../src/keys/service.js';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { cleanupDirs, memoryLogger, tmpDir } from '../helpers/env.js';

afterAll(() => cleanupDirs());

class FailingCloseLimiter extends MemoryLimiter {
  override async close(): Promise<void> {
    throw new Error('limiter close failed');
  }
}

describe('KeyService.close', () => {
  it('closes the key store when the limiter fails to close, then says the limiter failed', async () => {
    const store = new SqliteKeyStore(join(tmpDir(), 'data', 'switchyard.db'));
    const svc = new KeyService({
      config: validateConfig(defaultRawConfig(), 'test'),
      store,
      limiter: new FailingCloseLimiter(),
      logger: memoryLogger().logger,
    });
    await expect(store.list()).resolves.toEqual([]);
    await expect(svc.close()).rejects.toThrow('limiter close failed');
    // closed all the same: the database is no longer open
    await expect(store.list()).rejects.toThrow(/not open/);
  });
});
