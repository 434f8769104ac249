/**
 * Usage records leave the request path at once: `record` only pushes onto an array. A timer writes the
 * batch every `flushIntervalMs` (or sooner when `maxBatch` records wait); `close` writes whatever is left,
 * so a graceful stop (SIGTERM) loses nothing. A failed write keeps its records for the next attempt; only
 * beyond `maxPending` (the store has been down for a long time) are the oldest dropped, counted and logged.
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

/** Counters a future /metrics endpoint reads. */
export const usageMetrics = { recorded: 0, written: 0, writeErrors: 0, dropped: 0 };

export class UsageRecorder {
  private pending: UsageRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private failing = false;

  constructor(
    private readonly sink: UsageSink,
    private readonly o: RecorderOptions,
  ) {}

  record(r: UsageRecord): void {
    usageMetrics.recorded++;
    this.pending.push(r);
    const max = this.o.maxPending ?? 100_000;
    if (this.pending.length > max) {
      const n = this.pending.length - max;
      this.pending.splice(0, n);
      usageMetrics.dropped += n;
      this.o.logger.error('usage records dropped: the store has not accepted writes for too long', { dropped: n });
    }
    if (this.closed) return;
    if (this.pending.length >= this.o.maxBatch) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.o.flushIntervalMs);
      this.timer.unref();
    }
  }

  /** Writes everything pending now; concurrent calls share one write. */
  flush(): Promise<void> {
    if (this.flushing) return this.flushing.then(() => (this.pending.length > 0 ? this.flush() : undefined));
    if (this.pending.length === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = [];
    this.flushing = this.sink
      .appendUsage(batch)
      .then(() => {
        usageMetrics.written += batch.length;
        if (this.failing) this.o.logger.info('usage records are written again');
        this.failing = false;
      })
      .catch((err: unknown) => {
        usageMetrics.writeErrors++;
        this.pending = batch.concat(this.pending);
        if (!this.failing)
          this.o.logger.warn('usage records could not be written; kept for the next attempt', {
            pending: this.pending.length,
            err: String((err as Error)?.message ?? err),
          });
        this.failing = true;
        if (!this.closed && !this.timer) {
          this.timer = setTimeout(() => {
            this.timer = undefined;
            void this.flush();
          }, this.o.flushIntervalMs);
          this.timer.unref();
        }
      })
      .finally(() => {
        this.flushing = undefined;
      });
    return this.flushing;
  }

  get pendingCount(): number {
    return this.pending.length;
  }

  /** Stops the timer and writes everything (one retry if the first write fails). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flush();
    if (this.pending.length > 0) await this.flush();
    if (this.pending.length > 0) this.o.logger.error('usage records lost at shutdown: the store refused them', { lost: this.pending.length });
  }
}
