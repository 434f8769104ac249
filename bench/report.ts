/**
 * Benchmark figures, targets and output. Measurements come in raw (req/s, latencies, RSS); every figure is
 * computed here from measurements of the same run, compared with the target from
 * ../shared/spec/performance.md (information only: a miss never fails the run), printed as a table and
 * written as JSON. A reference that was not measured gives no ratio — never a made-up one.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { table } from '../dist/cli/table.js';

/** One load run against one target. Absent fields were not measured in that run. */
export interface Measurement {
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  firstChunkP50Ms?: number;
  firstChunkP99Ms?: number;
  /** first-chunk p50 with the streams' starts spread over one stream's length (no burst of arrivals) */
  firstChunkSpreadP50Ms?: number;
  requests?: number;
  errors?: number;
  non2xx?: number;
  rssMB?: number;
  peakInflight?: number;
  /** req/s of each interleaved round (the figure is their median) */
  roundsRps?: number[];
  /** /acp/rpc row (acp-latency.ts): gateway's part, p50 over sessions */
  addedP50Ms?: number;
  /** /acp/rpc row: the agent's own part (session/prompt received → first update written), p50 */
  agentOwnP50Ms?: number;
  /** /acp/rpc row: agent process start → its `initialize` received, p50 (part of addedP50Ms when not warm) */
  agentBootP50Ms?: number;
  /** /acp/rpc row: sessions that took a warm agent process (no process start in their path) */
  warmStarts?: number;
  /** /acp/rpc row: session.start → first session.update of any kind, p50 */
  firstAnyUpdateP50Ms?: number;
}

/** Scenario keys of the JSON output (stable: CI checks them). */
export const SCENARIOS = ['nonstream_50c', 'nonstream_1c', 'stream_50c', 'bridged_50c', 'bridged_1c', 'slow_streams', 'acp_rpc'] as const;
export type ScenarioKey = (typeof SCENARIOS)[number];

/** measurements[scenario][target], targets: direct | bare | switchyard | portkey | bridged | idle | start | message | … */
export type Measurements = Partial<Record<ScenarioKey, Record<string, Measurement>>>;

export interface ReferenceStatus {
  available: boolean;
  version?: string;
  reason?: string;
}

export interface RunInfo {
  date: string;
  machine: { loadAvg1mStart: number; loadAvg1mEnd: number; cpus: number; cpuModel: string; memGB: number; kernel: string; node: string };
  tool: string;
  settings: {
    quick: boolean;
    durationSec: number;
    connections: number;
    warmupSec: number;
    streamChunks: number;
    slowStreams: number;
    slowChunkMs: number;
    pacedChunkMs: number;
    rounds: number;
    acpSessions: number;
  };
  portkey: ReferenceStatus;
}

export interface Row {
  scenario: string;
  figure: string;
  switchyard: string;
  /** the bare pass-through's own figure in this scenario (bench/bare-proxy.ts), '-' where it has none */
  bare: string;
  reference: string;
  ratio: string;
  target: string;
  result: 'pass' | 'miss' | 'n/a' | '-';
}

export interface Figure {
  key: string;
  value: number | null;
  target: string;
  pass: boolean | null;
  note?: string;
}

export interface BenchReport extends RunInfo {
  version: 1;
  scenarios: Record<string, { measurements: Record<string, Measurement>; figures: Figure[] }>;
  rows: Row[];
}

export const TABLE_HEADERS = ['scenario', 'figure', 'Switchyard', 'bare pass-through', 'reference', 'ratio', 'target', 'result'];

const num = (n: number, digits = 0) => n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const rps = (m: Measurement) => `${num(m.rps!)} req/s`;
const ms = (n: number) => `${n.toFixed(2)} ms`;

/**
 * `value` with `digits` decimals, or more (up to 4) when it misses its `target` and those would print it equal to
 * the target: 0.596 against ≥ 0.6 prints 0.596, not a missed 0.60 (a pass printed equal to its target is fine).
 */
export function againstTarget(value: number, digits: number, target: number | null, misses: boolean): string {
  let d = digits;
  while (misses && target !== null && d < 4 && Number(value.toFixed(d)) === target) d++;
  return value.toFixed(d);
}
const signedMs = (n: number, max: number | null = null) => `${n >= 0 ? '+' : '−'}${againstTarget(Math.abs(n), 2, max, max !== null && n > max)} ms`;

/** A measurement is usable when it has the field and at most 1% of its requests failed. */
function invalid(m: Measurement | undefined, field: keyof Measurement): string | undefined {
  if (!m || typeof m[field] !== 'number') return 'not measured';
  const bad = (m.errors ?? 0) + (m.non2xx ?? 0);
  if (m.requests !== undefined && bad > Math.max(0, m.requests * 0.01)) return `invalid: ${bad} failed of ${m.requests}`;
  if (!(m[field] > 0)) return 'invalid: zero';
  return undefined;
}

interface Builder {
  rows: Row[];
  figures: Record<string, Figure[]>;
}

function add(b: Builder, scenario: ScenarioKey, row: Omit<Row, 'bare'>, fig: Figure): void {
  b.rows.push({ ...row, bare: '-' });
  (b.figures[scenario] ??= []).push(fig);
}

/** ratio figure: value = a/b (higher is better), pass when ≥ min */
function ratioRow(
  b: Builder,
  scenario: ScenarioKey,
  label: string,
  figure: string,
  sy: Measurement | undefined,
  ref: Measurement | undefined,
  refName: string,
  min: number | null,
  unavailable?: string,
): void {
  const key = `${figure}`;
  const target = min === null ? '(info)' : `≥ ${min}×`;
  const why = unavailable ?? invalid(sy, 'rps') ?? invalid(ref, 'rps');
  if (why) {
    const syText = invalid(sy, 'rps') ? (invalid(sy, 'rps') as string) : rps(sy!);
    add(
      b,
      scenario,
      {
        scenario: label,
        figure,
        switchyard: syText,
        reference: `${refName}: ${unavailable ?? invalid(ref, 'rps') ?? rps(ref!)}`,
        ratio: '-',
        target,
        result: 'n/a',
      },
      { key, value: null, target, pass: null, note: why },
    );
    return;
  }
  const r = sy!.rps! / ref!.rps!;
  const pass = min === null ? null : r >= min;
  add(
    b,
    scenario,
    {
      scenario: label,
      figure,
      switchyard: rps(sy!),
      reference: `${refName} ${rps(ref!)}`,
      ratio: `${againstTarget(r, 2, min, pass === false)}×`,
      target,
      result: pass === null ? '-' : pass ? 'pass' : 'miss',
    },
    { key, value: r, target, pass },
  );
}

/** added-time figure: value = a − b in ms (lower is better), pass when ≤ max */
function addedRow(
  b: Builder,
  scenario: ScenarioKey,
  label: string,
  figure: string,
  value: number | null,
  syText: string,
  refText: string,
  max: number | null,
  note?: string,
): void {
  const target = max === null ? '(info)' : `≤ ${max} ms`;
  if (value === null) {
    add(
      b,
      scenario,
      { scenario: label, figure, switchyard: syText, reference: refText, ratio: '-', target, result: 'n/a' },
      { key: figure, value: null, target, pass: null, note: note ?? 'not measured' },
    );
    return;
  }
  const pass = max === null ? null : value <= max;
  add(
    b,
    scenario,
    {
      scenario: label,
      figure,
      switchyard: `${signedMs(value, max)} (${syText})`,
      reference: refText,
      ratio: '-',
      target,
      result: pass === null ? '-' : pass ? 'pass' : 'miss',
    },
    { key: figure, value, target, pass },
  );
}

/** Sets the bare pass-through's figure on the row just added. */
function bare(b: Builder, text: string): void {
  b.rows[b.rows.length - 1]!.bare = text;
}

export function buildReport(info: RunInfo, m: Measurements): BenchReport {
  const b: Builder = { rows: [], figures: {} };
  // the reason is printed once in the header; rows only say that Portkey is missing
  const pk = info.portkey.available ? undefined : 'not available';
  const pkName = 'Portkey';

  // non-streaming, N connections
  const ns = m.nonstream_50c ?? {};
  const nsLabel = `non-streaming, ${info.settings.connections} conn`;
  const bareRps = (x: Measurement | undefined, d: Measurement | undefined) =>
    invalid(x, 'rps') ? (invalid(x, 'rps') as string) : `${rps(x!)}${invalid(d, 'rps') ? '' : ` (${(x!.rps! / d!.rps!).toFixed(2)}× Direct)`}`;
  const nsBare = bareRps(ns.bare, ns.direct);
  // the bare pass-through's own ratio to Portkey: what Node allows that row to reach on this machine
  const barePk = (x: Measurement | undefined, p: Measurement | undefined, text: string) =>
    invalid(x, 'rps') || invalid(p, 'rps') ? text : `${text}; ${(x!.rps! / p!.rps!).toFixed(2)}× Portkey`;
  ratioRow(b, 'nonstream_50c', nsLabel, 'req/s vs bare pass-through', ns.switchyard, ns.bare, 'bare', 0.6);
  bare(b, nsBare);
  ratioRow(b, 'nonstream_50c', nsLabel, 'req/s vs Portkey', ns.switchyard, ns.portkey, pkName, 12, pk);
  bare(b, barePk(ns.bare, ns.portkey, nsBare));
  ratioRow(b, 'nonstream_50c', nsLabel, 'req/s vs Direct', ns.switchyard, ns.direct, 'Direct', 0.3);
  bare(b, nsBare);

  // 1 connection: 1/rps − 1/rps_direct
  const one = m.nonstream_1c ?? {};
  const perReq = (x: Measurement | undefined, d: Measurement | undefined) => (invalid(x, 'rps') || invalid(d, 'rps') ? null : 1000 / x!.rps! - 1000 / d!.rps!);
  const oneSy = perReq(one.switchyard, one.direct);
  const onePk = pk ? null : perReq(one.portkey, one.direct);
  const oneBare = perReq(one.bare, one.direct);
  const oneBareText = oneBare === null ? 'not measured' : `${signedMs(oneBare)} over Direct (${rps(one.bare!)})`;
  addedRow(
    b,
    'nonstream_1c',
    'non-streaming, 1 conn',
    'added time per request over bare',
    perReq(one.switchyard, one.bare),
    one.switchyard?.rps ? rps(one.switchyard) : 'not measured',
    `bare ${one.bare?.rps ? rps(one.bare) : '-'}`,
    0.05,
  );
  bare(b, oneBareText);
  addedRow(
    b,
    'nonstream_1c',
    'non-streaming, 1 conn',
    'added time per request over Direct',
    oneSy,
    one.switchyard?.rps ? rps(one.switchyard) : 'not measured',
    `Direct ${one.direct?.rps ? rps(one.direct) : '-'}; ${pkName} ${pk ?? (onePk === null ? 'invalid' : signedMs(onePk))}`,
    0.3,
  );
  bare(b, oneBareText);

  // streaming
  const st = m.stream_50c ?? {};
  const stLabel = `streaming ${info.settings.streamChunks} chunks, ${info.settings.connections} conn`;
  const stBare = bareRps(st.bare, st.direct);
  ratioRow(b, 'stream_50c', stLabel, 'req/s vs bare pass-through', st.switchyard, st.bare, 'bare', 0.6);
  bare(b, stBare);
  ratioRow(b, 'stream_50c', stLabel, 'req/s vs Portkey', st.switchyard, st.portkey, pkName, 12, pk);
  bare(b, barePk(st.bare, st.portkey, stBare));
  ratioRow(b, 'stream_50c', stLabel, 'req/s vs Direct', st.switchyard, st.direct, 'Direct', null);
  bare(b, stBare);
  // first chunk over Direct: the target's row (streams started at once), then the same streams with their starts
  // spread, as information (bench/run.ts says why)
  const firstChunkRow = (field: 'firstChunkP50Ms' | 'firstChunkSpreadP50Ms', figure: string, max: number | null) => {
    const fc = (x: Measurement | undefined) => (x && typeof x[field] === 'number' && x[field] > 0 ? x[field] : undefined);
    const [sy, d, bareFc, pkFc] = [fc(st.switchyard), fc(st.direct), fc(st.bare), fc(st.portkey)];
    addedRow(
      b,
      'stream_50c',
      stLabel,
      figure,
      sy !== undefined && d !== undefined ? sy - d : null,
      sy !== undefined ? `p50 ${ms(sy)}` : 'not measured',
      `Direct p50 ${d !== undefined ? ms(d) : '-'}; ${pkName} ${pk ?? (pkFc !== undefined && d !== undefined ? signedMs(pkFc - d) : 'invalid')}`,
      max,
    );
    bare(b, bareFc !== undefined && d !== undefined ? `${signedMs(bareFc - d)} (p50 ${ms(bareFc)})` : 'not measured');
  };
  firstChunkRow('firstChunkP50Ms', 'first-chunk p50 added over Direct', 1);
  firstChunkRow('firstChunkSpreadP50Ms', 'first-chunk p50 added, starts spread', null);

  // bridged
  const br = m.bridged_50c ?? {};
  ratioRow(b, 'bridged_50c', `bridged A→B, ${info.settings.connections} conn`, 'req/s vs single gateway B', br.bridged, br.single, 'B alone', 0.9);
  // the bare column of the bridged rows: the same extra hop at Node's floor, a bare pass-through in front of another
  bare(
    b,
    invalid(br.bareHop, 'rps') ??
      invalid(br.bare, 'rps') ??
      `two chained ÷ one: ${(br.bareHop!.rps! / br.bare!.rps!).toFixed(2)}× (${rps(br.bareHop!)} vs ${rps(br.bare!)})`,
  );
  const b1 = m.bridged_1c ?? {};
  const hop = invalid(b1.bridged, 'p50Ms') || invalid(b1.single, 'p50Ms') ? null : b1.bridged!.p50Ms! - b1.single!.p50Ms!;
  addedRow(
    b,
    'bridged_1c',
    'bridged A→B, 1 conn',
    'added p50 latency of the extra hop',
    hop,
    b1.bridged?.p50Ms ? `p50 ${ms(b1.bridged.p50Ms)}` : 'not measured',
    `B alone p50 ${b1.single?.p50Ms ? ms(b1.single.p50Ms) : '-'}`,
    0.5,
  );
  bare(
    b,
    invalid(b1.bareHop, 'p50Ms') ??
      invalid(b1.bare, 'p50Ms') ??
      `two chained − one: ${signedMs(b1.bareHop!.p50Ms! - b1.bare!.p50Ms!)} (p50 ${ms(b1.bareHop!.p50Ms!)})`,
  );

  // memory
  const sl = m.slow_streams ?? {};
  const slLabel = `${info.settings.slowStreams} slow streams`;
  const memRow = (figure: string, x: Measurement | undefined, max: number, extra: string) => {
    const target = `≤ ${max} MB`;
    if (!x?.rssMB) {
      add(
        b,
        'slow_streams',
        { scenario: slLabel, figure, switchyard: 'not measured', reference: '-', ratio: '-', target, result: 'n/a' },
        { key: figure, value: null, target, pass: null, note: 'not measured' },
      );
      return;
    }
    const pass = x.rssMB <= max;
    add(
      b,
      'slow_streams',
      {
        scenario: slLabel,
        figure,
        switchyard: `${againstTarget(x.rssMB, 1, max, !pass)} MB`,
        reference: extra,
        ratio: '-',
        target,
        result: pass ? 'pass' : 'miss',
      },
      { key: figure, value: x.rssMB, target, pass },
    );
  };
  const peak = sl.loaded?.peakInflight;
  memRow(
    'gateway RSS under load (peak)',
    sl.loaded,
    200,
    peak !== undefined
      ? `${peak} streams open at peak${sl.loaded?.errors || sl.loaded?.non2xx ? `, ${(sl.loaded.errors ?? 0) + (sl.loaded.non2xx ?? 0)} failed` : ''}`
      : '-',
  );
  memRow('idle RSS', sl.idle, 70, 'fresh gateway, before load');

  // /acp/rpc: session.start → first agent update, the gateway's part (acp-latency.ts)
  const acp = m.acp_rpc ?? {};
  const acpLabel = `/acp/rpc, ${info.settings.acpSessions} sessions${info.settings.rounds > 1 ? ` × ${info.settings.rounds}` : ''}`;
  const st0 = acp.start;
  const acpBad = !st0 || typeof st0.addedP50Ms !== 'number' || !st0.requests ? 'not measured' : st0.errors ? `invalid: ${st0.errors} failed` : undefined;
  addedRow(
    b,
    'acp_rpc',
    acpLabel,
    'session.start → first update, added over the agent',
    acpBad ? null : st0!.addedP50Ms!,
    acpBad ?? `total p50 ${ms(st0!.p50Ms!)}`,
    acpBad
      ? '-'
      : `agent's own p50 ${ms(st0!.agentOwnP50Ms!)}; agent process start ${ms(st0!.agentBootP50Ms!)}, ${st0!.warmStarts ?? 0}/${st0!.requests} sessions on a warm process; first update of any kind ${ms(st0!.firstAnyUpdateP50Ms!)}`,
    5,
    acpBad,
  );
  const msg = acp.message;
  addedRow(
    b,
    'acp_rpc',
    acpLabel,
    'session.message (agent running) → first update, added',
    acpBad || typeof msg?.addedP50Ms !== 'number' ? null : msg.addedP50Ms,
    'p50',
    'no process start in it',
    null,
    acpBad,
  );

  b.rows.push({
    scenario: 'peer killed / frozen under load',
    figure: 'time to stop routing; failed requests',
    switchyard: 'measured by the fault suite',
    bare: '-',
    reference: '-',
    ratio: '-',
    target: '≤ 0.1 s / dead-peer timeout; 0 failed',
    result: '-',
  });

  const scenarios: BenchReport['scenarios'] = {};
  for (const k of SCENARIOS) scenarios[k] = { measurements: m[k] ?? {}, figures: b.figures[k] ?? [] };
  return { version: 1, ...info, scenarios, rows: b.rows };
}

export function renderReport(r: BenchReport): string {
  const s = r.settings;
  const head = [
    `Switchyard benchmark — ${r.date}`,
    `machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memGB} GB RAM, Linux ${r.machine.kernel}, Node ${r.machine.node}`,
    `machine load average (1 min): ${r.machine.loadAvg1mStart.toFixed(2)} at start, ${r.machine.loadAvg1mEnd.toFixed(2)} at end (other work on the machine skews absolute numbers)`,
    `load: ${r.tool}; ${s.connections} connections; per target ${s.warmupSec} s warm-up then ${s.rounds} interleaved round(s) totalling ~${s.durationSec} s, median taken${s.quick ? ' (--quick: tiny load, figures are not meaningful)' : ''}`,
    r.portkey.available ? `Portkey: @portkey-ai/gateway ${r.portkey.version}` : `Portkey: not available (${r.portkey.reason ?? 'unknown'})`,
    "bare pass-through: node:http in, undici Pool out, no features (bench/bare-proxy.ts), same mock, same run: Node's floor",
    'targets: issue 15 where it sets one, else ../shared/spec/performance.md',
    'ratios are measured side by side in this run; "result" is information only',
    '',
  ];
  return (
    head.join('\n') +
    '\n' +
    table(
      TABLE_HEADERS,
      r.rows.map((x) => [x.scenario, x.figure, x.switchyard, x.bare, x.reference, x.ratio, x.target, x.result]),
    )
  );
}

export function writeReportJson(file: string, r: BenchReport): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(r, null, 2) + '\n');
}
