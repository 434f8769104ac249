/**
 * The serving side's check on a bridge peer's forward (`gateway.bridge.peerLimits`): one call where a
 * forward is accepted for serving. It answers allow (with `done`, to be called once when the forward ended,
 * which settles the peer's token count and records the `served-for` usage) or refuse with `retryAfterMs`,
 * which the link sends as `bridge-error RATE_LIMITED` so the requesting gateway fails over. Limits per peer
 * id come from `peerLimits.peers[id]`, else the `peerLimits` defaults; counted in the same limiter as keys
 * (scope `peer:<id>`), so several instances behind one address share a peer's limit through Redis.
 */
import type { Usage } from '../wire/openai.js';
import type { RateLimits } from '../config/schema.js';
import { isEstimate, tokensOf, type UsageRecord } from '../usage/record.js';
import { limitMetrics, type Limiter } from './limiter.js';

export type PeerAdmission = { ok: true; done: (usage: Usage | undefined, ok: boolean) => void } | { ok: false; retryAfterMs: number; message: string };

export type PeerGate = (peerId: string, channel: string, model: string, stream: boolean) => Promise<PeerAdmission>;

export interface PeerGateOptions {
  limits: RateLimits & { peers: Record<string, RateLimits> };
  limiter: Limiter;
  leaseMs: number;
  record: (r: UsageRecord) => void;
  costOf: (channel: string, usage: Usage | undefined) => number;
  /**
   * The key service's count of requests still settling (KeyService.ticketOpened / ticketSettled), which a stop's final
   * usage write waits for before the limiter and the store close: an admitted forward is one from its admission until
   * its `done` has recorded its usage and its lease's settlement is over.
   */
  tickets: { opened(): void; settled(): void };
}

export function makePeerGate(o: PeerGateOptions): PeerGate {
  const { peers, ...defaults } = o.limits;
  const limitsOf = (id: string): RateLimits => peers[id] ?? defaults;
  return async (peerId, channel, model, stream) => {
    const limits = limitsOf(peerId);
    const limited = limits.requestsPerMin !== undefined || limits.tokensPerMin !== undefined || limits.concurrent !== undefined;
    const scope = `peer:${peerId}`;
    let lease: string | undefined;
    if (limited) {
      const a = await o.limiter.admit({ scope, limits, leaseMs: o.leaseMs });
      if (!a.ok) {
        limitMetrics.refused[a.reason]++;
        return {
          ok: false,
          retryAfterMs: a.retryAfterMs,
          message: `peer ${peerId} is over this gateway's peerLimits (${a.reason}); retry in ${Math.ceil(a.retryAfterMs / 1000)} s`,
        };
      }
      lease = a.lease;
    }
    let finished = false;
    o.tickets.opened();
    return {
      ok: true,
      done: (usage, ok) => {
        if (finished) return;
        finished = true;
        let settling: Promise<void> | undefined;
        try {
          const t = tokensOf(usage);
          const cost = o.costOf(channel, usage);
          if (lease !== undefined) settling = o.limiter.settle(scope, lease, { tokens: t.input + t.output, cost, limits });
          if (!ok && !usage) return;
          o.record({
            ts: Date.now(),
            key: 'peer',
            model,
            channel,
            peer: peerId,
            direction: 'served-for',
            inputTokens: t.input,
            outputTokens: t.output,
            cachedTokens: t.cached,
            cost,
            stream,
            estimated: isEstimate(usage),
          });
        } finally {
          // counted until the settlement is over: a stop's final usage write, and the limiter's close after it, wait
          // for it (a settle never rejects: Limiter)
          if (settling) void settling.finally(() => o.tickets.settled());
          else o.tickets.settled();
        }
      },
    };
  };
}
