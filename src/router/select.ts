/**
 * Candidate selection. Priority tiers always apply (lower `priority` value = tried first, like Envoy's
 * priority 0); inside the best tier that still has an eligible candidate, the strategy picks:
 * - `least-loaded`: power of two choices on in-flight ÷ capacity, ties broken by latency EWMA;
 *   `preferLocal` makes a local candidate win at equal load;
 * - `weighted`: random in proportion to `weight`;
 * - `priority`: strictly the highest weight, then config order (deterministic).
 * Pure apart from the random source, which callers may inject for tests.
 */
import type { Candidate } from './candidate.js';

export type Strategy = 'least-loaded' | 'weighted' | 'priority';

export interface Scored {
  candidate: Candidate;
  inflight: number;
  capacity: number;
  latencyMsEwma: number;
  /** the candidate's own word on its health (a peer's announcement); absent = no opinion */
  healthy?: boolean | undefined;
}

export interface SelectOptions {
  strategy: Strategy;
  preferLocal: boolean;
  random?: () => number;
}

export function utilisation(s: Scored): number {
  return s.capacity > 0 ? s.inflight / s.capacity : Number.POSITIVE_INFINITY;
}

/** Orders two candidates for least-loaded: negative = a is better. */
function compareLoad(a: Scored, b: Scored, preferLocal: boolean): number {
  const ua = utilisation(a);
  const ub = utilisation(b);
  if (Math.abs(ua - ub) > 1e-9) return ua - ub;
  if (preferLocal) {
    const la = a.candidate.peer ? 1 : 0;
    const lb = b.candidate.peer ? 1 : 0;
    if (la !== lb) return la - lb;
  }
  return (a.latencyMsEwma || 0) - (b.latencyMsEwma || 0);
}

function weightedPick(pool: Scored[], random: () => number): Scored {
  const total = pool.reduce((n, s) => n + Math.max(0, s.candidate.weight), 0);
  if (total <= 0) return pool[Math.floor(random() * pool.length)]!;
  let r = random() * total;
  for (const s of pool) {
    r -= Math.max(0, s.candidate.weight);
    if (r < 0) return s;
  }
  return pool[pool.length - 1]!;
}

/** Picks one of `eligible` (already filtered: not saturated, not excluded). Undefined when empty. */
export function pick(eligible: Scored[], opts: SelectOptions): Scored | undefined {
  if (eligible.length === 0) return undefined;
  const random = opts.random ?? Math.random;
  let best = Number.POSITIVE_INFINITY;
  for (const s of eligible) best = Math.min(best, s.candidate.priority);
  const tier = eligible.every((s) => s.candidate.priority === best) ? eligible : eligible.filter((s) => s.candidate.priority === best);
  if (tier.length === 1) return tier[0];
  switch (opts.strategy) {
    case 'weighted':
      return weightedPick(tier, random);
    case 'priority': {
      let top = tier[0]!;
      for (const s of tier) if (s.candidate.weight > top.candidate.weight) top = s;
      return top;
    }
    case 'least-loaded': {
      // Power of two choices: two distinct random candidates (weighted), keep the less loaded.
      const a = weightedPick(tier, random);
      const rest = tier.filter((s) => s !== a);
      const b = weightedPick(rest, random);
      return compareLoad(a, b, opts.preferLocal) <= 0 ? a : b;
    }
  }
}
