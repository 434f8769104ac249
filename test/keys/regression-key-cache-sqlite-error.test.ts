/**
 * Regression (the SQLite side of regression-key-store-unavailable): a SQLite key store that fails (here: its
 * database closed under the cache) made a secret not loaded look unknown, `undefined`, which the gateway answers
 * `401 invalid API key`. The cache now throws KEY_STORE_UNAVAILABLE (503, retryable, Retry-After) for it, keeps
 * answering the keys it loaded, and still answers undefined for a secret the store already said it does not know.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KeyCache } from '../../src/keys/key-cache.js';
import { hashSecret, hintOf, newSecret, type VirtualKey } from '../../src/keys/model.js';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { cleanupDirs, memoryLogger, tmpDir } from '../helpers/env.js';

afterAll(() => cleanupDirs());

function key(name: string, secret: string): VirtualKey {
  return {
    id: `key_${name}`,
    name,
    owner: 'o',
    hash: hashSecret(secret),
    hint: hintOf(secret),
    models: ['*'],
    limits: {},
    disabled: false,
    createdAt: 1,
    updatedAt: 1,
  };
}

describe('a SQLite key store that fails under the key cache', () => {
  it('a secret not loaded is KEY_STORE_UNAVAILABLE, not unknown; loaded keys and known-unknown secrets answer as before', async () => {
    const store = new SqliteKeyStore(join(tmpDir(), 'data', 'switchyard.db'));
    const log = memoryLogger();
    const cache = new KeyCache(store, 2000, log.logger);
    const secret = newSecret();
    await store.create(key('loaded', secret));
    await cache.start();
    const unknown = hashSecret(newSecret());
    expect(await cache.lookup(unknown)).toBeUndefined();

    await store.close();
    await expect(cache.lookup(hashSecret(newSecret()))).rejects.toMatchObject({
      code: 'KEY_STORE_UNAVAILABLE',
      status: 503,
      retryable: true,
      retryAfterSec: 2,
    });
    await expect(cache.byIdOrStore('key_elsewhere')).rejects.toMatchObject({ code: 'KEY_STORE_UNAVAILABLE' });
    expect((await cache.lookup(hashSecret(secret)))?.name).toBe('loaded');
    expect(await cache.lookup(unknown)).toBeUndefined();
    expect(log.lines.filter((l) => l.includes('cannot read the key store')).length).toBe(1);
    cache.stop();
  });
});
