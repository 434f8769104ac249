/**
 * Back-to-back comparison of builds of the gateway: what one change bought, read the way
 * docs/benchmarks.md ("Hot-path changes and what each bought") records it.
 *
 *   node dist-bench/ab-builds.js <checkout> [<checkout> …] [--mode ns|st|both|acp] [--rounds 3] [--duration 4] [--connections 50]
 *                                [--steps 1,2,3,4,5] [--sessions 30]
 *
 * Each <checkout> is a built checkout of this repository (its `bin/switchyard` runs its `dist/`), e.g. a
 * `git worktree` of the commit before a change. One mock upstream and one bare pass-through serve every build;
 * each build runs as its own gateway (the bench's channel config, `SWITCHYARD_LOG=warn`). Per mode, after a 2 s
 * warm-up of each target, the rounds alternate bare → build 1 → build 2 … so that the neighbours' load hits all
 * of them alike. Besides req/s (wrk, like the harness) it reports each process's own CPU time per request
 * (utime + stime from /proc/<pid>/stat over the round ÷ requests served): on a shared machine that moves much
 * less with the neighbours' load than req/s does. Linux only (it reads /proc); needs wrk on PATH.
 *
 * `--steps` adds, after the bare pass-through, the same pass-through with a gateway's essential per-request
 * work added step by step (bench/bare-proxy.ts lists the steps), each its own process: what that work costs,
 * read against the floor and against the builds.
 *
 * `--mode acp` runs the harness's `/acp/rpc` row instead (bench/acp-latency.ts: a fresh gateway of each build with
 * the trivial agent and one warm process, `--sessions` sessions one after another), the builds in turn, their
 * order reversed every other round; it prints each round's p50s (session.start and session.message → first agent
 * update, the agent's own part taken out; session.start → first update of any kind) and their medians.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startBareProxy } from './bare-proxy.js';
import { pickLoadTool, type LoadTarget } from './load.js';
import { startMockUpstream, MOCK_MODELS } from './mock-upstream.js';
import { runAcpRow, type AcpLatencyResult } from './acp-latency.js';
import { spawnGateway, type GatewayProcess } from '../dist/util/gateway-process.js';

interface Args {
  checkouts: string[];
  modes: boolean[];
  rounds: number;
  duration: number;
  connections: number;
  steps: number[];
  acp: boolean;
  sessions: number;
}

function parse(argv: string[]): Args {
  const a: Args = { checkouts: [], modes: [false, true], rounds: 3, duration: 4, connections: 50, steps: [], acp: false, sessions: 30 };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i]!;
    const next = () => argv[++i] ?? '';
    if (v === '--mode') {
      const m = next();
      a.acp = m === 'acp';
      a.modes = { ns: [false], st: [true], both: [false, true] }[m] ?? a.modes;
    } else if (v === '--sessions') a.sessions = Number(next());
    else if (v === '--rounds') a.rounds = Number(next());
    else if (v === '--duration') a.duration = Number(next());
    else if (v === '--connections') a.connections = Number(next());
    else if (v === '--steps') a.steps = next().split(',').map(Number);
    else a.checkouts.push(resolve(v));
  }
  if (a.checkouts.length === 0)
    throw new Error('usage: ab-builds <checkout> [<checkout> …] [--mode ns|st|both|acp] [--rounds N] [--duration S] [--sessions N]');
  return a;
}

/** utime + stime of a process in ms (clock ticks of 10 ms). */
function cpuMs(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(f[11]) + Number(f[12])) * 10;
}

async function startGateway(checkout: string, dir: string, i: number, upstream: string): Promise<GatewayProcess> {
  const cfg = {
    gateway: { id: `gw_ab_${i}`, name: `ab-${i}`, port: 0 },
    channels: [{ name: 'mock', provider: 'openai', baseUrl: `${upstream}/v1`, apiKey: 'bench-key', models: [MOCK_MODELS.fast], maxConcurrent: 1024 }],
    store: { kind: 'sqlite', path: join(dir, `ab-${i}.db`) },
  };
  const file = join(dir, `ab-${i}.json5`);
  writeFileSync(file, JSON.stringify(cfg));
  return spawnGateway(file, { SWITCHYARD_LOG: 'warn' }, 15_000, join(checkout, 'bin/switchyard'));
}

/** `--mode acp`: the /acp/rpc row of each build, in turn, `rounds` times. */
async function acpRows(a: Args): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-ab-acp-'));
  const rows = new Map<string, AcpLatencyResult[]>(a.checkouts.map((c) => [c, []]));
  const ms = (x: number) => x.toFixed(2);
  try {
    for (let r = 0; r < a.rounds; r++) {
      for (const c of r % 2 === 0 ? a.checkouts : [...a.checkouts].reverse()) {
        const res = await runAcpRow(dir, a.sessions, join(c, 'bin/switchyard'));
        rows.get(c)!.push(res);
        process.stderr.write(
          `  round ${r + 1} ${c}: start ${ms(res.startAddedP50Ms)} ms, message ${ms(res.messageAddedP50Ms)} ms${res.failed ? `, ${res.failed} failed` : ''}\n`,
        );
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor((xs.length - 1) / 2)] ?? 0;
  process.stdout.write(`/acp/rpc, ${a.sessions} sessions: p50 ms added over the agent per round (start / message / first update of any kind), then medians\n`);
  for (const [c, rs] of rows) {
    const cells = rs.map((x) => `${ms(x.startAddedP50Ms)} / ${ms(x.messageAddedP50Ms)} / ${ms(x.firstAnyUpdateP50Ms)}`);
    const med = `${ms(median(rs.map((x) => x.startAddedP50Ms)))} / ${ms(median(rs.map((x) => x.messageAddedP50Ms)))} / ${ms(median(rs.map((x) => x.firstAnyUpdateP50Ms)))}`;
    process.stdout.write(`  ${c.padEnd(40)} ${cells.join(' | ')}  → ${med}\n`);
  }
}

async function main(): Promise<void> {
  const a = parse(process.argv.slice(2));
  if (a.acp) return acpRows(a);
  const tool = await pickLoadTool((s) => process.stderr.write(s), false);
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-ab-'));
  const mock = await startMockUpstream({ chunks: 20, pacedChunkMs: 20, slowChunkMs: 250 });
  const bare = await startBareProxy(mock.url);
  const steps = await Promise.all(a.steps.map((s) => startBareProxy(mock.url, 10_000, s)));
  const gws: Array<{ name: string; url: string; pid: number; gw: GatewayProcess }> = [];
  try {
    for (const [i, c] of a.checkouts.entries()) {
      const g = await startGateway(c, dir, i, mock.url);
      gws.push({ name: c, url: g.url, pid: g.proc.pid!, gw: g });
    }
    const targets = [
      { name: 'bare pass-through', url: bare.url, pid: bare.pid },
      ...steps.map((s, i) => ({ name: `bare + steps 1–${a.steps[i]}`, url: s.url, pid: s.pid })),
      ...gws,
    ];
    for (const stream of a.modes) {
      const body = JSON.stringify({
        model: MOCK_MODELS.fast,
        messages: [{ role: 'user', content: 'Reply with a short sentence for the benchmark.' }],
        ...(stream ? { stream: true, stream_options: { include_usage: true } } : {}),
      });
      const load = (url: string): LoadTarget => ({ url: `${url}/v1/chat/completions`, headers: { authorization: 'Bearer bench-key' }, body });
      for (const t of targets) await tool.run(load(t.url), a.connections, 2);
      const rows = new Map<string, string[]>();
      for (let r = 0; r < a.rounds; r++) {
        for (const t of targets) {
          const c0 = cpuMs(t.pid);
          const res = await tool.run(load(t.url), a.connections, a.duration);
          const us = ((cpuMs(t.pid) - c0) * 1000) / Math.max(1, res.requests);
          const bad = res.errors + res.non2xx > 0 ? ` (${res.errors + res.non2xx} failed)` : '';
          rows.set(t.name, [...(rows.get(t.name) ?? []), `${Math.round(res.rps)} req/s ${Math.round(us)} µs${bad}`]);
        }
      }
      process.stdout.write(
        `${stream ? 'streaming 20 chunks' : 'non-streaming'}, ${a.connections} connections: req/s and the process's CPU per request, per round\n`,
      );
      for (const [name, cells] of rows) process.stdout.write(`  ${name.padEnd(40)} ${cells.join(' | ')}\n`);
    }
  } finally {
    for (const g of gws) await g.gw.stop();
    await bare.stop();
    for (const s of steps) await s.stop();
    await mock.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
