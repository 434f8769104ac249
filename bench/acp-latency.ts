/**
 * The `/acp/rpc` row of the benchmark: session.start → the first `session.update` carrying the agent's
 * output, with the trivial agent of acp-agent.ts, over N sequential sessions (SSE on POST /acp/rpc).
 *
 * Per session: `total` = client wrote session.start → client read the update; the agent's own part is
 * `update − prompt` from its timing record (session/prompt received → its first update written); the
 * gateway's part (the figure) is `total − agent's own`. The bench gateway keeps one warm agent process
 * (`acp.agents[].warm: 1`): a session.start that takes it has no process start in its path; one that finds
 * none ready spawns a fresh process, whose start (`initialize − start` of the record, reported apart) is then
 * part of the gateway's figure. A session took a warm process when its agent had received `initialize` before
 * the client wrote session.start (`warmStarts`).
 * A `session.message` on the now-warm session is measured the same way (no process start in it), then the
 * session is closed (its agent process stopped) before the next one starts.
 */
import { Agent, request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { spawnGateway } from '../dist/util/gateway-process.js';
import { percentile } from './load.js';

export interface AcpLatencyResult {
  sessions: number;
  failed: number;
  /** p50 over sessions, ms */
  startAddedP50Ms: number;
  startTotalP50Ms: number;
  agentOwnP50Ms: number;
  /** agent process start → its `initialize` received (in startAddedP50Ms only for sessions without a warm process) */
  agentBootP50Ms: number;
  /** sessions whose agent process was started and initialized before their session.start (a warm spare) */
  warmStarts: number;
  /** session.start → first update of any kind (the gateway's own status update) */
  firstAnyUpdateP50Ms: number;
  /** session.message on a live session → first agent update, minus the agent's own part */
  messageAddedP50Ms: number;
}

interface AgentRecord {
  bench: 'acp-agent';
  start: number;
  initialize: number;
  prompt: number;
  update: number;
}

const now = () => performance.timeOrigin + performance.now();

/** POSTs one JSON-RPC call with Accept: text/event-stream; resolves when the stream ends. */
function call(
  base: string,
  token: string,
  agent: Agent,
  method: string,
  params: object,
): Promise<{ t0: number; firstAny?: number; firstAgent?: number; record?: AgentRecord; ok: boolean }> {
  const url = new URL('/acp/rpc', base);
  const body = JSON.stringify({ jsonrpc: '2.0', id: 1, method, params });
  return new Promise((resolve, reject) => {
    const out: { t0: number; firstAny?: number; firstAgent?: number; record?: AgentRecord; ok: boolean } = { t0: 0, ok: false };
    const req = request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          accept: 'text/event-stream',
          authorization: `Bearer ${token}`,
          'content-length': Buffer.byteLength(body),
        },
      },
      (res) => {
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (s: string) => {
          const at = now();
          buf += s;
          let i: number;
          while ((i = buf.indexOf('\n\n')) !== -1) {
            const line = buf.slice(0, i);
            buf = buf.slice(i + 2);
            if (!line.startsWith('data: {')) continue;
            const msg = JSON.parse(line.slice(6)) as { method?: string; params?: { delta?: string }; result?: { success?: boolean } };
            if (msg.method === 'session.update') {
              out.firstAny ??= at;
              if (out.firstAgent === undefined && msg.params?.delta?.includes('"acp-agent"')) {
                out.firstAgent = at;
                out.record = JSON.parse(msg.params.delta) as AgentRecord;
              }
            } else if (msg.result) out.ok = msg.result.success !== false;
          }
        });
        res.on('end', () => resolve(out));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error(`${method}: no answer within 30 s`)));
    out.t0 = now();
    req.end(body);
  });
}

export interface AcpLatencyOptions {
  /**
   * Awaited before session `i`'s session.start and before its session.message, e.g. until the gateway's warm
   * agent process (or the one replacing the spare it took) is ready: calls a few ms apart would otherwise
   * measure how fast processes spawn (and compete with that spawn), not one call's latency.
   */
  settle?: (i: number, call: 'start' | 'message') => Promise<void>;
}

export async function measureAcpLatency(
  base: string,
  token: string,
  providerId: string,
  sessions: number,
  opts: AcpLatencyOptions = {},
): Promise<AcpLatencyResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const added: number[] = [];
  const total: number[] = [];
  const own: number[] = [];
  const boot: number[] = [];
  const any: number[] = [];
  const msgAdded: number[] = [];
  let failed = 0;
  let warmStarts = 0;
  const routing = { requestedExecutionTarget: 'agent', provider: providerId };
  try {
    for (let i = 0; i < sessions; i++) {
      const sessionId = `bench-acp-${process.pid}-${i}`;
      await opts.settle?.(i, 'start');
      const s = await call(base, token, agent, 'session.start', { sessionId, taskPrompt: 'go', ...routing });
      if (!s.ok || s.firstAgent === undefined || !s.record) {
        failed++;
        continue;
      }
      const r = s.record;
      total.push(s.firstAgent - s.t0);
      own.push(r.update - r.prompt);
      added.push(s.firstAgent - s.t0 - (r.update - r.prompt));
      boot.push(r.initialize - r.start);
      if (r.initialize < s.t0) warmStarts++;
      if (s.firstAny !== undefined) any.push(s.firstAny - s.t0);
      await opts.settle?.(i, 'message');
      const m = await call(base, token, agent, 'session.message', { sessionId, taskPrompt: 'again', ...routing });
      if (m.ok && m.firstAgent !== undefined && m.record) msgAdded.push(m.firstAgent - m.t0 - (m.record.update - m.record.prompt));
      else failed++;
      await call(base, token, agent, 'session.close', { sessionId });
    }
  } finally {
    agent.destroy();
  }
  const p50 = (xs: number[]) =>
    percentile(
      [...xs].sort((a, b) => a - b),
      50,
    );
  return {
    sessions: added.length,
    failed,
    startAddedP50Ms: p50(added),
    startTotalP50Ms: p50(total),
    agentOwnP50Ms: p50(own),
    agentBootP50Ms: p50(boot),
    warmStarts,
    firstAnyUpdateP50Ms: p50(any),
    messageAddedP50Ms: p50(msgAdded),
  };
}

/** Resolves once `file` has `n` lines, or after `timeoutMs` (the session then measures what it finds). */
async function waitForLines(file: string, n: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  const lines = () => {
    try {
      return readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
    } catch {
      return 0;
    }
  };
  while (lines() < n && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
}

/**
 * The row as the harness measures it: its own gateway (in `dir`; `bin`: another checkout's `bin/switchyard`, for
 * bench/ab-builds.ts) with the trivial agent of acp-agent.ts and one warm agent process, `sessions` sessions.
 */
export async function runAcpRow(dir: string, sessions: number, bin?: string): Promise<AcpLatencyResult> {
  const token = randomBytes(16).toString('hex');
  const readyFile = join(dir, `acp-agents-ready-${randomBytes(4).toString('hex')}.txt`);
  const file = join(dir, `gateway-acp-${randomBytes(4).toString('hex')}.json5`);
  const cfg = {
    gateway: { id: 'gw_bench_acp', name: 'bench-acp', port: 0 },
    channels: [],
    store: { kind: 'sqlite', path: `./acp-data-${randomBytes(4).toString('hex')}/switchyard.db` },
    acp: {
      tokens: [token],
      workspaceRoot: './acp-work',
      agents: [
        {
          id: 'bench-agent',
          label: 'Bench agent',
          command: process.execPath,
          args: [fileURLToPath(new URL('./acp-agent.js', import.meta.url))],
          permissions: 'deny',
          env: { BENCH_ACP_READY_FILE: readyFile },
          warm: 1,
        },
      ],
    },
  };
  writeFileSync(file, JSON.stringify(cfg, null, 2));
  const g = await spawnGateway(file, { SWITCHYARD_LOG: 'warn' }, undefined, bin);
  // before session i's start, i spares were taken: i + 1 agents past initialize means a spare is ready; before
  // its message, i + 2 means the spare it took was replaced (no agent process starting during the call)
  const settle = (i: number, call: 'start' | 'message') => waitForLines(readyFile, call === 'start' ? i + 1 : i + 2, 5_000);
  return measureAcpLatency(g.url, token, 'bench-agent', sessions, { settle }).finally(() => g.stop());
}

/** Rounds of the row as one result: each p50 the median of the rounds' (as the load rows take theirs); counts summed. */
export function medianOfRounds(rounds: AcpLatencyResult[]): AcpLatencyResult {
  const med = (f: (x: AcpLatencyResult) => number) => {
    const xs = rounds.map(f).sort((a, b) => a - b);
    return xs[Math.floor((xs.length - 1) / 2)] ?? 0;
  };
  const sum = (f: (x: AcpLatencyResult) => number) => rounds.reduce((n, x) => n + f(x), 0);
  return {
    sessions: sum((x) => x.sessions),
    failed: sum((x) => x.failed),
    startAddedP50Ms: med((x) => x.startAddedP50Ms),
    startTotalP50Ms: med((x) => x.startTotalP50Ms),
    agentOwnP50Ms: med((x) => x.agentOwnP50Ms),
    agentBootP50Ms: med((x) => x.agentBootP50Ms),
    warmStarts: sum((x) => x.warmStarts),
    firstAnyUpdateP50Ms: med((x) => x.firstAnyUpdateP50Ms),
    messageAddedP50Ms: med((x) => x.messageAddedP50Ms),
  };
}
