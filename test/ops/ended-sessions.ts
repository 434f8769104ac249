/**
 * A backlog of ended sessions long past any retention, written straight into a Redis session store (the default key
 * prefix, key schema 3: each id in the `sessions` index and in its status's): the retention run at a gateway's start
 * deletes them one a round trip, for seconds, so a stop can find it under way (regression-stop-redis-frozen,
 * regression-stop-retention-log).
 */
import type { Redis } from 'ioredis';

export const ENDED_BACKLOG = 150_000;

export async function seedEnded(redis: Redis): Promise<void> {
  await seed(redis, 'closed');
}

/**
 * As many sessions still marked running, as a previous run that stopped abruptly leaves them: a gateway's start
 * lists them (its own, to settle them) a chunk at a time, each record read, for seconds. They hold no record a
 * session can be read from (a status field alone), so the listing reads each and skips it.
 */
export async function seedLeftRunning(redis: Redis): Promise<void> {
  await seed(redis, 'running');
}

async function seed(redis: Redis, status: 'closed' | 'running'): Promise<void> {
  // the keys of this version: the indexes are not built again at the gateway's start
  await redis.hset('switchyard:meta', '_schema', '3');
  for (let i = 0; i < ENDED_BACKLOG; i += 5000) {
    const pipe = redis.pipeline();
    for (let j = i; j < i + 5000; j++) {
      pipe.hset(`switchyard:session:old-${j}`, 'st', status);
      pipe.zadd('switchyard:sessions', 1000 + j, `old-${j}`);
      pipe.zadd(`switchyard:sessions:st:${status}`, 1000 + j, `old-${j}`);
    }
    await pipe.exec();
  }
}
