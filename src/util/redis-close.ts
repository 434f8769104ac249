/**
 * Closing an ioredis client at shutdown. While connected, QUIT: the replies still due arrive first. While not
 * (Redis down, the client reconnecting), at once: QUIT would wait behind the commands queued for a reconnect,
 * each of which ioredis holds through its retries (seconds each), and so would hold the process's exit.
 * Those commands fail ("Connection is closed"). A Redis that is connected but does not answer (stopped, or a
 * network that drops its packets: the connection stays up, every reply is due for ever) gets REDIS_CLOSE_WAIT_MS
 * for its QUIT, then the client is disconnected all the same.
 */
import type { Redis } from 'ioredis';
import { settledWithin } from './settled-within.js';

/** how long a stop waits for a connected Redis to answer QUIT (or UNSUBSCRIBE) before it disconnects anyway */
export const REDIS_CLOSE_WAIT_MS = 1000;

/**
 * `unanswered`: called when a connected Redis did not answer the QUIT (no answer within `waitMs`, or the client's own
 * command timeout failed it) and the client was disconnected: where the caller logs it.
 */
export async function closeRedis(redis: Redis, waitMs = REDIS_CLOSE_WAIT_MS, unanswered?: (waitedMs: number) => void): Promise<void> {
  if (redis.status !== 'ready') return redis.disconnect();
  const started = Date.now();
  let quitFailed = false;
  const answered = await settledWithin(
    redis.quit().catch(() => void (quitFailed = true)),
    waitMs,
  );
  if (!answered || quitFailed) {
    redis.disconnect();
    unanswered?.(Date.now() - started);
  }
}
