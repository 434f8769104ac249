/** In-process limiter (see limiter.ts for the algorithms): the SQLite default, and Redis's fallback. */
import { gcraSlack, gcraState, MINUTE_MS, type Admission, type AdmitRequest, type Limiter, type LimitState, type Settlement } from './limiter.js';
import type { Limits } from './model.js';

interface ScopeState {
  /** GCRA theoretical arrival times, epoch ms */
  reqTat: number;
  tokTat: number;
  inflight: number;
}

export class MemoryLimiter implements Limiter {
  readonly kind = 'memory' as const;
  readonly degraded = false;
  private readonly scopes = new Map<string, ScopeState>();
  private readonly budgets = new Map<string, { tokens: number; cost: number }>();
  private leaseSeq = 0;

  constructor(private readonly now: () => number = Date.now) {}

  private state(scope: string): ScopeState {
    let s = this.scopes.get(scope);
    if (!s) this.scopes.set(scope, (s = { reqTat: 0, tokTat: 0, inflight: 0 }));
    return s;
  }

  /** Sets a period's spend (at startup from recorded usage, or from Redis's last answer). */
  seedBudget(scope: string, periodId: string, tokens: number, cost: number): void {
    this.budgets.set(`${scope}|${periodId}`, { tokens, cost });
  }

  admitSync(req: AdmitRequest): Admission {
    const now = this.now();
    const s = this.state(req.scope);
    const l = req.limits;
    const state = limitState(l, s, now);
    if (l.concurrent !== undefined && s.inflight >= l.concurrent) return { ok: false, reason: 'concurrent', retryAfterMs: 1000, state };
    if (l.requestsPerMin !== undefined) {
      const per = MINUTE_MS / l.requestsPerMin;
      const wait = Math.max(s.reqTat, now) - now - (MINUTE_MS - per);
      if (wait > gcraSlack(per)) return { ok: false, reason: 'requests', retryAfterMs: Math.ceil(wait), state };
    }
    if (l.tokensPerMin !== undefined) {
      const wait = s.tokTat - now - MINUTE_MS;
      if (wait >= 0) return { ok: false, reason: 'tokens', retryAfterMs: Math.ceil(wait + MINUTE_MS / l.tokensPerMin), state };
    }
    const b = req.budget;
    if (b) {
      const spent = this.budgets.get(`${req.scope}|${b.periodId}`);
      if (spent && ((b.tokens !== undefined && spent.tokens >= b.tokens) || (b.cost !== undefined && spent.cost >= b.cost))) {
        return { ok: false, reason: 'budget', retryAfterMs: Math.max(1000, b.periodEnd - now), state };
      }
    }
    if (l.requestsPerMin !== undefined) {
      s.reqTat = Math.max(s.reqTat, now) + MINUTE_MS / l.requestsPerMin;
      // the bucket as it stands once this request is in it, as the Redis limiter reports it: one fewer left, and
      // the time until it is full again
      if (state.requests) {
        state.requests.remaining--;
        state.requests.resetMs = Math.ceil(s.reqTat - now);
      }
    }
    if (l.concurrent !== undefined) s.inflight++;
    return { ok: true, lease: `m${++this.leaseSeq}`, state };
  }

  async admit(req: AdmitRequest): Promise<Admission> {
    return this.admitSync(req);
  }

  settleSync(scope: string, _lease: string, x: Settlement): void {
    const s = this.state(scope);
    if (x.limits.concurrent !== undefined && s.inflight > 0) s.inflight--;
    if (x.limits.tokensPerMin !== undefined && x.tokens > 0) s.tokTat = Math.max(s.tokTat, this.now()) + (x.tokens * MINUTE_MS) / x.limits.tokensPerMin;
    if (x.budget && (x.tokens > 0 || x.cost > 0)) {
      const k = `${scope}|${x.budget.periodId}`;
      const cur = this.budgets.get(k) ?? { tokens: 0, cost: 0 };
      this.budgets.set(k, { tokens: cur.tokens + x.tokens, cost: cur.cost + x.cost });
    }
  }

  async settle(scope: string, lease: string, s: Settlement): Promise<void> {
    this.settleSync(scope, lease, s);
  }

  async spent(scope: string, periodId: string): Promise<{ tokens: number; cost: number }> {
    return this.budgets.get(`${scope}|${periodId}`) ?? { tokens: 0, cost: 0 };
  }

  async close(): Promise<void> {}
}

function limitState(l: Limits, s: ScopeState, now: number): LimitState {
  return gcraState(l, Math.max(0, s.reqTat - now), Math.max(0, s.tokTat - now));
}
