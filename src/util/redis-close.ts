/**
 * Closing an ioredis client at shutdown. While connected, QUIT: the replies still due arrive first. While not
 * (Redis down, the client reconnecting), at once: QUIT would wait behind the commands queued for a reconnect,
 * each of which ioredis holds through its retries (seconds each), and so would hold the process's exit.
 * Those commands fail ("Connection is closed").
 */
import type { Redis } from 'ioredis';

export async function closeRedis(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') return redis.disconnect();
  await redis.quit().catch(() => redis.disconnect());
}
