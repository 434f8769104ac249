/**
 * SIGTERM while the Redis key store is down: the final usage flush is bounded by the stop's one deadline
 * (gateway.shutdownGraceMs), so the process exits soon after the grace and logs how many records it lost.
 * Before, close() flushed twice and each flush waited out ioredis's reconnects: ~50–65 s to exit with the
 * default 10 s grace, and the loss was logged only at the very end.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { cleanupDirs, startProcess } from '../helpers/env.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { ask, chat, createKey } from './helpers.js';

const GRACE_MS = 1500;
/** time a stop may take beyond the grace: closing the listener, pools and stores, process exit */
const MARGIN_MS = 4000;
let redis: RedisServer;
let gw: GatewayProcess;

beforeAll(async () => {
  redis = await startRedis();
  gw = await startProcess({
    gateway: { shutdownGraceMs: GRACE_MS, usage: { flushIntervalMs: 60_000, maxBatch: 10_000 } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: redis.url },
  });
});

afterAll(async () => {
  await gw?.stop(1000);
  await redis?.stop();
  cleanupDirs();
});

describe('SIGTERM with the Redis store down', () => {
  it('exits within shutdownGraceMs plus a margin and logs the usage records it could not write', { timeout: 60_000 }, async () => {
    const k = await createKey(gw.url, { name: 'pending-usage' });
    for (let i = 0; i < 3; i++) expect((await chat(gw.url, k.secret, ask('mock-1'))).status).toBe(200);
    await redis.kill();

    const t0 = Date.now();
    // SIGKILL only long after the old code's exit time would have been judged too slow
    const code = await gw.stop(30_000);
    const took = Date.now() - t0;
    expect(code).toBe(0);
    expect(took).toBeLessThan(GRACE_MS + MARGIN_MS);

    const lost = gw
      .logs()
      .split('\n')
      .filter((l) => l.includes('usage records lost at shutdown'))
      .map((l) => JSON.parse(l) as { lost: number });
    expect(lost).toEqual([expect.objectContaining({ lost: 3 })]);
    expect(gw.logs()).not.toContain(k.secret);
  });
});
