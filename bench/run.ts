/**
 * `npm run bench`: the benchmark harness (docs/benchmarks.md, ../shared/spec/performance.md). Starts the
 * mock upstream (child process), the bare pass-through (Node's floor, child process), gateway B (one gateway;
 * also the bridge target), gateway A (bridged to B), optionally Portkey, a gateway with the trivial ACP agent
 * for the /acp/rpc row, then a fresh gateway for the memory run — all real processes on 127.0.0.1 with ports
 * from the OS — measures every scenario against its references side by side, prints the table and writes
 * JSON. Everything is torn down at the end, on error and on SIGINT/SIGTERM.
 *
 *   node dist-bench/run.js [--quick] [--duration S] [--connections N] [--json FILE] [--no-portkey]
 *
 * Over 400 lines: one script that runs the scenarios in order against processes it owns; the load tool, the
 * mock upstream, Portkey and the report are already their own modules.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { spawnGateway, type GatewayProcess } from '../dist/util/gateway-process.js';
import { pickLoadTool, runStreamClient, type LoadResult, type LoadTarget, type LoadTool, type StreamClientResult } from './load.js';
import { MOCK_MODELS, startMockUpstream, type MockUpstream } from './mock-upstream.js';
import { startBareProxy } from './bare-proxy.js';
import { medianOfRounds, runAcpRow, type AcpLatencyResult } from './acp-latency.js';
import { portkeyInstalled, startPortkey, type PortkeyProcess } from './portkey.js';
import { buildReport, renderReport, writeReportJson, type Measurement, type Measurements, type RunInfo } from './report.js';

const USAGE = `usage: node dist-bench/run.js [--quick] [--duration S] [--connections N] [--json FILE] [--no-portkey]
  --quick          tiny load for CI (1 s runs, few connections; Portkey only if already installed)
  --duration S     seconds per measured run (default 10)
  --connections N  connections of the "50 connections" scenarios (default 50)
  --json FILE      where to write the JSON results (default .bench/results.json)
  --no-portkey     do not install or start Portkey
`;

interface Settings {
  quick: boolean;
  durationSec: number;
  connections: number;
  warmupSec: number;
  jsonFile: string;
  portkey: boolean;
  streamChunks: number;
  pacedChunkMs: number;
  slowStreams: number;
  slowChunkMs: number;
  /** interleaved rounds per side-by-side measurement */
  rounds: number;
  /** sequential sessions of the /acp/rpc row */
  acpSessions: number;
}

function parseSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      connections: { type: 'string' },
      json: { type: 'string' },
      'no-portkey': { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const positive = (v: string | undefined, name: string, def: number) => {
    if (v === undefined) return def;
    const n = Number(v);
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name}: expected a positive number, got "${v}"`);
    return n;
  };
  const quick = values.quick === true;
  const connections = Math.round(positive(values.connections, 'connections', quick ? 8 : 50));
  return {
    quick,
    durationSec: positive(values.duration, 'duration', quick ? 1 : 10),
    connections,
    warmupSec: quick ? 0 : 2,
    jsonFile: resolve(values.json ?? '.bench/results.json'),
    portkey: values['no-portkey'] !== true,
    streamChunks: 20,
    pacedChunkMs: 20,
    slowStreams: quick ? 100 : 1000,
    slowChunkMs: quick ? 50 : 250,
    rounds: quick ? 1 : 3,
    acpSessions: quick ? 5 : 30,
  };
}

const log = (s: string) => process.stderr.write(s);

function chatBody(model: string, stream: boolean): string {
  return JSON.stringify({
    model,
    messages: [{ role: 'user', content: 'Reply with a short sentence for the benchmark.' }],
    ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
  });
}

/** VmRSS of a live process in MB (Linux /proc). */
function rssMB(pid: number): number | undefined {
  try {
    const kb = /VmRSS:\s+(\d+)\s+kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
    return kb ? Number(kb) / 1024 : undefined;
  } catch {
    return undefined;
  }
}

interface Gw {
  proc: GatewayProcess;
  url: string;
}

async function gateway(dir: string, name: string, cfg: Record<string, unknown>): Promise<Gw> {
  const file = join(dir, `${name}.json5`);
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  const proc = await spawnGateway(file, { SWITCHYARD_LOG: 'warn' });
  return { proc, url: proc.url };
}

function mockChannel(mock: MockUpstream, maxConcurrent: number) {
  return {
    name: 'mock',
    provider: 'openai',
    baseUrl: `${mock.url}/v1`,
    apiKey: 'bench-key',
    models: [MOCK_MODELS.fast, MOCK_MODELS.paced, MOCK_MODELS.slow],
    maxConcurrent,
  };
}

/** One real request through a target before loading it: the path must work, or the numbers mean nothing. */
async function sanity(t: LoadTarget, stream: boolean, chunks: number, expectHeader?: string): Promise<void> {
  const res = await fetch(t.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...t.headers },
    body: t.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${t.url} answered ${res.status}: ${text.slice(0, 200)}`);
  if (expectHeader && !res.headers.get(expectHeader)) throw new Error(`${t.url}: response lacks ${expectHeader}`);
  if (stream) {
    const events = text.split('\n\n').filter((e) => e.startsWith('data: {'));
    if (events.length < chunks || !text.includes('data: [DONE]'))
      throw new Error(`${t.url}: stream had ${events.length} chunks${text.includes('[DONE]') ? '' : ' and no [DONE]'}`);
  } else if (!(JSON.parse(text) as { choices?: unknown[] }).choices?.length) {
    throw new Error(`${t.url}: reply has no choices`);
  }
}

function fromStreams(r: StreamClientResult): Measurement {
  return { firstChunkP50Ms: r.firstChunkP50Ms, firstChunkP99Ms: r.firstChunkP99Ms, errors: r.errors, non2xx: r.non2xx, peakInflight: r.peakInflight };
}

async function main(): Promise<void> {
  const s = parseSettings(process.argv.slice(2));
  const cleanups: Array<() => Promise<unknown>> = [];
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-'));
  cleanups.push(async () => rmSync(dir, { recursive: true, force: true }));
  let cleaned = false;
  const cleanup = async () => {
    if (cleaned) return;
    cleaned = true;
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
  };
  const onSignal = (sig: string) => {
    log(`\n${sig}: stopping everything\n`);
    void cleanup().then(() => process.exit(130));
  };
  process.once('SIGINT', () => onSignal('SIGINT'));
  process.once('SIGTERM', () => onSignal('SIGTERM'));

  const loadAvg1mStart = loadavg()[0]!;
  try {
    const tool: LoadTool = await pickLoadTool(log, !s.quick);
    log(`load tool: ${tool.name}\n`);
    const mock = await startMockUpstream({ chunks: s.streamChunks, pacedChunkMs: s.pacedChunkMs, slowChunkMs: s.slowChunkMs });
    cleanups.push(() => mock.stop());
    log(`mock upstream: ${mock.url} (pid ${mock.pid})\n`);
    const bareProxy = await startBareProxy(mock.url);
    cleanups.push(() => bareProxy.stop());
    log(`bare pass-through: ${bareProxy.url} (pid ${bareProxy.pid})\n`);
    // Node's floor for an extra hop: a second bare pass-through in front of the first, read against the first
    // alone in the bridged rows (what any extra Node process on the path costs on this machine)
    const bareHop = await startBareProxy(bareProxy.url);
    cleanups.push(() => bareHop.stop());
    log(`bare pass-through in front of it (the bridged rows' floor): ${bareHop.url} (pid ${bareHop.pid})\n`);

    const bridgeToken = randomBytes(16).toString('hex');
    const capacity = Math.max(1024, s.slowStreams + 64, s.connections * 2);
    const b = await gateway(dir, 'gateway-b', {
      gateway: {
        id: 'gw_bench_b',
        name: 'bench-b',
        port: 0,
        bridge: { enabled: true, allowedTokens: [bridgeToken], shareChannels: ['mock'], maxPeers: 2, limits: { maxInflightPerPeer: capacity } },
      },
      channels: [mockChannel(mock, capacity)],
      store: { kind: 'sqlite', path: './b-data/switchyard.db' },
    });
    cleanups.push(() => b.proc.stop());
    const a = await gateway(dir, 'gateway-a', {
      gateway: {
        id: 'gw_bench_a',
        name: 'bench-a',
        port: 0,
        bridges: [{ name: 'bench-b', url: `${b.url.replace(/^http/, 'ws')}/bridge`, token: bridgeToken, shareChannels: false, reconnectInterval: 200 }],
      },
      channels: [],
      store: { kind: 'sqlite', path: './a-data/switchyard.db' },
    });
    cleanups.push(() => a.proc.stop());
    log(`gateway B: ${b.url} (pid ${b.proc.proc.pid}); gateway A: ${a.url} (pid ${a.proc.proc.pid}), bridged to B\n`);
    const until = Date.now() + 15_000;
    for (;;) {
      const models = await fetch(`${a.url}/v1/models`)
        .then((r) => r.json() as Promise<{ data: Array<{ id: string }> }>)
        .catch(() => undefined);
      if (models?.data.some((m) => m.id === MOCK_MODELS.fast)) break;
      if (Date.now() > until) throw new Error("gateway A did not see B's shared channel within 15 s");
      await new Promise((r) => setTimeout(r, 100));
    }

    let portkey: PortkeyProcess | undefined;
    let portkeyStatus: RunInfo['portkey'] = { available: false, reason: 'disabled by --no-portkey' };
    if (s.portkey && s.quick && !portkeyInstalled()) portkeyStatus = { available: false, reason: '--quick does not install it; run the full bench once' };
    else if (s.portkey) {
      try {
        portkey = await startPortkey(log);
        cleanups.push(() => portkey!.stop());
        portkeyStatus = { available: true, version: `${portkey.version} (@hono/node-server pinned to 1.13.8)` };
        log(`Portkey: ${portkey.url} (pid ${portkey.pid})\n`);
      } catch (err) {
        portkeyStatus = { available: false, reason: (err as Error).message.split('\n')[0]!.slice(0, 200) };
        log(`Portkey: not available (${portkeyStatus.reason})\n`);
      }
    }

    const mkTargets = (model: string, stream: boolean) => {
      const body = chatBody(model, stream);
      const auth = { authorization: 'Bearer bench-key' };
      return {
        direct: { url: `${mock.url}/v1/chat/completions`, headers: auth, body },
        bare: { url: `${bareProxy.url}/v1/chat/completions`, headers: auth, body },
        switchyard: { url: `${b.url}/v1/chat/completions`, headers: auth, body },
        bridged: { url: `${a.url}/v1/chat/completions`, headers: auth, body },
        ...(portkey ? { portkey: { url: `${portkey.url}/v1/chat/completions`, headers: { ...auth, ...portkey.routeHeaders(`${mock.url}/v1`) }, body } } : {}),
      } as Record<'direct' | 'bare' | 'switchyard' | 'bridged' | 'portkey', LoadTarget | undefined>;
    };
    const plain = mkTargets(MOCK_MODELS.fast, false);
    const streaming = mkTargets(MOCK_MODELS.fast, true);
    const paced = mkTargets(MOCK_MODELS.paced, true);

    for (const [name, t] of Object.entries(plain)) {
      if (!t) continue;
      try {
        await sanity(t, false, 0, name === 'bridged' ? 'x-switchyard-peer' : undefined);
        await sanity(streaming[name as keyof typeof streaming]!, true, s.streamChunks);
      } catch (err) {
        if (name !== 'portkey') throw err;
        portkeyStatus = { available: false, reason: `sanity request failed: ${(err as Error).message.slice(0, 200)}` };
        log(`Portkey: not available (${portkeyStatus.reason})\n`);
        delete plain.portkey;
        delete streaming.portkey;
        delete paced.portkey;
      }
    }

    const m: Measurements = {};
    const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)] ?? 0;
    const segmentSec = Math.max(1, Math.round(s.durationSec / s.rounds));
    /**
     * Measures several targets side by side: a warm-up each, then `rounds` short runs interleaved across the
     * targets (the order rotates every round), so drift on a shared machine hits every target alike. Each
     * figure is the median over the rounds; the per-round req/s are kept in the JSON.
     */
    const sideBySide = async (targets: Array<[string, LoadTarget]>, connections: number): Promise<Record<string, Measurement>> => {
      const runs = new Map<string, LoadResult[]>(targets.map(([k]) => [k, []]));
      if (s.warmupSec > 0) for (const [, t] of targets) await tool.run(t, connections, s.warmupSec);
      for (let r = 0; r < s.rounds; r++) {
        for (let i = 0; i < targets.length; i++) {
          const [k, t] = targets[(i + r) % targets.length]!;
          runs.get(k)!.push(await tool.run(t, connections, segmentSec));
        }
      }
      const out: Record<string, Measurement> = {};
      for (const [k, rs] of runs) {
        const sum = (f: (x: LoadResult) => number) => rs.reduce((acc, x) => acc + f(x), 0);
        const mm: Measurement = {
          rps: median(rs.map((x) => x.rps)),
          p50Ms: median(rs.map((x) => x.p50Ms)),
          p99Ms: median(rs.map((x) => x.p99Ms)),
          requests: sum((x) => x.requests),
          errors: sum((x) => x.errors),
          non2xx: sum((x) => x.non2xx),
          roundsRps: rs.map((x) => Math.round(x.rps)),
        };
        log(
          `  ${k}: ${mm.rps!.toFixed(0)} req/s (rounds ${mm.roundsRps!.join(', ')}), p50 ${mm.p50Ms!.toFixed(2)} ms, p99 ${mm.p99Ms!.toFixed(2)} ms${mm.errors || mm.non2xx ? `, ${mm.errors} errors, ${mm.non2xx} non-2xx` : ''}\n`,
        );
        out[k] = mm;
      }
      return out;
    };
    const three = (ts: typeof plain) =>
      (['direct', 'bare', 'switchyard', 'portkey'] as const).filter((k) => ts[k]).map((k) => [k, ts[k]!] as [string, LoadTarget]);

    log(`non-streaming, ${s.connections} connections\n`);
    m.nonstream_50c = await sideBySide(three(plain), s.connections);
    log('non-streaming, 1 connection\n');
    m.nonstream_1c = await sideBySide(three(plain), 1);
    log(`streaming (${s.streamChunks} chunks), ${s.connections} connections\n`);
    const stream50 = (m.stream_50c = await sideBySide(three(streaming), s.connections));

    log(`first-chunk latency: ${s.connections} concurrent streams, mock chunks ${s.pacedChunkMs} ms apart (below saturation)\n`);
    const fcTargets = three(paced);
    if (s.warmupSec > 0) for (const [, t] of fcTargets) await runStreamClient({ target: t, connections: s.connections, durationSec: s.warmupSec });
    // interleaved rounds of the first-chunk client over the targets (`ramp`: how the connections start); logs each
    // target's figures, counts its failures into the streaming row, and gives its medians
    const firstChunks = async (ramp: { rampBatch?: number; rampEveryMs?: number }) => {
      const runs = new Map<string, StreamClientResult[]>(fcTargets.map(([k]) => [k, []]));
      for (let r = 0; r < s.rounds; r++) {
        for (let i = 0; i < fcTargets.length; i++) {
          const [k, t] = fcTargets[(i + r) % fcTargets.length]!;
          runs.get(k)!.push(await runStreamClient({ target: t, connections: s.connections, durationSec: segmentSec, ...ramp }));
        }
      }
      const out = new Map<string, { p50: number; p99: number }>();
      for (const [k, rs] of runs) {
        const p50 = median(rs.map((x) => x.firstChunkP50Ms));
        const p99 = median(rs.map((x) => x.firstChunkP99Ms));
        const bad = rs.reduce((acc, x) => acc + x.errors + x.non2xx, 0);
        log(
          `  ${k}: first chunk p50 ${p50.toFixed(2)} ms (rounds ${rs.map((x) => x.firstChunkP50Ms.toFixed(2)).join(', ')}), p99 ${p99.toFixed(2)} ms, ${rs.reduce((acc, x) => acc + x.streams, 0)} streams${bad ? `, ${bad} failed` : ''}\n`,
        );
        if (bad) stream50[k]!.errors = (stream50[k]!.errors ?? 0) + bad;
        out.set(k, { p50, p99 });
      }
      return out;
    };
    for (const [k, r] of await firstChunks({})) Object.assign(stream50[k]!, { firstChunkP50Ms: r.p50, firstChunkP99Ms: r.p99 });
    // The same streams with their starts spread over one stream's length: the figure above opens its connections
    // at once, and as every stream lasts as long, their requests keep arriving together (each p50 then includes
    // waiting behind part of a burst); spread, a stream's first chunk waits for no other request's dispatch.
    const streamMs = (s.streamChunks - 1) * s.pacedChunkMs;
    const spreadEveryMs = Math.max(1, Math.round(streamMs / s.connections));
    log(`first-chunk latency, the ${s.connections} streams' starts spread ${spreadEveryMs} ms apart (one stream's length)\n`);
    for (const [k, r] of await firstChunks({ rampBatch: 1, rampEveryMs: spreadEveryMs })) stream50[k]!.firstChunkSpreadP50Ms = r.p50;

    log(`bridged A → B → mock vs B alone, and bare → bare → mock vs bare alone, ${s.connections} connections\n`);
    const bridgePair: Array<[string, LoadTarget]> = [
      ['single', plain.switchyard!],
      ['bridged', plain.bridged!],
      ['bare', plain.bare!],
      ['bareHop', { ...plain.bare!, url: `${bareHop.url}/v1/chat/completions` }],
    ];
    m.bridged_50c = await sideBySide(bridgePair, s.connections);
    log('bridged A → B → mock vs B alone, and bare → bare → mock vs bare alone, 1 connection\n');
    m.bridged_1c = await sideBySide(bridgePair, 1);

    // /acp/rpc: its own gateway with the trivial agent (acp-agent.ts), so gateway B's config stays as it was; one
    // warm agent process (acp.agents[].warm), so a session.start finds its agent started and initialized. As the
    // load rows, `rounds` rounds (each on a fresh gateway), the figures the medians of the rounds' p50s.
    log(`/acp/rpc: ${s.rounds} round(s) of ${s.acpSessions} sequential sessions, session.start → first agent update\n`);
    const acpRounds: AcpLatencyResult[] = [];
    for (let r = 0; r < s.rounds; r++) {
      const x = await runAcpRow(dir, s.acpSessions);
      acpRounds.push(x);
      log(
        `  round ${r + 1}: session.start added p50 ${x.startAddedP50Ms.toFixed(2)} ms (total ${x.startTotalP50Ms.toFixed(2)}, agent's own ${x.agentOwnP50Ms.toFixed(3)}, agent process start ${x.agentBootP50Ms.toFixed(2)}, ${x.warmStarts}/${x.sessions} on a warm process); session.message added p50 ${x.messageAddedP50Ms.toFixed(2)} ms${x.failed ? `; ${x.failed} failed` : ''}\n`,
      );
    }
    const acpRun = medianOfRounds(acpRounds);
    m.acp_rpc = {
      start: {
        addedP50Ms: acpRun.startAddedP50Ms,
        p50Ms: acpRun.startTotalP50Ms,
        agentOwnP50Ms: acpRun.agentOwnP50Ms,
        agentBootP50Ms: acpRun.agentBootP50Ms,
        warmStarts: acpRun.warmStarts,
        firstAnyUpdateP50Ms: acpRun.firstAnyUpdateP50Ms,
        requests: acpRun.sessions,
        errors: acpRun.failed,
      },
      message: { addedP50Ms: acpRun.messageAddedP50Ms, requests: acpRun.sessions },
    };

    // Memory: a fresh gateway, so the figure is not inflated by the runs above.
    log(`memory: fresh gateway, ${s.slowStreams} concurrent streams, mock chunks ${s.slowChunkMs} ms apart\n`);
    await portkey?.stop();
    await a.proc.stop();
    await bareHop.stop();
    await bareProxy.stop();
    const c = await gateway(dir, 'gateway-mem', {
      gateway: { id: 'gw_bench_mem', name: 'bench-mem', port: 0 },
      channels: [mockChannel(mock, capacity)],
      store: { kind: 'sqlite', path: './mem-data/switchyard.db' },
    });
    cleanups.push(() => c.proc.stop());
    const pid = c.proc.proc.pid!;
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssMB(pid);
    let peakRss = 0;
    const slow = await runStreamClient({
      target: { url: `${c.url}/v1/chat/completions`, headers: { authorization: 'Bearer bench-key' }, body: chatBody(MOCK_MODELS.slow, true) },
      connections: s.slowStreams,
      durationSec: Math.max(s.durationSec, (s.slowChunkMs * s.streamChunks) / 1000 + 1),
      rampBatch: 100,
      rampEveryMs: 50,
      sampleEveryMs: 100,
      onSample: () => {
        const r = rssMB(pid);
        if (r !== undefined && r > peakRss) peakRss = r;
      },
    });
    log(
      `  idle ${idle?.toFixed(1)} MB, peak ${peakRss.toFixed(1)} MB, ${slow.peakInflight} streams open at peak, ${slow.streams} completed${slow.errors || slow.non2xx ? `, ${slow.errors} errors, ${slow.non2xx} non-2xx` : ''}\n`,
    );
    m.slow_streams = {
      idle: idle !== undefined ? { rssMB: idle } : {},
      loaded: { ...fromStreams(slow), ...(peakRss > 0 ? { rssMB: peakRss } : {}), requests: slow.streams },
    };

    const info: RunInfo = {
      date: new Date().toISOString(),
      machine: {
        loadAvg1mStart,
        loadAvg1mEnd: loadavg()[0]!,
        cpus: cpus().length,
        cpuModel: cpus()[0]?.model.trim() ?? '?',
        memGB: Math.round(totalmem() / 2 ** 30),
        kernel: release(),
        node: process.version,
      },
      tool: tool.name,
      settings: {
        quick: s.quick,
        durationSec: s.durationSec,
        connections: s.connections,
        warmupSec: s.warmupSec,
        streamChunks: s.streamChunks,
        slowStreams: s.slowStreams,
        slowChunkMs: s.slowChunkMs,
        pacedChunkMs: s.pacedChunkMs,
        rounds: s.rounds,
        acpSessions: s.acpSessions,
      },
      portkey: portkeyStatus,
    };
    log('key check and limit, per request (in-process, bench/keys-cost.ts)\n');
    const keyRows = await keyCostRows(s.quick);
    const report = { ...buildReport(info, m), keyCost: keyRows };
    process.stdout.write('\n' + renderReport(report) + renderKeyCost(keyRows));
    writeReportJson(s.jsonFile, report);
    process.stdout.write(`\nJSON: ${s.jsonFile}\n`);
  } finally {
    await cleanup();
  }
}

interface KeyCostRow {
  row: string;
  n: number;
  usPerRequest: number;
  p50Us: number;
  p99Us: number;
}

/** The keys issue's row: what authenticating a request and admitting it past its limits costs (docs/keys.md). */
function keyCostRows(quick: boolean): Promise<KeyCostRow[]> {
  const script = fileURLToPath(new URL('./keys-cost.js', import.meta.url));
  const args = [script, '--n', quick ? '2000' : '20000', '--redis-n', quick ? '200' : '2000'];
  return new Promise((resolveRows) => {
    execFile(process.execPath, args, { timeout: 120_000 }, (err, stdout, stderr) => {
      if (err) process.stderr.write(`key-cost rows not measured: ${err.message.split('\n')[0]}\n`);
      if (stderr) process.stderr.write(stderr);
      const rows = stdout
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as KeyCostRow);
      resolveRows(rows);
    });
  });
}

function renderKeyCost(rows: KeyCostRow[]): string {
  if (rows.length === 0) return '\nkey check + limit: not measured\n';
  const lines = rows.map((r) => `  ${r.row.padEnd(22)} ${r.p50Us.toFixed(1).padStart(8)} µs p50 ${r.p99Us.toFixed(1).padStart(8)} µs p99  (n=${r.n})`);
  return `\nkey check + limit, added per request (in-process):\n${lines.join('\n')}\n`;
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
