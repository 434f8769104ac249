/**
 * The limiters: GCRA arithmetic (memory, with a controlled clock), the Redis limiter's atomicity against a
 * real redis-server (two limiters = two instances), and its fallback to the local share when Redis dies,
 * logged once per transition, and back when it returns.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryLimiter } from '../../src/keys/memory-limiter.js';
import { RedisLimiter } from '../../src/keys/redis-limiter.js';
import { limitMetrics } from '../../src/keys/limiter.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { redisOnPort } from './redis-on-port.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../helpers/env.js';

describe('MemoryLimiter (GCRA)', () => {
  it('5 per minute: a burst of 5, the 6th waits 12 s, then one more every 12 s', async () => {
    let now = 1_000_000;
    const l = new MemoryLimiter(() => now);
    const req = { scope: 'key:a', limits: { requestsPerMin: 5 }, leaseMs: 1000 };
    // an admission's state is the bucket with it: the first of 5 leaves 4 and is full again in 12 s (as on Redis)
    const states = [];
    for (let i = 0; i < 5; i++) {
      const a = await l.admit(req);
      expect(a.ok).toBe(true);
      states.push(a.state.requests);
    }
    expect(states[0]).toEqual({ limit: 5, remaining: 4, resetMs: 12_000 });
    expect(states[4]).toEqual({ limit: 5, remaining: 0, resetMs: 60_000 });
    const sixth = await l.admit(req);
    expect(sixth).toMatchObject({ ok: false, reason: 'requests', retryAfterMs: 12_000 });
    expect(sixth.state.requests).toEqual({ limit: 5, remaining: 0, resetMs: 60_000 });
    now += 11_999;
    expect((await l.admit(req)).ok).toBe(false);
    now += 1;
    expect((await l.admit(req)).ok).toBe(true);
    expect((await l.admit(req)).ok).toBe(false);
  });

  it('a burst of exactly N for any N: the float sums of 60 s / N steps never refuse the last one', async () => {
    // regression: 9/min admitted 8 in a burst (nine steps of 6666.67 ms summed on epoch ms came out 1e-4 ms late)
    const now = 1_764_000_000_123;
    for (const rpm of [7, 9, 11, 14, 17, 29, 58, 1000, 2999]) {
      const l = new MemoryLimiter(() => now);
      const req = { scope: 'key:burst', limits: { requestsPerMin: rpm }, leaseMs: 1000 };
      const remaining: number[] = [];
      for (let i = 0; i < rpm; i++) {
        const a = await l.admit(req);
        expect(a.ok, `${rpm}/min: request ${i + 1}`).toBe(true);
        remaining.push(a.state.requests!.remaining);
      }
      expect([remaining[0], remaining[rpm - 1]], `${rpm}/min`).toEqual([rpm - 1, 0]);
      expect((await l.admit(req)).ok, `${rpm}/min: one past the burst`).toBe(false);
    }
  });

  it('tokens per minute are debited after the request; a debt delays the next one', async () => {
    let now = 0;
    const l = new MemoryLimiter(() => now);
    const limits = { tokensPerMin: 600 };
    const a = await l.admit({ scope: 'k', limits, leaseMs: 1 });
    expect(a.ok).toBe(true);
    await l.settle('k', a.ok ? a.lease : '', { tokens: 700, cost: 0, limits });
    const b = await l.admit({ scope: 'k', limits, leaseMs: 1 });
    // 700 tokens at 10/s = 70 s of backlog: 10 s over the minute, +0.1 s for one token
    expect(b).toMatchObject({ ok: false, reason: 'tokens', retryAfterMs: 10_100 });
    now += 10_100;
    expect((await l.admit({ scope: 'k', limits, leaseMs: 1 })).ok).toBe(true);
  });

  it('concurrency leases are given back on settle', async () => {
    const l = new MemoryLimiter();
    const limits = { concurrent: 2 };
    const a = await l.admit({ scope: 'c', limits, leaseMs: 1000 });
    const b = await l.admit({ scope: 'c', limits, leaseMs: 1000 });
    expect((await l.admit({ scope: 'c', limits, leaseMs: 1000 })).ok).toBe(false);
    await l.settle('c', a.ok ? a.lease : '', { tokens: 0, cost: 0, limits });
    expect((await l.admit({ scope: 'c', limits, leaseMs: 1000 })).ok).toBe(true);
    expect(b.ok).toBe(true);
  });
});

describe('RedisLimiter on a real Redis', () => {
  let redis: RedisServer;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(async () => {
    await redis?.stop();
  });

  it('two instances admitting 40 requests at once share one limit of 10: exactly 10 pass', async () => {
    const { logger } = memoryLogger();
    const o = { url: redis.url, prefix: 't1:', share: 0.5, timeoutMs: 1000, logger };
    const [a, b] = await Promise.all([RedisLimiter.open(o), RedisLimiter.open(o)]);
    const req = { scope: 'key:shared', limits: { requestsPerMin: 10 }, leaseMs: 1000 };
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 ? a : b).admit(req)));
    expect(results.filter((r) => r.ok).length).toBe(10);
    const refused = results.find((r) => !r.ok)!;
    expect(refused).toMatchObject({ ok: false, reason: 'requests' });
    expect(refused.ok ? 0 : refused.retryAfterMs).toBeGreaterThan(5000);
    expect(a.degraded || b.degraded).toBe(false);
    await Promise.all([a.close(), b.close()]);
  });

  it('concurrency, tokens and a budget are shared too, and settle is atomic', async () => {
    const { logger } = memoryLogger();
    const o = { url: redis.url, prefix: 't2:', share: 1, timeoutMs: 1000, logger };
    const [a, b] = await Promise.all([RedisLimiter.open(o), RedisLimiter.open(o)]);
    const budget = { periodId: '2026-11-29', periodEnd: Date.now() + 3_600_000, tokens: 100 };
    const limits = { concurrent: 1 };
    const first = await a.admit({ scope: 'key:c', limits, budget, leaseMs: 5000 });
    expect(first.ok).toBe(true);
    expect(await b.admit({ scope: 'key:c', limits, budget, leaseMs: 5000 })).toMatchObject({ ok: false, reason: 'concurrent' });
    await a.settle('key:c', first.ok ? first.lease : '', { tokens: 100, cost: 0.5, budget, limits });
    const over = await b.admit({ scope: 'key:c', limits, budget, leaseMs: 5000 });
    expect(over).toMatchObject({ ok: false, reason: 'budget' });
    expect(over.ok ? 0 : over.retryAfterMs).toBeGreaterThan(3_500_000);
    expect(await b.spent('key:c', budget.periodId)).toEqual({ tokens: 100, cost: 0.5 });
    await Promise.all([a.close(), b.close()]);
  });

  it('the same arithmetic as the memory limiter: no whole ms rounded up per step', async () => {
    // regression: the script rounded each GCRA step up to a whole ms, so 7/min said `remaining: 5` after the first
    // request, a burst of 7000/min admitted ~6700, and a 10-token answer took 1 ms of a 6M tokens/min bucket (0.1 ms)
    const { logger } = memoryLogger();
    // a long timeout: 7000 admissions at once must be Redis's answers, never the fallback's, on a loaded machine
    const r = await RedisLimiter.open({ url: redis.url, prefix: 't4:', share: 1, timeoutMs: 30_000, logger });
    const seven = { scope: 'key:seven', limits: { requestsPerMin: 7 }, leaseMs: 1000 };
    const remaining: number[] = [];
    for (let i = 0; i < 7; i++) {
      const a = await r.admit(seven);
      expect(a.ok).toBe(true);
      remaining.push(a.state.requests!.remaining);
    }
    expect(remaining).toEqual([6, 5, 4, 3, 2, 1, 0]);
    const five = await r.admit({ scope: 'key:five', limits: { requestsPerMin: 5 }, leaseMs: 1000 });
    expect(five.state.requests).toEqual({ limit: 5, remaining: 4, resetMs: 12_000 });
    expect(await r.admit(seven)).toMatchObject({ ok: false, reason: 'requests' });

    const big = { scope: 'key:big', limits: { requestsPerMin: 7000 }, leaseMs: 1000 };
    const burst = await Promise.all(Array.from({ length: 7000 }, () => r.admit(big)));
    expect(burst.filter((a) => a.ok).length).toBe(7000);

    const limits = { tokensPerMin: 6_000_000 };
    await Promise.all(Array.from({ length: 100 }, () => r.settle('key:tok', 'r', { tokens: 10, cost: 0, limits })));
    const after = await r.admit({ scope: 'key:tok', limits, leaseMs: 1000 });
    // 1000 tokens at 100 per ms: at most 10 ms of backlog, so at least 6M − 1000 left
    expect(after.state.tokens!.remaining).toBeGreaterThanOrEqual(6_000_000 - 1000);

    // a count past what an integer reply holds (1e21 tokens at 1/min): refused for that long, as in memory (the
    // wait came back as a 64-bit integer reply, overflowed and negative: Retry-After 1 s)
    const tiny = { tokensPerMin: 1 };
    await r.settle('key:huge', 'r', { tokens: 1e21, cost: 0, limits: tiny });
    const huge = await r.admit({ scope: 'key:huge', limits: tiny, leaseMs: 1000 });
    expect(huge).toMatchObject({ ok: false, reason: 'tokens' });
    expect(huge.ok ? 0 : huge.retryAfterMs).toBeGreaterThan(1e25);
    expect(r.degraded).toBe(false);
    await r.close();
  });

  it('a lease whose settlement failed while Redis was down is given back when Redis answers again', async () => {
    // regression: the lease stayed in Redis until it expired (routing.timeoutMs + 5 s, 10 min by default), so a
    // Redis blip under a `concurrent: 1` key refused the key on every instance long after Redis was back
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-lease-'));
    const port = await freePort();
    let server = await redisOnPort(port, dir, true);
    const { logger } = memoryLogger();
    const l = await RedisLimiter.open({ url: `redis://127.0.0.1:${port}`, prefix: 't5:', share: 1, timeoutMs: 200, logger });
    const limits = { concurrent: 1 };
    const req = { scope: 'key:lease', limits, leaseMs: 120_000 };
    try {
      const a = await l.admit(req);
      expect(a.ok && a.lease.startsWith('r')).toBe(true); // Redis's lease
      await server.stop(); // SIGKILL; the append-only file holds the lease
      await l.settle(req.scope, a.ok ? a.lease : '', { tokens: 0, cost: 0, limits });
      expect(l.degraded).toBe(true);
      server = await redisOnPort(port, dir, true);
      await waitFor(
        async () => {
          const x = await l.admit(req);
          if (x.ok) await l.settle(req.scope, x.lease, { tokens: 0, cost: 0, limits });
          return x.ok && x.lease.startsWith('r'); // admitted by Redis, not by the local share
        },
        'a Redis admission of the key once Redis is back',
        5000,
        100,
      );
    } finally {
      await l.close();
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('Redis dies: each instance enforces its share (logged once, counted); Redis returns: shared again (logged once)', async () => {
    const own = await startRedis();
    const { logger, lines } = memoryLogger();
    const o = { url: own.url, prefix: 't3:', share: 0.5, timeoutMs: 200, logger };
    const [a, b] = await Promise.all([RedisLimiter.open(o), RedisLimiter.open(o)]);
    const req = { scope: 'key:d', limits: { requestsPerMin: 10 }, leaseMs: 1000 };
    expect((await a.admit(req)).ok).toBe(true); // 1 of 10 counted in Redis
    const before = { ...limitMetrics, refused: { ...limitMetrics.refused } };
    await own.kill();
    const after: boolean[] = [];
    for (let i = 0; i < 20; i++) after.push((await a.admit(req)).ok, (await b.admit(req)).ok);
    // the bound: each instance alone admits at most floor(10 × 0.5) = 5
    expect(after.filter(Boolean).length).toBe(10);
    expect(a.degraded && b.degraded).toBe(true);
    expect(limitMetrics.degraded).toBe(1);
    expect(limitMetrics.degradedTransitions - before.degradedTransitions).toBe(2);
    expect(limitMetrics.fallbackDecisions - before.fallbackDecisions).toBe(40);
    expect(lines.filter((l) => l.includes('Redis unreachable')).length).toBe(2); // once per instance
    // back on the same port: the next probe (at most 1 s later) switches back
    const back = await redisOnPort(own.port, own.dir);
    await waitFor(async () => (await a.admit(req), !a.degraded), 'limiter a back on Redis', 10_000, 100);
    expect(lines.filter((l) => l.includes('Redis reachable again')).length).toBe(1);
    await Promise.all([a.close(), b.close()]);
    await back.stop();
    await own.stop();
  });
});
