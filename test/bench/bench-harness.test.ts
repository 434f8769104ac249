/**
 * CI check of the benchmark harness: it runs end to end on a tiny load, prints its table and writes JSON
 * with every scenario measured. Never a performance threshold (docs/benchmarks.md): numbers only need to
 * exist and be positive.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ENTRY = fileURLToPath(new URL('../../dist-bench/run.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'sy-bench-test-'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function runBench(args: string[], timeoutMs: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ENTRY, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    // SIGTERM first so the harness tears its gateways down; SIGKILL if that does not end it
    const term = setTimeout(() => child.kill('SIGTERM'), timeoutMs);
    const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 10_000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(term);
      clearTimeout(kill);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

describe('npm run bench --quick', () => {
  it('runs every scenario on a tiny load, prints the table and writes JSON', async () => {
    expect(existsSync(ENTRY), 'dist-bench/run.js missing: run `npm run build` first').toBe(true);
    const json = join(dir, 'results.json');
    const r = await runBench(['--quick', '--no-portkey', '--json', json], 60_000);
    expect(r.code, `exit ${r.code} ${r.signal ?? ''}\n${r.stderr.slice(-3000)}`).toBe(0);

    expect(r.stdout).toMatch(/^scenario\s+figure\s+Switchyard\s+bare pass-through\s+reference\s+ratio\s+target\s+result$/m);
    expect(r.stdout).toContain('Portkey: not available (disabled by --no-portkey)');
    expect(r.stdout).toContain('measured by the fault suite');
    // issue 15's target table: every row is printed, with the bare pass-through's figure beside it
    const line = (scenario: RegExp, figure: string) => r.stdout.split('\n').find((l) => scenario.test(l) && l.includes(figure));
    for (const [scenario, figure] of [
      [/^non-streaming, \d+ conn /, 'req/s vs bare pass-through'],
      [/^non-streaming, \d+ conn /, 'req/s vs Portkey'],
      [/^non-streaming, 1 conn /, 'added time per request over bare'],
      [/^streaming 20 chunks, \d+ conn /, 'req/s vs bare pass-through'],
      [/^streaming 20 chunks, \d+ conn /, 'req/s vs Portkey'],
      [/^streaming 20 chunks, \d+ conn /, 'first-chunk p50 added over Direct'],
      [/^streaming 20 chunks, \d+ conn /, 'first-chunk p50 added, starts spread'],
      [/^bridged A→B, \d+ conn /, 'req/s vs single gateway B'],
      [/^\d+ slow streams /, 'gateway RSS under load (peak)'],
      [/^\d+ slow streams /, 'idle RSS'],
      [/^\/acp\/rpc, \d+ sessions /, 'session.start → first update, added over the agent'],
    ] as Array<[RegExp, string]>) {
      expect(line(scenario, figure), `row "${scenario.source}" / "${figure}" missing from\n${r.stdout}`).toBeDefined();
    }
    // measured rows carry a number and the target: bare's own req/s beside the ratio, the ACP figure in ms
    expect(line(/^non-streaming, \d+ conn /, 'req/s vs bare pass-through')).toMatch(
      /[\d,]+ req\/s\s+[\d,]+ req\/s \([\d.]+× Direct\)\s+bare [\d,]+ req\/s\s+[\d.]+×\s+≥ 0\.6×/,
    );
    expect(line(/^streaming 20 chunks, \d+ conn /, 'req/s vs bare pass-through')).toMatch(/[\d.]+×\s+≥ 0\.6×/);
    expect(line(/^non-streaming, 1 conn /, 'added time per request over bare')).toMatch(/[+−][\d.]+ ms .*≤ 0\.05 ms/);
    // the bridged rows' bare column: the same extra hop at Node's floor (a bare pass-through in front of another)
    expect(line(/^bridged A→B, \d+ conn /, 'req/s vs single gateway B')).toMatch(/two chained ÷ one: [\d.]+× \([\d,]+ req\/s vs [\d,]+ req\/s\)\s+B alone/);
    expect(line(/^bridged A→B, 1 conn /, 'added p50 latency of the extra hop')).toMatch(/two chained − one: [+−][\d.]+ ms \(p50 [\d.]+ ms\)\s+B alone/);
    expect(line(/^\/acp\/rpc, \d+ sessions /, 'session.start → first update')).toMatch(
      /\+[\d.]+ ms \(total p50 [\d.]+ ms\).*agent's own p50 [\d.]+ ms.*≤ 5 ms\s+(pass|miss)$/,
    );

    const report = JSON.parse(readFileSync(json, 'utf8'));
    expect(report.version).toBe(1);
    expect(report.portkey.available).toBe(false);
    const s = report.scenarios;
    expect(Object.keys(s).sort()).toEqual(['acp_rpc', 'bridged_1c', 'bridged_50c', 'nonstream_1c', 'nonstream_50c', 'slow_streams', 'stream_50c']);
    const positive: Array<[string, string, string]> = [
      ['nonstream_50c', 'direct', 'rps'],
      ['nonstream_50c', 'switchyard', 'rps'],
      ['nonstream_50c', 'switchyard', 'p50Ms'],
      ['nonstream_50c', 'bare', 'rps'],
      ['nonstream_1c', 'bare', 'rps'],
      ['stream_50c', 'bare', 'rps'],
      ['stream_50c', 'bare', 'firstChunkP50Ms'],
      ['acp_rpc', 'start', 'addedP50Ms'],
      ['acp_rpc', 'start', 'agentOwnP50Ms'],
      ['acp_rpc', 'message', 'addedP50Ms'],
      ['nonstream_1c', 'direct', 'rps'],
      ['nonstream_1c', 'switchyard', 'rps'],
      ['stream_50c', 'direct', 'rps'],
      ['stream_50c', 'switchyard', 'rps'],
      ['stream_50c', 'direct', 'firstChunkP50Ms'],
      ['stream_50c', 'switchyard', 'firstChunkP50Ms'],
      ['stream_50c', 'direct', 'firstChunkSpreadP50Ms'],
      ['stream_50c', 'bare', 'firstChunkSpreadP50Ms'],
      ['stream_50c', 'switchyard', 'firstChunkSpreadP50Ms'],
      ['bridged_50c', 'bridged', 'rps'],
      ['bridged_50c', 'single', 'rps'],
      ['bridged_1c', 'bridged', 'p50Ms'],
      ['bridged_1c', 'single', 'p50Ms'],
      ['bridged_50c', 'bare', 'rps'],
      ['bridged_50c', 'bareHop', 'rps'],
      ['bridged_1c', 'bare', 'p50Ms'],
      ['bridged_1c', 'bareHop', 'p50Ms'],
      ['slow_streams', 'idle', 'rssMB'],
      ['slow_streams', 'loaded', 'rssMB'],
    ];
    for (const [scenario, target, field] of positive) {
      const v = s[scenario].measurements[target]?.[field];
      expect(typeof v === 'number' && v > 0, `${scenario}.${target}.${field} = ${v}`).toBe(true);
    }
    // no Portkey: its ratios are absent, never made up
    const vsPortkey = s.nonstream_50c.figures.find((f: { key: string }) => f.key === 'req/s vs Portkey');
    expect(vsPortkey.value).toBeNull();
    const vsDirect = s.nonstream_50c.figures.find((f: { key: string }) => f.key === 'req/s vs Direct');
    expect(vsDirect.value).toBeGreaterThan(0);
    const vsBare = s.stream_50c.figures.find((f: { key: string }) => f.key === 'req/s vs bare pass-through');
    expect(vsBare.value).toBeGreaterThan(0);
    expect(s.acp_rpc.measurements.start.errors).toBe(0);
    expect(report.rows.every((row: { bare?: unknown }) => typeof row.bare === 'string')).toBe(true);
    // the keys issue's row: what a key check and its limits add per request (bench/keys-cost.ts)
    expect(r.stdout).toContain('key check + limit, added per request (in-process):');
    expect(r.stdout).toMatch(/^\s+key\+limits\/memory\s+[\d.]+ µs p50\s+[\d.]+ µs p99/m);
    const memoryRow = report.keyCost.find((k: { row: string }) => k.row === 'key+limits/memory');
    expect(memoryRow.p50Us).toBeGreaterThan(0);
  }, 90_000);
});
