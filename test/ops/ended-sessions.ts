/**
 * A backlog of ended sessions long past any retention, written straight into a Redis session store (the default key
 * prefix): the retention run at a gateway's start deletes them one a round trip, for seconds, so a stop can find it
 * under way (regression-stop-redis-frozen, regression-stop-retention-log).
 */
import type { Redis } from 'ioredis';

export const ENDED_BACKLOG = 150_000;

export async function seedEnded(redis: Redis): Promise<void> {
  for (let i = 0; i < ENDED_BACKLOG; i += 5000) {
    const pipe = redis.pipeline();
    for (let j = i; j < i + 5000; j++) {
      pipe.hset(`switchyard:session:old-${j}`, 'st', 'closed');
      pipe.zadd('switchyard:sessions', 1000 + j, `old-${j}`);
    }
    await pipe.exec();
  }
}
