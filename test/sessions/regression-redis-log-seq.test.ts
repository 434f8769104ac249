/**
 * Regression: a Redis update log appended to by the code before an entry at a seq replaced the one there holds two
 * (or more) members at a seq until that seq is appended again, and readEvents (the events route's replay,
 * `xworkmate.tasks.get { afterSeq }`, a WebSocket resume) and readNewestEvents (what a transfer carries) returned
 * every one of them, and counted each in a page's count and byte bounds. Now a read has one entry a seq (the
 * same one read up or down), counted once. The old log is written as the old code left it, on a real redis-server.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';

let server: RedisServer;
let raw: Redis;
let store: SessionStore;

beforeAll(async () => {
  server = await startRedis();
  raw = new Redis(server.url);
  store = await openStore({ kind: 'redis', url: server.url, prefix: 'dups:' });
});

afterAll(async () => {
  await store?.close();
  raw?.disconnect();
  await server?.stop();
});

/** an entry of 1000 bytes of JSON; `v` tells versions apart */
const kb = (seq: number, v = 'a') => ({ seq, event: { x: v.repeat(992) } });

describe('an update log written before one entry a seq was kept (several members at a seq)', () => {
  it('reads one entry a seq, the same one up and down, counted once in a page’s bounds', async () => {
    await store.appendEvents(
      'log',
      [1, 2, 3, 4].map((s) => kb(s)),
      1000,
    );
    // what the older code left: a second member at seq 2, and 40 more at seq 3 (more than a read's batch of 32)
    await raw.zadd('dups:events:log', 2, `2 ${JSON.stringify(kb(2, 'b').event)}`);
    for (let i = 0; i < 40; i++) await raw.zadd('dups:events:log', 3, `3 ${JSON.stringify({ x: `${i}`.padEnd(992, 'c') })}`);

    const all = await store.readEvents('log', 0, 100);
    expect(all.events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(all.more).toBe(false);
    const [one, two, three, four] = all.events;
    // read down (newest first), the same entries
    expect(await store.readNewestEvents('log', 100, 1_000_000)).toEqual({ events: all.events, before: 0 });
    expect(await store.readNewestEvents('log', 2, 1_000_000)).toEqual({ events: [three, four], before: 2 });
    expect(await store.readNewestEvents('log', 3, 1_000_000)).toEqual({ events: [two, three, four], before: 1 });
    // pages by count: the page's end and `more` see one entry a seq
    expect(await store.readEvents('log', 0, 2)).toEqual({ events: [one, two], more: true });
    expect(await store.readEvents('log', 1, 2)).toEqual({ events: [two, three], more: true });
    expect(await store.readEvents('log', 2, 2)).toEqual({ events: [three, four], more: false });
    // pages by bytes: four entries of 1000 bytes fit in 4000
    expect(await store.readEvents('log', 0, 100, 4000)).toEqual({ events: all.events, more: false });
    expect(await store.readNewestEvents('log', 100, 4000)).toEqual({ events: all.events, before: 0 });
    expect(await store.readNewestEvents('log', 100, 2000)).toEqual({ events: [three, four], before: 2 });
    // appended again, a seq holds the new entry only
    await store.appendEvents('log', [kb(3, 'd')], 1000);
    expect((await store.readEvents('log', 2, 100)).events).toEqual([kb(3, 'd'), kb(4)]);
  });
});
