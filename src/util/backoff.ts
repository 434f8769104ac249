/**
 * Exponential back-off with jitter, the one schedule used by every reconnecting client (bridge dialer,
 * OpenClaw client). Pure: the random source is injectable so tests can pin it.
 */

export interface BackoffOptions {
  /** delay after the first failure */
  initialMs: number;
  /** cap of the doubling */
  maxMs: number;
  /** ± fraction applied to each delay (0.2 = ±20 %) */
  jitter: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { initialMs: 1000, maxMs: 30_000, jitter: 0.2 };

/** Delay before attempt number `failures + 1` after `failures` consecutive failures (≥ 1). */
export function backoffDelay(failures: number, o: BackoffOptions = DEFAULT_BACKOFF, rand: () => number = Math.random): number {
  const base = Math.min(o.maxMs, o.initialMs * 2 ** Math.max(0, failures - 1));
  const jittered = base * (1 + o.jitter * (rand() * 2 - 1));
  return Math.max(0, Math.min(o.maxMs, Math.round(jittered)));
}
