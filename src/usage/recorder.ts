/**
 * Usage records leave the request path at once: `record` only pushes onto an array. A timer writes the
 * batch every `flushIntervalMs` (or sooner when `maxBatch` records wait); `close` writes whatever is left,
 * so a graceful stop (SIGTERM) loses nothing while the store answers, and waits no longer than the stop's
 * deadline when it does not. A failed write keeps its records for the next attempt; only beyond `maxPending`
 * (the store has been down for a long time) are the oldest dropped, counted and logged.
 */
import type { Logger } from '../util/log.js';
import type { UsageRecord } from './record.js';

export interface UsageSink {
  appendUsage(records: readonly UsageRecord[]): Promise<void>;
}

export interface RecorderOptions {
  flushIntervalMs: number;
  maxBatch: number;
  maxPending?: number;
  logger: Logger;
}

/**
 * The least time the final write gets, even when the stop's deadline has passed: a stop whose requests used
 * the whole grace still writes their usage to a store that answers.
 */
export const FINAL_FLUSH_MIN_MS = 1000;

/** Counters a future /metrics endpoint reads. */
export const usageMetrics = { recorded: 0, written: 0, writeErrors: 0, dropped: 0 };

export class UsageRecorder {
  private pending: UsageRecord[] = [];
  /** records in the write under way (not in `pending` meanwhile) */
  private writing = 0;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** the final write is over (written, or given up on at the deadline): a record now has nowhere to go */
  private ended = false;
  /** records still to come when the final write ended, counted as lost then (not logged again when they come) */
  private owed = 0;
  private failing = false;

  constructor(
    private readonly sink: UsageSink,
    private readonly o: RecorderOptions,
  ) {}

  record(r: UsageRecord): void {
    usageMetrics.recorded++;
    if (this.ended) {
      // a request that settled after the stop's final write: lost, never kept in a list nobody writes; counted in
      // the final write's `lost` when it was still settling then, said here otherwise
      usageMetrics.dropped++;
      if (this.owed > 0) this.owed--;
      else this.o.logger.error('usage records lost at shutdown: the store did not take them in time', { lost: 1 });
      return;
    }
    this.pending.push(r);
    const max = this.o.maxPending ?? 100_000;
    if (this.pending.length > max) {
      const n = this.pending.length - max;
      this.pending.splice(0, n);
      usageMetrics.dropped += n;
      this.o.logger.error('usage records dropped: the store has not accepted writes for too long', { dropped: n });
    }
    if (this.closed) return;
    // one write at a time: what arrives during a write goes in the next one (started when it ends), and while
    // the store fails, the timer's retry writes it (a full batch does not ask a failing store again at once)
    if (this.pending.length >= this.o.maxBatch && !this.flushing && !this.failing) void this.flush();
    else this.armTimer();
  }

  private armTimer(): void {
    if (this.timer || this.closed) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.o.flushIntervalMs);
    this.timer.unref();
  }

  /**
   * Writes everything pending now; a call during a write waits for it and then writes what came meanwhile (or
   * waits for the write that took it), so it resolves once nothing it was called for is left to write.
   */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => this.flush());
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = [];
    this.writing = batch.length;
    this.flushing = this.sink
      .appendUsage(batch)
      .then(() => {
        this.writing = 0;
        usageMetrics.written += batch.length;
        if (this.failing) this.o.logger.info('usage records are written again');
        this.failing = false;
      })
      .catch((err: unknown) => {
        usageMetrics.writeErrors++;
        this.writing = 0;
        this.pending = batch.concat(this.pending);
        if (!this.failing)
          this.o.logger.warn('usage records could not be written; kept for the next attempt', {
            pending: this.pending.length,
            err: String((err as Error)?.message ?? err),
          });
        this.failing = true;
        this.armTimer();
      })
      .finally(() => {
        this.flushing = undefined;
        // what came during the write: a full batch goes now (unless the store just failed: the timer retries)
        if (this.closed || this.pending.length === 0) return;
        if (this.pending.length >= this.o.maxBatch && !this.failing) void this.flush();
        else this.armTimer();
      });
    return this.flushing;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /**
   * Stops the timer and writes everything (one retry if the first write fails), until `deadline` (epoch ms;
   * at least FINAL_FLUSH_MIN_MS from now) when one is given: a store that does not answer (Redis down, its
   * client waiting out reconnects) cannot hold up the stop. What was not written by then is logged as lost.
   * `producers`: the requests still settling, whose usage is still to come: the final write waits for them
   * (`settled`), within the same bound, and what they record meanwhile is part of it; those still settling at the
   * bound (`unsettled`) are counted as lost with the rest. A record that arrives after close is lost (logged).
   */
  async close(deadline?: number, producers?: { settled(): Promise<void>; unsettled(): number }): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<void>((resolve) => {
      if (deadline !== undefined) timer = setTimeout(resolve, Math.max(FINAL_FLUSH_MIN_MS, deadline - Date.now()));
    });
    const writeAll = async (): Promise<void> => {
      await producers?.settled();
      await this.flush();
      if (this.pending.length > 0) await this.flush();
    };
    try {
      await Promise.race([writeAll(), expired]);
    } finally {
      clearTimeout(timer);
      this.ended = true;
    }
    this.owed = producers?.unsettled() ?? 0;
    const lost = this.pending.length + this.writing + this.owed;
    if (lost > 0) this.o.logger.error('usage records lost at shutdown: the store did not take them in time', { lost });
  }
}
