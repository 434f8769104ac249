/**
 * A retention job: deletes what is older than `days` days, once at start (in the background: a long backlog
 * must not hold up startup) and then every hour, one run at a time, logging what it deleted. Serves usage
 * records (`gateway.usage.retentionDays`, src/keys/service.ts) and ended sessions
 * (`acp.endedSessionRetentionDays`, src/acp/index.ts). A stop waits for a run under way until its deadline, at
 * least 1 s: a store connected but not answering (a Redis stopped) would hold the run, and the stop, for ever. A run
 * the stop cuts (the store closes under it) is logged at debug, never as a failure to retry within the hour.
 */
import type { Logger } from './log.js';
import { REDIS_CLOSE_WAIT_MS } from './redis-close.js';
import { settledWithin } from './settled-within.js';

const EVERY_MS = 3_600_000;
const DAY_MS = 86_400_000;

export interface RetentionJob {
  /**
   * Runs no more, and waits for a run under way until `deadline` (epoch ms), at least REDIS_CLOSE_WAIT_MS (1 s)
   * from now; a run still under way then is logged and left (the store's close ends it).
   */
  stop(deadline?: number): Promise<void>;
}

/**
 * Starts the job; `deleteBefore(ms)` deletes what is older than ms since epoch and says how many. `what`
 * names it in the log (`usage records`, `ended sessions`); `setting` is the config key of `days`.
 */
export function startRetention(o: {
  days: number;
  what: string;
  setting: string;
  logger: Logger;
  deleteBefore: (before: number) => Promise<number>;
}): RetentionJob {
  let running: Promise<void> | undefined;
  /** set by `stop`: a run that fails from then on was cut by the stop (the store closes under it), not retried */
  let stopped = false;
  const run = (): Promise<void> => {
    if (running) return running;
    const before = Date.now() - o.days * DAY_MS;
    running = o
      .deleteBefore(before)
      .then(
        (deleted) => {
          if (deleted > 0) o.logger.info(`${o.what} pruned`, { deleted, before: new Date(before).toISOString(), [o.setting]: o.days });
        },
        (err: unknown) => {
          const e = String((err as Error)?.message ?? err);
          // at a stop the store closes under a run still going: there is no next hour, and nothing failed
          if (stopped) o.logger.debug(`${o.what} pruning cut by the stop`, { err: e });
          else o.logger.warn(`${o.what} could not be pruned; retrying within the hour`, { err: e });
        },
      )
      .finally(() => {
        running = undefined;
      });
    return running;
  };
  void run();
  const timer = setInterval(() => void run(), EVERY_MS);
  timer.unref();
  return {
    async stop(deadline?: number) {
      stopped = true;
      clearInterval(timer);
      const run = running;
      if (!run) return;
      const waitMs = Math.max(REDIS_CLOSE_WAIT_MS, (deadline ?? 0) - Date.now());
      if (!(await settledWithin(run, waitMs)))
        o.logger.warn(`graceful stop: ${o.what} pruning left unfinished: the store did not answer within the stop's wait (the next start prunes the rest)`, {
          waitedMs: waitMs,
        });
    },
  };
}
