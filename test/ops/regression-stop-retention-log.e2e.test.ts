/**
 * Regression: a retention run still under way when a graceful stop closes the store logged `ended sessions could
 * not be pruned; retrying within the hour` as a warning: there is no next hour, and nothing failed but the stop
 * cutting the run. Now the stop's own line says the run was left unfinished, and the run's end is a debug line
 * (`… pruning cut by the stop`), never that warning. A gateway (in this process, so that its log can be read after
 * its stop, when the store's close ends the run) on a real redis-server that answers: the run is simply long (a
 * backlog of ended sessions).
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, memoryLogger, startInProcess, tmpDir, waitFor } from '../helpers/env.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { ENDED_BACKLOG, seedEnded } from './ended-sessions.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('a retention run cut by a graceful stop', () => {
  it('is logged at debug as cut by the stop, never as a failure to retry within the hour', { timeout: 90_000 }, async () => {
    const port = await freePort();
    const server = await redisOnPort(port, tmpDir());
    cleanups.push(() => server.stop());
    const redis = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 });
    cleanups.push(() => redis.disconnect());
    await seedEnded(redis);
    const { logger, lines } = memoryLogger();
    const gw = await startInProcess(
      {
        gateway: { id: 'gw_retention_stop', shutdownGraceMs: 1000, log: { level: 'debug' } },
        store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
        channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
        acp: { endedSessionRetentionDays: 1 },
      },
      logger,
    );
    cleanups.push(() => gw.close());
    const log = () => lines.join('');
    // the run at startup is under way: some of the backlog is gone, not all of it
    await waitFor(async () => (await redis.zcard('switchyard:sessions')) <= ENDED_BACKLOG - 20_000, 'the run under way', 30_000);
    expect(log()).not.toContain('ended sessions pruned');
    await gw.close();
    // the stop waited for the run until its deadline, then closed the store under it
    expect(log()).toContain('graceful stop: ended sessions pruning left unfinished');
    // the run's end (whatever it logs) ...
    await waitFor(() => /ended sessions (pruning cut by the stop|could not be pruned)/.test(log()), 'the run ended by the store closing', 10_000);
    expect(await redis.zcard('switchyard:sessions')).toBeGreaterThan(0);
    // ... says it was cut by the stop; nothing says it failed, or that it will be retried
    expect(log()).not.toContain('retrying within the hour');
    expect(log()).not.toContain('could not be pruned');
    expect(log()).toContain('"level":"debug"');
    expect(log()).toContain('ended sessions pruning cut by the stop');
  });
});
