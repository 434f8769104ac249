/**
 * The per-request series (requests, durations, time to first token, tokens) kept as plain numbers in cells
 * the hot path holds on to, and handed to prom-client's registry as ordinary metrics (`get()`) when
 * /metrics is scraped. prom-client's own `observe`/`inc` rebuild a labels object, validate it and hash it
 * into a string on every call, even through `labels(...)` children: about 12 µs of the gateway's CPU per
 * request in the bench's A/B (docs/benchmarks.md). Here a request costs a Map lookup by the caller's key and
 * a few additions; the exposition is prom-client's, so the text is unchanged.
 *
 * Written rather than taken from a library because prom-client is the library: this only moves the
 * bookkeeping of four series out of its per-call path and uses its documented custom-metric hook
 * (`Registry.registerMetric` with an object that has `name`, `help`, `type` and `get()`).
 */
import type { Registry } from 'prom-client';

type Labels = Record<string, string | number>;

interface MetricValue {
  labels: Labels;
  /** labels of the whole label set, printed after `labels` (how prom-client's histograms print `le` first) */
  sharedLabels?: Labels;
  value: number;
  metricName?: string;
}

interface MetricSnapshot {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: MetricValue[];
  aggregator: 'sum';
}

/** One label set's running value: the hot path keeps the cell and adds to it. */
export interface CounterCell {
  value: number;
}

export interface HistogramCell {
  /** per bucket (not cumulative): counts[i] for values ≤ buckets[i] and > buckets[i-1]; the last is +Inf */
  readonly counts: Float64Array;
  sum: number;
  count: number;
}

abstract class HotMetric<C> {
  private readonly cells = new Map<string, { labels: Labels; cell: C }>();
  abstract readonly type: 'counter' | 'histogram';

  constructor(
    readonly name: string,
    readonly help: string,
    private readonly labelNames: readonly string[],
  ) {}

  /** The cell of one label set; `key` must identify `values` (the caller joins them), `values` is called once. */
  cell(key: string, values: () => readonly string[]): C {
    const hit = this.cells.get(key);
    if (hit !== undefined) return hit.cell;
    const v = values();
    const labels: Labels = {};
    this.labelNames.forEach((n, i) => (labels[n] = v[i] ?? ''));
    const cell = this.create();
    this.cells.set(key, { labels, cell });
    return cell;
  }

  protected abstract create(): C;
  protected abstract values(labels: Labels, cell: C, out: MetricValue[]): void;

  /** prom-client's metric interface: what the registry formats at a scrape (the form its own metrics give). */
  getForPromString(): MetricSnapshot {
    const out: MetricValue[] = [];
    for (const { labels, cell } of this.cells.values()) this.values(labels, cell, out);
    return { name: this.name, help: this.help, type: this.type, values: out, aggregator: 'sum' };
  }

  /** The same with each value's labels whole (prom-client's `get()`, used by `getMetricsAsJSON`). */
  get(): MetricSnapshot {
    const s = this.getForPromString();
    s.values = s.values.map(({ sharedLabels, labels, ...v }) => ({ ...v, labels: { ...labels, ...sharedLabels } }));
    return s;
  }

  register(registry: Registry): this {
    // prom-client accepts any object with its metric interface here (custom metrics); its type names its own classes
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0]);
    return this;
  }
}

export class HotCounter extends HotMetric<CounterCell> {
  readonly type = 'counter';
  protected create(): CounterCell {
    return { value: 0 };
  }
  protected values(labels: Labels, cell: CounterCell, out: MetricValue[]): void {
    out.push({ labels, value: cell.value });
  }
}

export class HotHistogram extends HotMetric<HistogramCell> {
  readonly type = 'histogram';
  constructor(
    name: string,
    help: string,
    labelNames: readonly string[],
    private readonly buckets: readonly number[],
  ) {
    super(name, help, labelNames);
  }

  static observe(cell: HistogramCell, buckets: readonly number[], v: number): void {
    let i = 0;
    while (i < buckets.length && v > buckets[i]!) i++;
    cell.counts[i]!++;
    cell.sum += v;
    cell.count++;
  }

  observe(cell: HistogramCell, v: number): void {
    HotHistogram.observe(cell, this.buckets, v);
  }

  protected create(): HistogramCell {
    return { counts: new Float64Array(this.buckets.length + 1), sum: 0, count: 0 };
  }

  protected values(labels: Labels, cell: HistogramCell, out: MetricValue[]): void {
    let acc = 0;
    const bucket = `${this.name}_bucket`;
    for (let i = 0; i < this.buckets.length; i++) {
      acc += cell.counts[i]!;
      out.push({ labels: { le: this.buckets[i]! }, sharedLabels: labels, value: acc, metricName: bucket });
    }
    out.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: cell.count, metricName: bucket });
    out.push({ labels: {}, sharedLabels: labels, value: cell.sum, metricName: `${this.name}_sum` });
    out.push({ labels: {}, sharedLabels: labels, value: cell.count, metricName: `${this.name}_count` });
  }
}
