/**
 * Load generation for the benchmark, always against 127.0.0.1:
 *
 * - `runLoad`: closed-loop throughput and latency (req/s, p50, p99) with wrk (Debian package) when it is on
 *   PATH, else autocannon installed in the bench scratch folder outside the repo.
 * - `runStreamClient`: a small raw-socket HTTP/1.1 client for what those tools cannot see — time to the
 *   first SSE chunk of each stream — and for holding many long-lived streams open at once.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { ensureScratchPackage, scratchDir } from './portkey.js';

export interface LoadTarget {
  /** full URL of the endpoint, e.g. http://127.0.0.1:1234/v1/chat/completions */
  url: string;
  headers: Record<string, string>;
  body: string;
}

export interface LoadResult {
  requests: number;
  durationSec: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** connect/read/write/timeout errors */
  errors: number;
  /** responses with a status ≥ 400 */
  non2xx: number;
}

export interface LoadTool {
  name: string;
  run(target: LoadTarget, connections: number, durationSec: number): Promise<LoadResult>;
}

function onPath(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, bin);
    if (dir && existsSync(p)) return p;
  }
  return undefined;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

const luaString = (s: string) => JSON.stringify(s); // JSON string escapes are valid Lua string escapes for this ASCII input

function wrkTool(bin: string, version: string): LoadTool {
  return {
    name: `wrk ${version}`,
    async run(target, connections, durationSec) {
      const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-wrk-'));
      try {
        const script = join(dir, 'post.lua');
        const headers = Object.entries({ 'content-type': 'application/json', ...target.headers })
          .map(([k, v]) => `wrk.headers[${luaString(k)}] = ${luaString(v)}`)
          .join('\n');
        writeFileSync(
          script,
          `wrk.method = "POST"
wrk.body = ${luaString(target.body)}
${headers}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("\\n@@RESULT %d %d %d %d %d %d %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.timeout, e.status, latency:percentile(50), latency:percentile(99), 0, 0, 0))
end
`,
        );
        const secs = Math.max(1, Math.round(durationSec));
        const args = ['-t1', `-c${connections}`, `-d${secs}s`, '--timeout', '10s', '-s', script, target.url];
        const out = await run(bin, args, (secs + 30) * 1000);
        const m = /@@RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)/.exec(out.stdout);
        if (out.code !== 0 || !m) throw new Error(`wrk failed (exit ${out.code}): ${(out.stderr || out.stdout).slice(-500)}`);
        const [requests, durUs, errors, non2xx, p50Us, p99Us] = m.slice(1).map(Number) as [number, number, number, number, number, number];
        const measuredSec = durUs / 1e6;
        return { requests, durationSec: measuredSec, rps: requests / measuredSec, p50Ms: p50Us / 1000, p99Ms: p99Us / 1000, errors, non2xx };
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}

const AUTOCANNON_VERSION = '8.0.0';

function autocannonTool(script: string): LoadTool {
  return {
    name: `autocannon ${AUTOCANNON_VERSION}`,
    async run(target, connections, durationSec) {
      const secs = Math.max(1, Math.round(durationSec));
      const headerArgs = Object.entries({ 'content-type': 'application/json', ...target.headers }).flatMap(([k, v]) => ['-H', `${k}=${v}`]);
      const args = [script, '-c', String(connections), '-d', String(secs), '-m', 'POST', '-b', target.body, ...headerArgs, '-j', target.url];
      const out = await run(process.execPath, args, (secs + 30) * 1000);
      if (out.code !== 0) throw new Error(`autocannon failed (exit ${out.code}): ${out.stderr.slice(-500)}`);
      const j = JSON.parse(out.stdout) as {
        duration: number;
        requests: { total: number };
        latency: { p50: number; p99: number };
        errors: number;
        timeouts: number;
        non2xx: number;
      };
      return {
        requests: j.requests.total,
        durationSec: j.duration,
        rps: j.requests.total / j.duration,
        p50Ms: j.latency.p50,
        p99Ms: j.latency.p99,
        errors: j.errors + j.timeouts,
        non2xx: j.non2xx,
      };
    },
  };
}

/**
 * wrk when on PATH; else autocannon from the scratch folder (installed there on demand when `allowInstall`);
 * else, only when installing is not allowed (`--quick`, offline CI), the built-in raw-socket client.
 */
export async function pickLoadTool(log: (s: string) => void, allowInstall: boolean): Promise<LoadTool> {
  const wrk = onPath('wrk');
  if (wrk) {
    const v = await run(wrk, ['--version'], 5000).catch(() => undefined);
    const version = /wrk (\S+)/.exec(`${v?.stdout ?? ''}${v?.stderr ?? ''}`)?.[1] ?? '?';
    return wrkTool(wrk, version);
  }
  const script = join(scratchDir(), 'node_modules', 'autocannon', 'autocannon.js');
  if (existsSync(script)) return autocannonTool(script);
  if (!allowInstall) {
    log('wrk not on PATH and autocannon not installed: using the built-in Node client (figures not comparable with wrk/autocannon runs)\n');
    return builtinTool();
  }
  log(`wrk not on PATH: installing autocannon ${AUTOCANNON_VERSION} into the bench scratch folder\n`);
  const dir = await ensureScratchPackage('autocannon', AUTOCANNON_VERSION, log);
  return autocannonTool(join(dir, 'node_modules', 'autocannon', 'autocannon.js'));
}

function builtinTool(): LoadTool {
  return {
    name: 'built-in Node client',
    async run(target, connections, durationSec) {
      const r = await runStreamClient({ target, connections, durationSec });
      return { requests: r.streams, durationSec, rps: r.rps, p50Ms: r.totalP50Ms, p99Ms: r.totalP99Ms, errors: r.errors, non2xx: r.non2xx };
    },
  };
}

// ---- raw streaming client ---------------------------------------------------------------------------

export interface StreamClientOptions {
  target: LoadTarget;
  /** concurrent connections, each running one stream after another */
  connections: number;
  durationSec: number;
  /** connections are opened in batches of this size, `rampEveryMs` apart (the listen backlog is finite) */
  rampBatch?: number;
  rampEveryMs?: number;
  /** called every `sampleEveryMs` while the run lasts (e.g. to read a process's RSS) */
  onSample?: (inflightStreams: number) => void;
  sampleEveryMs?: number;
}

export interface StreamClientResult {
  streams: number;
  rps: number;
  firstChunkP50Ms: number;
  firstChunkP99Ms: number;
  totalP50Ms: number;
  totalP99Ms: number;
  errors: number;
  non2xx: number;
  /** most streams that had started (first chunk seen) and not yet ended at the same moment */
  peakInflight: number;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

const CRLF2 = Buffer.from('\r\n\r\n');
const LAST_CHUNK = '\r\n0\r\n\r\n';

/**
 * Runs streams over raw keep-alive sockets and times each one from the request write to the first body
 * byte of an SSE event (`data:`) and to the end of the chunked body. No stream starts after `durationSec`;
 * the run ends when the streams in flight then have finished (bounded by a hard stop 30 s later).
 */
export async function runStreamClient(o: StreamClientOptions): Promise<StreamClientResult> {
  const url = new URL(o.target.url);
  const headerLines = Object.entries({
    host: url.host,
    'content-type': 'application/json',
    'content-length': String(Buffer.byteLength(o.target.body)),
    ...o.target.headers,
  })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const request = Buffer.from(`POST ${url.pathname}${url.search} HTTP/1.1\r\n${headerLines}\r\n${o.target.body}`);
  const first: number[] = [];
  const total: number[] = [];
  let errors = 0;
  let non2xx = 0;
  let inflight = 0;
  let peakInflight = 0;
  let stopping = false;
  const sockets = new Set<Socket>();
  const started = performance.now();
  const endAt = started + o.durationSec * 1000;

  const openOne = (): Promise<void> =>
    new Promise((resolve) => {
      const sock = connect({ host: url.hostname, port: Number(url.port), noDelay: true });
      sockets.add(sock);
      let t0 = 0;
      let head: Buffer | undefined; // bytes until the end of the headers
      let inBody = false;
      let firstSeen = false;
      let chunked = false;
      let remaining = 0; // content-length bodies
      let tail = '';
      const send = () => {
        if (stopping || performance.now() >= endAt) return void sock.end();
        t0 = performance.now();
        head = undefined;
        inBody = false;
        firstSeen = false;
        sock.write(request);
      };
      const finishResponse = (ok: boolean) => {
        if (firstSeen) inflight--;
        firstSeen = false;
        inBody = false;
        if (ok) total.push(performance.now() - t0);
        send();
      };
      const onBody = (b: Buffer) => {
        if (!firstSeen && b.includes('data:')) {
          firstSeen = true;
          first.push(performance.now() - t0);
          if (++inflight > peakInflight) peakInflight = inflight;
        }
        if (chunked) {
          tail = (tail + b.toString('latin1')).slice(-LAST_CHUNK.length);
          if (tail === LAST_CHUNK) finishResponse(true);
        } else {
          remaining -= b.length;
          if (remaining <= 0) finishResponse(true);
        }
      };
      sock.on('connect', send);
      sock.on('data', (b: Buffer) => {
        if (inBody) return onBody(b);
        head = head ? Buffer.concat([head, b]) : b;
        const end = head.indexOf(CRLF2);
        if (end === -1) return;
        const headers = head.subarray(0, end).toString('latin1');
        const status = Number(headers.slice(9, 12));
        if (!(status >= 200 && status < 300)) non2xx++;
        chunked = /\r\ntransfer-encoding:\s*chunked/i.test(headers);
        remaining = Number(/\r\ncontent-length:\s*(\d+)/i.exec(headers)?.[1] ?? 0);
        tail = '\r\n';
        inBody = true;
        const rest = head.subarray(end + 4);
        if (rest.length > 0 || (!chunked && remaining === 0)) onBody(rest);
      });
      sock.on('error', () => {
        if (!stopping) errors++;
      });
      sock.on('close', () => {
        if (firstSeen) inflight--;
        sockets.delete(sock);
        resolve();
      });
    });

  const batch = o.rampBatch ?? o.connections;
  const all: Array<Promise<void>> = [];
  const sampler = o.onSample ? setInterval(() => o.onSample!(inflight), o.sampleEveryMs ?? 100) : undefined;
  const hardStop = setTimeout(
    () => {
      stopping = true;
      for (const s of sockets) s.destroy();
    },
    o.durationSec * 1000 + 30_000,
  );
  try {
    for (let i = 0; i < o.connections; i += batch) {
      for (let j = i; j < Math.min(o.connections, i + batch); j++) all.push(openOne());
      if (i + batch < o.connections) await new Promise((r) => setTimeout(r, o.rampEveryMs ?? 50));
    }
    await Promise.all(all);
  } finally {
    clearTimeout(hardStop);
    if (sampler) clearInterval(sampler);
  }
  const elapsed = (performance.now() - started) / 1000;
  first.sort((a, b) => a - b);
  total.sort((a, b) => a - b);
  return {
    streams: total.length,
    rps: total.length / elapsed,
    firstChunkP50Ms: percentile(first, 50),
    firstChunkP99Ms: percentile(first, 99),
    totalP50Ms: percentile(total, 50),
    totalP99Ms: percentile(total, 99),
    errors,
    non2xx,
    peakInflight,
  };
}
