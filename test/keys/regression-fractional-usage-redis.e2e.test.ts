/**
 * Regression: on a Redis store, a request whose usage holds a count that is not a whole number (an upstream
 * reporting `"prompt_tokens": 7.5`, which the gateway takes as a count like any finite number ≥ 0) broke the
 * limiter's settlement script (`HINCRBY` takes integers only): the limiter took the script error for Redis being
 * down, logged `limits: Redis unreachable`, switched to its local share, and the spend never reached Redis, so
 * every other instance (and this one once it probed Redis again) admitted the key as if nothing had been spent:
 * a budget bypassed. The memory limiter (SQLite) always counted it. Two real gateway processes on one real
 * redis-server, the fake OpenAI upstream reporting the fractional count.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, type GatewayProcess } from '../helpers/env.js';
import type { OpenAiFake } from '../fakes/openai-upstream.js';
import { startRedisPair, stopRedisPair } from '../helpers/redis-pair.js';
import { admin, ask, chat, createKey } from './helpers.js';

let redis: RedisServer;
let up: OpenAiFake;
let g1: GatewayProcess;
let g2: GatewayProcess;

beforeAll(async () => {
  ({ redis, up, g1, g2 } = await startRedisPair({
    upstream: { reply: 'half a token', usageObject: { prompt_tokens: 7.5, completion_tokens: 5, total_tokens: 12.5 } },
    gateway: { keys: { refreshMs: 200 }, usage: { flushIntervalMs: 50 } },
    channel: { pricing: { input: 1, output: 2 } },
  }));
});

afterAll(async () => {
  await stopRedisPair({ redis, up, g1, g2 });
  cleanupDirs();
});

describe('a usage count that is not a whole number, on a Redis limiter', () => {
  it('is spent in Redis: the budget it crossed refuses the next request on the other instance; no false outage', async () => {
    const k = await createKey(g1.url, { name: 'fractional', limits: { tokensPerMin: 1000 }, budget: { period: 'day', tokens: 10 } });
    expect((await chat(g1.url, k.secret, ask('gpt-4o-mini'))).status).toBe(200);
    const next = await chat(g2.url, k.secret, ask('gpt-4o-mini'));
    expect(next.status, next.text).toBe(429);
    expect(next.json.error.code).toBe('budget_exceeded');
    const shown = (await admin(g2.url, 'GET', '/admin/keys/fractional')).json.key;
    expect(shown.spent).toMatchObject({ tokens: 12.5, cost: (7.5 * 1 + 5 * 2) / 1e6 });
    for (const g of [g1, g2]) expect(g.logs()).not.toContain('Redis unreachable');
  });
});
