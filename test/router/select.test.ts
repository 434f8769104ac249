/** Selection strategies, pure, with a seeded random source. */
import { describe, expect, it } from 'vitest';
import { pick, type Scored } from '../../src/router/select.js';
import type { Candidate } from '../../src/router/candidate.js';

function cand(id: string, over: Partial<Candidate> = {}): Candidate {
  return {
    id,
    channel: id,
    provider: 'mock',
    peer: undefined,
    labels: { channel: id, peer: '', candidate: id },
    models: ['m'],
    priority: 0,
    weight: 1,
    capabilities: { embeddings: true, tools: true, vision: true, nativeResponses: false, synthetic: true },
    load: () => ({ inflight: 0, maxConcurrent: 10, latencyMsEwma: 0 }),
    chat: async () => {
      throw new Error('unused');
    },
    embeddings: async () => {
      throw new Error('unused');
    },
    ...over,
  };
}
const sc = (c: Candidate, inflight = 0, capacity = 10, latency = 0): Scored => ({ candidate: c, inflight, capacity, latencyMsEwma: latency });

function seeded(seed = 42) {
  let s = seed;
  return () => (s = (s * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
}

describe('pick', () => {
  it('always uses the best priority tier (lower value first)', () => {
    const a = sc(cand('a', { priority: 1 }));
    const b = sc(cand('b', { priority: 0 }));
    for (const strategy of ['least-loaded', 'weighted', 'priority'] as const) {
      expect(pick([a, b], { strategy, preferLocal: true, random: seeded() })!.candidate.id).toBe('b');
    }
  });

  it('weighted follows the weights', () => {
    const heavy = sc(cand('heavy', { weight: 3 }));
    const light = sc(cand('light', { weight: 1 }));
    const rnd = seeded(7);
    let n = 0;
    for (let i = 0; i < 4000; i++) if (pick([heavy, light], { strategy: 'weighted', preferLocal: false, random: rnd })!.candidate.id === 'heavy') n++;
    expect(n / 4000).toBeGreaterThan(0.7);
    expect(n / 4000).toBeLessThan(0.8);
  });

  it('priority strategy is deterministic: highest weight, then config order', () => {
    const a = sc(cand('a', { weight: 1 }));
    const b = sc(cand('b', { weight: 2 }));
    const c = sc(cand('c', { weight: 2 }));
    expect(pick([a, b, c], { strategy: 'priority', preferLocal: false, random: seeded() })!.candidate.id).toBe('b');
  });

  it('least-loaded prefers lower utilisation (in-flight ÷ capacity), not raw in-flight', () => {
    const busySmall = sc(cand('small'), 4, 5);
    const busyBig = sc(cand('big'), 6, 100);
    for (let i = 0; i < 50; i++)
      expect(pick([busySmall, busyBig], { strategy: 'least-loaded', preferLocal: false, random: seeded(i) })!.candidate.id).toBe('big');
  });

  it('least-loaded breaks ties by latency EWMA, and preferLocal beats a peer at equal load', () => {
    const slow = sc(cand('slow'), 1, 10, 90);
    const fast = sc(cand('fast'), 1, 10, 10);
    expect(pick([slow, fast], { strategy: 'least-loaded', preferLocal: false, random: seeded() })!.candidate.id).toBe('fast');
    const peer = sc(cand('peer', { peer: { id: 'gw_p', name: 'p', loadBalance: true } }), 0, 10, 1);
    const local = sc(cand('local'), 0, 10, 50);
    expect(pick([peer, local], { strategy: 'least-loaded', preferLocal: true, random: seeded() })!.candidate.id).toBe('local');
    expect(pick([peer, local], { strategy: 'least-loaded', preferLocal: false, random: seeded() })!.candidate.id).toBe('peer');
  });

  it('returns undefined for an empty pool', () => {
    expect(pick([], { strategy: 'least-loaded', preferLocal: true })).toBeUndefined();
  });
});
