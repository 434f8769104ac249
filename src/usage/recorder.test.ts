import { describe, expect, it } from 'vitest';
import { UsageRecorder, type UsageSink } from './recorder.js';
import type { UsageRecord } from './record.js';
import { createLogger } from '../util/log.js';

const rec = (i: number): UsageRecord => ({
  ts: i,
  key: '-',
  model: 'm',
  channel: 'c',
  peer: '-',
  direction: 'local',
  inputTokens: 1,
  outputTokens: 1,
  cachedTokens: 0,
  cost: 0,
  stream: false,
  estimated: false,
});

/** A sink whose writes the test settles by hand, one at a time. */
function manualSink() {
  const calls: Array<{ records: readonly UsageRecord[]; resolve: () => void; reject: (e: Error) => void }> = [];
  const sink: UsageSink = {
    appendUsage: (records) => new Promise<void>((resolve, reject) => void calls.push({ records, resolve, reject })),
  };
  return { sink, calls };
}

/** Every callback already queued (promise reactions included) has run. */
const settled = () => new Promise<void>((r) => setImmediate(r));

const logger = createLogger({ part: 'usage-test' }, () => undefined);

describe('UsageRecorder', () => {
  it('records that arrive while a write is under way wait for it: one write at a time, none chained per record', async () => {
    const { sink, calls } = manualSink();
    const r = new UsageRecorder(sink, { flushIntervalMs: 3_600_000, maxBatch: 2, logger });
    r.record(rec(1));
    r.record(rec(2)); // a full batch: the first write starts
    expect(calls).toHaveLength(1);
    for (let i = 3; i <= 12; i++) r.record(rec(i));
    expect(calls).toHaveLength(1);
    calls[0]!.resolve();
    await settled();
    // the records that came meanwhile are a full batch: one write for all of them, not one per record
    expect(calls).toHaveLength(2);
    expect(calls[1]!.records.map((x) => x.ts)).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    calls[1]!.resolve();
    await settled();
    expect(calls).toHaveLength(2);
    expect(r.pendingCount).toBe(0);
  });

  it('a failed write is retried by the timer, not at once by every record that arrived during it', async () => {
    const { sink, calls } = manualSink();
    const r = new UsageRecorder(sink, { flushIntervalMs: 3_600_000, maxBatch: 2, logger });
    r.record(rec(1));
    r.record(rec(2));
    for (let i = 3; i <= 12; i++) r.record(rec(i));
    calls[0]!.reject(new Error('store down'));
    await settled();
    // nothing is lost, and the store that just failed is not asked again before the retry interval
    expect(calls).toHaveLength(1);
    expect(r.pendingCount).toBe(12);
    // more records while failing: still held for the timer's retry (a full batch does not bypass it)
    r.record(rec(13));
    r.record(rec(14));
    await settled();
    expect(calls).toHaveLength(1);
    expect(r.pendingCount).toBe(14);
    // an explicit flush (a usage query, the stop) still writes everything at once
    const f = r.flush();
    expect(calls).toHaveLength(2);
    expect(calls[1]!.records).toHaveLength(14);
    calls[1]!.resolve();
    await f;
    expect(r.pendingCount).toBe(0);
    await r.close();
  });
});
