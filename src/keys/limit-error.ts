/**
 * A refused admission as an error the HTTP layer sends: 429 (or 403 for a model the key may not use) with
 * `Retry-After` and the caller's rate-limit headers. `headers` are added by `sendError` (src/http/respond.ts).
 *
 * Header formats (`HeaderFormat`):
 * - `openai` (/v1/*): `x-ratelimit-limit-requests`, `x-ratelimit-remaining-requests`,
 *   `x-ratelimit-reset-requests` (a duration such as `12s` or `350ms`), and the same for `-tokens`.
 * - `anthropic` (/v1/messages): `anthropic-ratelimit-requests-limit`, `-remaining`, `-reset` (RFC 3339),
 *   and the same for `tokens`.
 */
import { GatewayError } from '../wire/errors.js';
import { limitMetrics, type LimitState, type RefusalReason } from './limiter.js';

export type HeaderFormat = 'openai' | 'anthropic';

export class LimitError extends GatewayError {
  readonly headers: Record<string, string>;
  constructor(
    code: 'RATE_LIMITED' | 'BUDGET_EXCEEDED',
    message: string,
    retryAfterMs: number,
    headers: Record<string, string>,
    details: Record<string, unknown>,
  ) {
    super(code, message, { retryAfterSec: Math.max(1, Math.ceil(retryAfterMs / 1000)), details });
    this.name = 'LimitError';
    this.headers = headers;
  }
}

function duration(ms: number): string {
  if (ms < 1000) return `${Math.max(0, Math.ceil(ms))}ms`;
  const s = Math.ceil(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}

/** Rate-limit headers for a state (also usable on successful responses). */
export function rateLimitHeaders(state: LimitState, format: HeaderFormat, now = Date.now()): Record<string, string> {
  const h: Record<string, string> = {};
  for (const kind of ['requests', 'tokens'] as const) {
    const s = state[kind];
    if (!s) continue;
    if (format === 'openai') {
      h[`x-ratelimit-limit-${kind}`] = String(s.limit);
      h[`x-ratelimit-remaining-${kind}`] = String(s.remaining);
      h[`x-ratelimit-reset-${kind}`] = duration(s.resetMs);
    } else {
      h[`anthropic-ratelimit-${kind}-limit`] = String(s.limit);
      h[`anthropic-ratelimit-${kind}-remaining`] = String(s.remaining);
      h[`anthropic-ratelimit-${kind}-reset`] = new Date(now + s.resetMs).toISOString();
    }
  }
  return h;
}

const WHAT: Record<RefusalReason, string> = {
  requests: 'requests per minute',
  tokens: 'tokens per minute',
  concurrent: 'concurrent requests',
  budget: 'budget',
};

/** The error for a refusal of `who` (`key "ci-bot"`, `peer gw_x`). */
export function refusal(who: string, reason: RefusalReason, retryAfterMs: number, state: LimitState, format: HeaderFormat): LimitError {
  limitMetrics.refused[reason]++;
  const headers = rateLimitHeaders(state, format);
  const secs = Math.max(1, Math.ceil(retryAfterMs / 1000));
  if (reason === 'budget') {
    return new LimitError('BUDGET_EXCEEDED', `${who} has used its budget for this period; it resets in ${secs} s`, retryAfterMs, headers, { reason });
  }
  return new LimitError('RATE_LIMITED', `${who} is over its limit of ${WHAT[reason]}; retry in ${secs} s`, retryAfterMs, headers, { reason });
}
