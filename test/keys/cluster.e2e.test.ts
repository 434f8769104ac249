/**
 * Two gateway processes on one real redis-server: a key created on one works on the other; a limit of 5
 * requests/min holds across both (10 requests, 5 pass); disable and rotate on one reach the other within
 * gateway.keys.refreshMs; usage from both lands in one report; then Redis is killed mid-run and each
 * instance enforces exactly its limitShare (the documented bound), saying so in its log.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import type { RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, waitFor } from '../helpers/env.js';
import type { OpenAiFake } from '../fakes/openai-upstream.js';
import { startRedisPair, stopRedisPair } from '../helpers/redis-pair.js';
import { admin, ask, chat, createKey } from './helpers.js';

const REFRESH_MS = 300;
let redis: RedisServer;
let up: OpenAiFake;
let g1: GatewayProcess;
let g2: GatewayProcess;

beforeAll(async () => {
  ({ redis, up, g1, g2 } = await startRedisPair({
    upstream: { reply: 'shared reply' },
    gateway: { keys: { refreshMs: REFRESH_MS }, limits: { limitShare: 0.5, redisTimeoutMs: 200 }, usage: { flushIntervalMs: 100 } },
  }));
});

afterAll(async () => {
  await stopRedisPair({ redis, up, g1, g2 });
  cleanupDirs();
});

describe('keys and limits across two instances on one Redis', () => {
  it('a key created on one instance works on the other at once', async () => {
    const k = await createKey(g1.url, { name: 'everywhere' });
    expect((await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status).toBe(200);
    expect((await admin(g2.url, 'GET', '/admin/keys/everywhere')).json.key.id).toBe(k.id);
  });

  it('5 requests/min shared: 10 requests spread over both instances, exactly 5 pass', async () => {
    const k = await createKey(g1.url, { name: 'five-shared', limits: { requestsPerMin: 5 } });
    const results = await Promise.all(Array.from({ length: 10 }, (_, i) => chat(i % 2 ? g1.url : g2.url, k.secret, ask('gpt-4o-mini'))));
    expect(results.filter((r) => r.status === 200).length).toBe(5);
    for (const r of results.filter((x) => x.status !== 200)) {
      expect(r.status).toBe(429);
      expect(r.json.error.code).toBe('rate_limited');
      expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
    }
  });

  it('disable on one instance is refused on the other within refreshMs; enable and rotate likewise', async () => {
    const k = await createKey(g1.url, { name: 'switch' });
    expect((await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status).toBe(200);
    let t0 = Date.now();
    await admin(g1.url, 'POST', '/admin/keys/switch/disable');
    await waitFor(async () => (await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status === 401, 'disable seen on g2', 5000, 25);
    expect(Date.now() - t0).toBeLessThan(REFRESH_MS + 1000);
    t0 = Date.now();
    await admin(g1.url, 'POST', '/admin/keys/switch/enable');
    await waitFor(async () => (await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status === 200, 'enable seen on g2', 5000, 25);
    expect(Date.now() - t0).toBeLessThan(REFRESH_MS + 1000);
    t0 = Date.now();
    const rotated = (await admin(g2.url, 'POST', '/admin/keys/switch/rotate')).json;
    await waitFor(async () => (await chat(g1.url, k.secret, ask('gpt-4o-mini'))).status === 401, 'rotation seen on g1', 5000, 25);
    expect(Date.now() - t0).toBeLessThan(REFRESH_MS + 1000);
    expect((await chat(g1.url, rotated.secret, ask('gpt-4o-mini'))).status).toBe(200);
  });

  it('usage from both instances is one report that matches what the upstream reported', async () => {
    const k = await createKey(g1.url, { name: 'counted' });
    const sizes = [
      [11, 7],
      [3, 29],
      [100, 1],
      [42, 42],
    ] as const;
    up.enqueue(...sizes.map(([input, output]) => ({ usage: { input, output } })));
    for (const [i] of sizes.entries()) {
      const stream = i % 2 === 1;
      const r = await chat(i < 2 ? g1.url : g2.url, k.secret, ask('gpt-4o-mini', stream ? { stream: true } : {}));
      expect(r.status).toBe(200);
      if (stream) expect(r.text).not.toContain('"usage"'); // asked upstream for accounting, not shown to a client that did not ask
    }
    const want = { requests: 4, inputTokens: 156, outputTokens: 79 };
    const report = await waitFor(async () => {
      const r = (await admin(g2.url, 'GET', `/admin/usage?key=counted&by=key`)).json;
      return r.total.requests === 4 ? r : undefined;
    }, 'usage records of both instances');
    expect(report.total).toMatchObject(want);
    expect(report.rows).toEqual([expect.objectContaining({ group: 'counted', ...want })]);
  });

  it('Redis killed mid-run: each instance admits exactly floor(limit × limitShare), and logs the switch once', async () => {
    const k = await createKey(g1.url, { name: 'outage', limits: { requestsPerMin: 6 } });
    expect((await chat(g1.url, k.secret, ask('gpt-4o-mini'))).status).toBe(200);
    expect((await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status).toBe(200);
    await redis.kill();
    const passed = { g1: 0, g2: 0 };
    for (let i = 0; i < 10; i++) {
      if ((await chat(g1.url, k.secret, ask('gpt-4o-mini'))).status === 200) passed.g1++;
      if ((await chat(g2.url, k.secret, ask('gpt-4o-mini'))).status === 200) passed.g2++;
    }
    // 2 admitted through Redis before it died + 3 per instance after: within limit + R × floor(limit × share) = 6 + 6
    expect(passed).toEqual({ g1: 3, g2: 3 });
    for (const g of [g1, g2]) {
      const warned = await waitFor(
        () =>
          g
            .logs()
            .split('\n')
            .filter((l) => l.includes('Redis unreachable')),
        'the degraded log line',
      );
      expect(warned.length).toBe(1);
      expect(warned[0]).toContain('"share":0.5');
    }
  });
});
