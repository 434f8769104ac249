/**
 * The bench report never prints a figure equal to the target it is judged against when it is not: a streaming
 * ratio of 0.596 against ≥ 0.6× printed "0.60× … miss" (run 2 of 2026-11-30 06:46 UTC). The figure gets the
 * decimals it needs; every other figure keeps its usual two (one for MB).
 */
import { describe, expect, it } from 'vitest';

type Report = { rows: Array<{ scenario: string; figure: string; switchyard: string; ratio: string; result: string }> };
const report = (await import(new URL('../../dist-bench/report.js', import.meta.url).href)) as {
  againstTarget(value: number, digits: number, target: number | null, misses: boolean): string;
  buildReport(info: unknown, m: unknown): Report;
};

const info = {
  date: '2026-11-30T00:00:00.000Z',
  machine: { loadAvg1mStart: 0, loadAvg1mEnd: 0, cpus: 2, cpuModel: 'x', memGB: 1, kernel: 'k', node: 'v20' },
  tool: 'wrk',
  settings: {
    quick: false,
    durationSec: 10,
    connections: 50,
    warmupSec: 2,
    streamChunks: 20,
    slowStreams: 1000,
    slowChunkMs: 250,
    pacedChunkMs: 20,
    rounds: 3,
    acpSessions: 30,
  },
  portkey: { available: false, reason: 'test' },
};

describe('bench report precision', () => {
  it('againstTarget adds decimals only to a miss the usual ones would print as the target itself', () => {
    expect(report.againstTarget(0.5955, 2, 0.6, true)).toBe('0.596');
    expect(report.againstTarget(0.6049, 2, 0.6, false)).toBe('0.60'); // a pass printed as its target: fine
    expect(report.againstTarget(0.55, 2, 0.6, true)).toBe('0.55');
    expect(report.againstTarget(0.0504, 2, 0.05, true)).toBe('0.0504'); // 0.050 would still read as 0.05
    expect(report.againstTarget(200.04, 1, 200, true)).toBe('200.04');
    expect(report.againstTarget(0.5955, 2, null, false)).toBe('0.60');
  });

  it('a missed ratio, a missed added time and a missed peak never print as their target', () => {
    const r = report.buildReport(info, {
      stream_50c: { switchyard: { rps: 7099 }, bare: { rps: 11921 } },
      nonstream_1c: { direct: { rps: 10_000 }, bare: { rps: 4000 }, switchyard: { rps: 1000 / (1000 / 4000 + 0.0504) } },
      slow_streams: { idle: { rssMB: 69.99 }, loaded: { rssMB: 200.04 } },
    });
    const row = (figure: string) => r.rows.find((x) => x.figure === figure)!;
    const stream = r.rows.find((x) => x.scenario.startsWith('streaming') && x.figure === 'req/s vs bare pass-through')!;
    expect([stream.ratio, stream.result]).toEqual(['0.596×', 'miss']);
    const one = row('added time per request over bare');
    expect(one.result).toBe('miss');
    expect(one.switchyard).toMatch(/^\+0\.0504 ms \(/);
    const peak = row('gateway RSS under load (peak)');
    expect([peak.switchyard, peak.result]).toEqual(['200.04 MB', 'miss']);
    const idle = row('idle RSS');
    expect([idle.switchyard, idle.result]).toEqual(['70.0 MB', 'pass']); // a pass keeps its usual decimals
  });
});
