/**
 * The limiter contract: admit one request for a scope (`key:<id>` or `peer:<id>`), later settle what it used.
 * Two implementations: memory (one process; SQLite store) and Redis (several instances share one count,
 * with a memory fallback at `limitShare` while Redis is unreachable).
 *
 * Algorithms (both implementations, identical arithmetic):
 * - requests/min: GCRA (a token bucket stored as one timestamp): a burst of N, then one more every 60 s / N.
 *   No window edges, so "5 per minute" never lets 10 through around a minute boundary.
 * - tokens/min: the same bucket, debited after the request with the tokens the upstream reported. A request
 *   is admitted while the bucket is not empty, so one large answer may overdraw it; the debt delays the next.
 * - concurrent: leases that expire after `leaseMs` (the request deadline), so a crashed instance's leases
 *   free themselves.
 * - budget: tokens and cost spent in the current UTC day/month; admitted while below the cap. The request
 *   that crosses the cap finishes; the next one is refused until the period ends.
 */
import type { Limits } from './model.js';

export interface BudgetCheck {
  /** `2026-11-29` or `2026-11` */
  periodId: string;
  /** epoch ms when the period ends (Retry-After for a budget refusal) */
  periodEnd: number;
  tokens?: number | undefined;
  cost?: number | undefined;
}

export interface AdmitRequest {
  scope: string;
  limits: Limits;
  budget?: BudgetCheck | undefined;
  /** how long a concurrency lease lives if it is never settled (crash) */
  leaseMs: number;
}

export type RefusalReason = 'requests' | 'tokens' | 'concurrent' | 'budget';

/** Numbers for `x-ratelimit-*` headers; undefined where the scope has no such limit. */
export interface LimitState {
  requests?: { limit: number; remaining: number; resetMs: number } | undefined;
  tokens?: { limit: number; remaining: number; resetMs: number } | undefined;
}

export type Admission = { ok: true; lease: string; state: LimitState } | { ok: false; reason: RefusalReason; retryAfterMs: number; state: LimitState };

export interface Settlement {
  tokens: number;
  cost: number;
  budget?: BudgetCheck | undefined;
  limits: Limits;
}

export interface Limiter {
  /** `memory` or `redis`; `degraded` is true while a Redis limiter runs on its local share */
  readonly kind: 'memory' | 'redis';
  readonly degraded: boolean;
  admit(req: AdmitRequest): Promise<Admission>;
  /** releases the lease and debits tokens/cost; never throws */
  settle(scope: string, lease: string, s: Settlement): Promise<void>;
  /** budget spent so far in a period (for `keys show`) */
  spent(scope: string, periodId: string): Promise<{ tokens: number; cost: number }>;
  close(): Promise<void>;
}

export const MINUTE_MS = 60_000;

/**
 * How late a GCRA timestamp may be and still admit: half a ms, or half a step when a step is shorter. The
 * timestamps are sums of fractional steps on epoch ms (`60 000 / 7` added to ~1.8e12), so each sum is off by up
 * to 1e-4 ms, and a burst's last request, due exactly at the bucket's edge, could be refused by that rounding
 * (9/min admitted 8 in a burst). Clocks tick in whole ms, so admitting within half of one changes nothing else.
 * Both limiters use it, the Redis one in its script (`math.min(0.5, 30000 / rpm)`).
 */
export function gcraSlack(perMs: number): number {
  return Math.min(0.5, perMs / 2);
}

/** What a GCRA bucket with `backlogMs` has left for more, at `perMs` each (the rate-limit headers' `remaining`). */
function gcraRemaining(backlogMs: number, perMs: number): number {
  return Math.max(0, Math.floor((MINUTE_MS - backlogMs + gcraSlack(perMs)) / perMs));
}

/**
 * The rate-limit state of a key's buckets from their backlogs (ms ≥ 0 until each is empty): what both limiters
 * report, so the headers say the same whichever counted.
 */
export function gcraState(l: Limits, reqBacklogMs: number, tokBacklogMs: number): LimitState {
  const out: LimitState = {};
  if (l.requestsPerMin !== undefined) {
    out.requests = { limit: l.requestsPerMin, remaining: gcraRemaining(reqBacklogMs, MINUTE_MS / l.requestsPerMin), resetMs: Math.ceil(reqBacklogMs) };
  }
  if (l.tokensPerMin !== undefined) {
    out.tokens = { limit: l.tokensPerMin, remaining: gcraRemaining(tokBacklogMs, MINUTE_MS / l.tokensPerMin), resetMs: Math.ceil(tokBacklogMs) };
  }
  return out;
}

/** Counters a future /metrics endpoint reads; they only ever grow (except `degraded`). */
export const limitMetrics = {
  /** admissions decided by Redis */
  redisDecisions: 0,
  /** Redis calls that failed or timed out */
  redisErrors: 0,
  /** admissions decided locally at limitShare because Redis was unreachable */
  fallbackDecisions: 0,
  /** times the limiter switched to its local share */
  degradedTransitions: 0,
  /** 1 while on the local share */
  degraded: 0,
  /** requests refused, by reason */
  refused: { requests: 0, tokens: 0, concurrent: 0, budget: 0 } as Record<RefusalReason, number>,
};
