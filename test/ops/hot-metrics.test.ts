/**
 * The per-request series kept as plain cells (src/obs/hot-metrics.ts) must print exactly what prom-client's own
 * Counter and Histogram print for the same observations: same lines, same label order (`le` first), same values,
 * bucket bounds included (a value equal to a bound counts in that bound's bucket).
 */
import { describe, expect, it } from 'vitest';
import { Counter, Histogram, Registry } from 'prom-client';
import { HotCounter, HotHistogram } from '../../src/obs/hot-metrics.js';

const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/** deterministic values, with every bound itself, 0 and values past the last bound */
function values(n: number): number[] {
  let x = 12345;
  const out = [0, ...BUCKETS, 7, 1e6];
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    out.push((x / 2 ** 31) * 6);
  }
  return out;
}

const strip = (text: string, name: string) => text.replaceAll(name, 'NAME');

describe('hot metrics print what prom-client prints', () => {
  it('histogram: buckets, +Inf, sum and count per label set, in first-seen order', async () => {
    const ref = new Registry();
    const hot = new Registry();
    const h = new Histogram({ name: 'ref_seconds', help: 'h', labelNames: ['route', 'peer'], buckets: BUCKETS, registers: [ref] });
    const hh = new HotHistogram('hot_seconds', 'h', ['route', 'peer'], BUCKETS).register(hot);
    const sets = [
      ['/v1/chat/completions', ''],
      ['/v1/embeddings', 'east "gw"\\'],
    ];
    values(500).forEach((v, i) => {
      const [route, peer] = sets[i % 2]!;
      h.labels(route!, peer!).observe(v);
      hh.observe(
        hh.cell(`${route}\u0000${peer}`, () => [route!, peer!]),
        v,
      );
    });
    expect(strip(await hot.metrics(), 'hot_seconds')).toBe(strip(await ref.metrics(), 'ref_seconds'));
    // as JSON too (prom-client's `get()`), apart from exemplars, which the gateway does not use
    const plain = (vs: ReadonlyArray<{ labels: object; value: number; metricName?: string }>) =>
      vs.map(({ labels, value, metricName }) => ({ labels, value, metricName: metricName?.replace(/^(hot|ref)_/, '') }));
    expect(plain((await hot.getMetricsAsJSON())[0]!.values)).toEqual(plain((await ref.getMetricsAsJSON())[0]!.values));
  });

  it('counter: one line per label set with its sum', async () => {
    const ref = new Registry();
    const hot = new Registry();
    const c = new Counter({ name: 'ref_total', help: 'c', labelNames: ['model', 'direction'], registers: [ref] });
    const hc = new HotCounter('hot_total', 'c', ['model', 'direction']).register(hot);
    for (const [model, direction, n] of [
      ['m1', 'in', 3],
      ['m1', 'out', 5],
      ['m2', 'in', 1],
      ['m1', 'in', 4],
    ] as const) {
      c.inc({ model, direction }, n);
      hc.cell(`${model}\u0000${direction}`, () => [model, direction]).value += n;
    }
    expect(strip(await hot.metrics(), 'hot_total')).toBe(strip(await ref.metrics(), 'ref_total'));
  });
});
