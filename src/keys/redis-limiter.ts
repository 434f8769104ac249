/**
 * The Redis limiter: one Lua script per admission (atomic, one round trip), one per settlement, so every
 * instance on the same Redis shares one count. Time comes from Redis (`TIME`), so instances' clocks do not
 * matter. Keys (under the store prefix): `rl:{<scope>}:r` / `:t` (GCRA timestamps), `:c` (lease zset),
 * `:b:<period>` (budget hash); hash-tagged per scope so one script touches one slot.
 *
 * When Redis fails (error, or no answer within `timeoutMs`) the limiter switches to a local MemoryLimiter
 * with every limit scaled by `share` (`gateway.limits.limitShare`), logs the switch once, and counts it in
 * `limitMetrics`. While degraded it probes Redis at most once per second and switches back on the first
 * success (logged once). The bound this gives is in docs/keys.md.
 */
import { Redis } from 'ioredis';
import type { Logger } from '../util/log.js';
import { closeRedis } from '../util/redis-close.js';
import { MemoryLimiter } from './memory-limiter.js';
import { gcraState, limitMetrics, type Admission, type AdmitRequest, type BudgetCheck, type Limiter, type RefusalReason, type Settlement } from './limiter.js';
import type { Limits } from './model.js';

/** the longest expiry the scripts set (about 317 years): a whole number Lua prints without an exponent */
const MAX_PX = 10_000_000_000_000;

// The GCRA timestamps are kept as exact as the memory limiter keeps them (`%.17g`: a double read back unchanged),
// never rounded up to a whole ms per step: a ceil per admission cost `rpm` not dividing 60 000 part of its burst
// (7/min admitted 6 in a burst, and said `remaining: 5` after the first), and a ceil per settlement charged a
// 10-token answer 1 ms of a 6M tokens/min bucket, ten times its share. The backlogs and the wait go back as text
// for the same reason (a Lua number reply is truncated to an integer, and overflows past 2^63).
// KEYS: req, tok, conc, budget. ARGV: rpm, tpm, conc, leaseId, leaseMs, budgetTokens, budgetCost, periodEnd
const ADMIT = `local function num(x) return string.format('%.17g', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rpm, tpm, conc = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local bTok, bCost = tonumber(ARGV[6]), tonumber(ARGV[7])
local reqTat = tonumber(redis.call('GET', KEYS[1]) or '0')
local tokTat = tonumber(redis.call('GET', KEYS[2]) or '0')
local bt, bc = 0, 0
if bTok > 0 or bCost > 0 then
  local v = redis.call('HMGET', KEYS[4], 't', 'c')
  bt = tonumber(v[1] or '0')
  bc = tonumber(v[2] or '0')
end
local reqBack = math.max(0, reqTat - now)
local tokBack = math.max(0, tokTat - now)
local function no(reason, wait) return {0, reason, num(math.ceil(wait)), num(reqBack), num(tokBack), tostring(bt), tostring(bc)} end
if conc > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= conc then return no('concurrent', 1000) end
end
if rpm > 0 then
  local wait = reqBack - (60000 - 60000 / rpm)
  if wait > math.min(0.5, 30000 / rpm) then return no('requests', wait) end
end
if tpm > 0 and tokBack >= 60000 then return no('tokens', tokBack - 60000 + 60000 / tpm) end
if (bTok > 0 and bt >= bTok) or (bCost > 0 and bc >= bCost) then return no('budget', math.max(1000, tonumber(ARGV[8]) - now)) end
if rpm > 0 then
  local nt = math.max(reqTat, now) + 60000 / rpm
  redis.call('SET', KEYS[1], num(nt), 'PX', math.ceil(nt - now) + 1000)
  reqBack = nt - now
end
if conc > 0 then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), ARGV[4])
  redis.call('PEXPIRE', KEYS[3], tonumber(ARGV[5]) + 1000)
end
return {1, '', 0, num(reqBack), num(tokBack), tostring(bt), tostring(bc)}`;

// KEYS: conc, tok, budget. ARGV: leaseId, tpm, tokens, cost, budgetExpireAt (0 = no budget)
// A count is any finite number ≥ 0, as the memory limiter takes it: not always a whole one (an upstream may report
// `7.5`), nor always small. So the budget's tokens are HINCRBYFLOAT (HINCRBY refuses a fraction, and the limiter
// would take that script error for Redis being down), and an expiry is capped at a whole number Redis takes
// (an argument Lua prints as `1e+25` is no integer to PX).
const SETTLE = `redis.call('ZREM', KEYS[1], ARGV[1])
local tpm, tokens = tonumber(ARGV[2]), tonumber(ARGV[3])
if tpm > 0 and tokens > 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local tat = tonumber(redis.call('GET', KEYS[2]) or '0')
  local nt = math.max(tat, now) + tokens * 60000 / tpm
  redis.call('SET', KEYS[2], string.format('%.17g', nt), 'PX', math.min(math.ceil(nt - now) + 1000, ${MAX_PX}))
end
if tonumber(ARGV[5]) > 0 then
  if tokens > 0 then redis.call('HINCRBYFLOAT', KEYS[3], 't', ARGV[3]) end
  if tonumber(ARGV[4]) > 0 then redis.call('HINCRBYFLOAT', KEYS[3], 'c', ARGV[4]) end
  redis.call('PEXPIREAT', KEYS[3], ARGV[5])
end
return 1`;

const PROBE_EVERY_MS = 1000;
/** leases kept to give back after an outage, at most (past it they expire by themselves, as after a crash) */
const MAX_UNRELEASED = 10_000;

export interface RedisLimiterOptions {
  url: string;
  prefix: string;
  /** gateway.limits.limitShare, 0 < share ≤ 1 */
  share: number;
  /** gateway.limits.redisTimeoutMs */
  timeoutMs: number;
  logger: Logger;
}

export class RedisLimiter implements Limiter {
  readonly kind = 'redis' as const;
  private readonly local = new MemoryLimiter();
  /** last shared budget spend Redis reported, per `scope|period`: the local share starts from it */
  private readonly lastShared = new Map<string, { tokens: number; cost: number }>();
  /**
   * Leases a settlement could not give back (Redis unreachable), released when Redis answers again: left to
   * expire, each would hold its key's concurrency for up to `leaseMs` (routing.timeoutMs + 5 s) after Redis is back.
   */
  private unreleased: Array<[scope: string, lease: string]> = [];
  private isDegraded = false;
  private nextProbe = 0;
  private seq = 0;
  private readonly tag = Math.random().toString(36).slice(2, 8);

  private constructor(
    private readonly redis: Redis,
    private readonly o: RedisLimiterOptions,
  ) {}

  /** Connects once; a Redis that is down at startup starts the limiter degraded rather than failing. */
  static async open(o: RedisLimiterOptions): Promise<RedisLimiter> {
    // No offline queue and no per-command retries: a command fails at once while disconnected, so a request
    // never waits on a reconnect. ioredis keeps reconnecting in the background.
    const redis = new Redis(o.url, {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      commandTimeout: o.timeoutMs,
      connectTimeout: 5000,
    });
    redis.on('error', () => undefined); // counted and logged per transition below
    const l = new RedisLimiter(redis, o);
    await redis.connect().catch((err: Error) => l.degrade(err));
    return l;
  }

  get degraded(): boolean {
    return this.isDegraded;
  }

  private k(scope: string, part: string): string {
    return `${this.o.prefix}rl:{${scope}}:${part}`;
  }

  private degrade(err: unknown): void {
    limitMetrics.redisErrors++;
    this.nextProbe = Date.now() + PROBE_EVERY_MS;
    if (this.isDegraded) return;
    this.isDegraded = true;
    limitMetrics.degraded = 1;
    limitMetrics.degradedTransitions++;
    this.o.logger.warn('limits: Redis unreachable, each instance now enforces its local share', {
      share: this.o.share,
      err: String((err as Error)?.message ?? err),
    });
  }

  private recover(): void {
    if (!this.isDegraded) return;
    this.isDegraded = false;
    limitMetrics.degraded = 0;
    this.o.logger.info('limits: Redis reachable again, limits are shared across instances');
    this.releaseUnreleased();
  }

  /** Gives back the leases failed settlements kept (ZREM: a lease already gone is no matter); kept on failure. */
  private releaseUnreleased(): void {
    if (this.unreleased.length === 0) return;
    const batch = this.unreleased;
    this.unreleased = [];
    const pipe = this.redis.pipeline();
    for (const [scope, lease] of batch) pipe.zrem(this.k(scope, 'c'), lease);
    pipe.exec().catch(() => {
      this.unreleased = batch.concat(this.unreleased).slice(0, MAX_UNRELEASED);
    });
  }

  private shareOf(l: Limits): Limits {
    const s = (v: number | undefined) => (v === undefined ? undefined : Math.max(1, Math.floor(v * this.o.share)));
    return { requestsPerMin: s(l.requestsPerMin), tokensPerMin: s(l.tokensPerMin), concurrent: s(l.concurrent) };
  }

  /** The local share of what was left of a budget when Redis was last seen. */
  private shareOfBudget(scope: string, b: BudgetCheck | undefined): BudgetCheck | undefined {
    if (!b) return undefined;
    const base = this.lastShared.get(`${scope}|${b.periodId}`) ?? { tokens: 0, cost: 0 };
    const cap = (c: number | undefined, used: number) => (c === undefined ? undefined : used + Math.max(0, c - used) * this.o.share);
    return { ...b, tokens: cap(b.tokens, base.tokens), cost: cap(b.cost, base.cost) };
  }

  private localAdmit(req: AdmitRequest): Admission {
    limitMetrics.fallbackDecisions++;
    return this.local.admitSync({ ...req, limits: this.shareOf(req.limits), budget: this.shareOfBudget(req.scope, req.budget) });
  }

  async admit(req: AdmitRequest): Promise<Admission> {
    if (this.isDegraded && Date.now() < this.nextProbe) return this.localAdmit(req);
    const l = req.limits;
    const b = req.budget;
    const lease = `r${++this.seq}.${this.tag}`;
    let r: [number, string, string, string, string, string, string];
    try {
      r = (await this.redis.eval(
        ADMIT,
        4,
        this.k(req.scope, 'r'),
        this.k(req.scope, 't'),
        this.k(req.scope, 'c'),
        this.k(req.scope, `b:${b?.periodId ?? '-'}`),
        l.requestsPerMin ?? 0,
        l.tokensPerMin ?? 0,
        l.concurrent ?? 0,
        lease,
        req.leaseMs,
        b?.tokens ?? 0,
        b?.cost ?? 0,
        b?.periodEnd ?? 0,
      )) as typeof r;
    } catch (err) {
      this.degrade(err);
      return this.localAdmit(req);
    }
    this.recover();
    limitMetrics.redisDecisions++;
    const [ok, reason, wait, reqBack, tokBack, bt, bc] = r;
    if (b) {
      const spent = { tokens: Number(bt), cost: Number(bc) };
      this.lastShared.set(`${req.scope}|${b.periodId}`, spent);
      this.local.seedBudget(req.scope, b.periodId, spent.tokens, spent.cost);
    }
    const state = gcraState(l, Number(reqBack), Number(tokBack));
    return ok === 1 ? { ok: true, lease, state } : { ok: false, reason: reason as RefusalReason, retryAfterMs: Number(wait), state };
  }

  async settle(scope: string, lease: string, s: Settlement): Promise<void> {
    if (lease.startsWith('m')) return this.local.settle(scope, lease, { ...s, limits: this.shareOf(s.limits) });
    const expireAt = s.budget ? s.budget.periodEnd + 86_400_000 : 0;
    try {
      await this.redis.eval(
        SETTLE,
        3,
        this.k(scope, 'c'),
        this.k(scope, 't'),
        this.k(scope, `b:${s.budget?.periodId ?? '-'}`),
        lease,
        s.limits.tokensPerMin ?? 0,
        s.tokens,
        s.cost,
        expireAt,
      );
    } catch (err) {
      // The lease is given back when Redis answers again (it would expire by itself, but only leaseMs later); the
      // spend is kept locally so the local share counts it.
      if (s.limits.concurrent !== undefined && this.unreleased.length < MAX_UNRELEASED) this.unreleased.push([scope, lease]);
      this.degrade(err);
    }
    // Mirror the spend locally: the local share continues from it if Redis fails later.
    this.local.settleSync(scope, 'r', { ...s, limits: { tokensPerMin: this.shareOf(s.limits).tokensPerMin } });
    if (s.budget) {
      const k = `${scope}|${s.budget.periodId}`;
      const cur = this.lastShared.get(k) ?? { tokens: 0, cost: 0 };
      this.lastShared.set(k, { tokens: cur.tokens + s.tokens, cost: cur.cost + s.cost });
    }
  }

  async spent(scope: string, periodId: string): Promise<{ tokens: number; cost: number }> {
    try {
      const [t, c] = await this.redis.hmget(this.k(scope, `b:${periodId}`), 't', 'c');
      return { tokens: Number(t ?? 0), cost: Number(c ?? 0) };
    } catch {
      return this.local.spent(scope, periodId);
    }
  }

  async close(): Promise<void> {
    await closeRedis(this.redis, undefined, (waitedMs) =>
      this.o.logger.warn("closing: the rate limiter's Redis did not answer QUIT, disconnected", { waitedMs }),
    );
  }
}
