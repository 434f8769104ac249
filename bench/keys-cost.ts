/**
 * Micro-benchmark: what a key check and a limit cost per request, on this machine, with nothing else in the
 * path (no HTTP, no upstream). Rows:
 *   static-token       the old check: constant-time compare against gateway.auth.tokens
 *   key                authenticateClient (SHA-256 + Map lookup) + admit + finish (usage record queued), no limits
 *   key+limits/memory  the same with requests/min, tokens/min, concurrency and a budget (SQLite default)
 *   key+limits/redis   the same on the Redis limiter: one Lua round trip to admit, one to settle
 *   local-bucket/redis the alternative we measured against: a local bucket that takes permits from Redis in
 *                      batches of 10 (one INCRBY per 10 requests), no settle round trip
 * Run: node --import ./test/sessions/fixtures/ts-register.mjs bench/keys-cost.ts [--n 100000] [--redis-n 5000]
 * Redis rows need redis-server on PATH (a throwaway one is started on 127.0.0.1) or SWITCHYARD_BENCH_REDIS.
 * Prints one JSON object per row on stdout: {row, n, usPerRequest, p50Us, p99Us}.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import type { IncomingMessage } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { validateConfig } from '../dist/config/load.js';
import { KeyService } from '../dist/keys/service.js';
import { MemoryLimiter } from '../dist/keys/memory-limiter.js';
import { RedisLimiter } from '../dist/keys/redis-limiter.js';
import { SqliteKeyStore } from '../dist/keys/sqlite-key-store.js';
import type { Limiter } from '../dist/keys/limiter.js';
import { tokenMatches } from '../dist/util/secret.js';
import { createLogger } from '../dist/util/log.js';

const arg = (name: string, def: number) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const N = arg('--n', 100_000);
const RN = arg('--redis-n', 5_000);
const logger = createLogger({}, () => undefined);
const usage = { prompt_tokens: 12, completion_tokens: 30, total_tokens: 42 };
const reqOf = (secret: string) => ({ headers: { authorization: `Bearer ${secret}` } }) as unknown as IncomingMessage;

async function measure(row: string, n: number, once: () => Promise<unknown> | unknown): Promise<void> {
  for (let i = 0; i < Math.min(1000, n / 10); i++) await once(); // warm-up
  // the mean from one bulk-timed loop (no per-sample clock reads), percentiles from a second, sampled loop
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) await once();
  const mean = Number(process.hrtime.bigint() - t0) / 1000 / n;
  const m = Math.min(n, 20_000);
  const samples = new Float64Array(m);
  for (let i = 0; i < m; i++) {
    const s = process.hrtime.bigint();
    await once();
    samples[i] = Number(process.hrtime.bigint() - s) / 1000;
  }
  samples.sort();
  const q = (p: number) => Math.round(samples[Math.min(m - 1, Math.floor(m * p))]! * 100) / 100;
  process.stdout.write(JSON.stringify({ row, n, usPerRequest: Math.round(mean * 100) / 100, p50Us: q(0.5), p99Us: q(0.99) }) + '\n');
}

async function service(dir: string, limiter: Limiter): Promise<{ svc: KeyService; free: string; limited: string }> {
  const config = validateConfig(
    {
      gateway: { usage: { flushIntervalMs: 1000, maxBatch: 5000 } },
      channels: [{ name: 'c', provider: 'mock', models: ['m'], pricing: { input: 1, output: 2 } }],
    },
    'bench',
  );
  const svc = new KeyService({ config, store: new SqliteKeyStore(join(dir, `keys-${limiter.kind}.db`)), limiter, logger });
  await svc.start();
  const free = (await svc.create({ name: 'free' })).secret;
  const big = 1_000_000_000;
  const limited = (
    await svc.create({ name: 'limited', limits: { requestsPerMin: big, tokensPerMin: big, concurrent: 1000 }, budget: { period: 'month', tokens: big } })
  ).secret;
  return { svc, free, limited };
}

async function oneRequest(svc: KeyService, req: IncomingMessage): Promise<void> {
  const p = await svc.authenticateClient(req);
  const t = await svc.admit(p, 'm');
  await t.finish({ model: 'm', channel: 'c', usage, stream: false, ok: true });
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
}

async function startRedis(dir: string): Promise<{ url: string; child?: ChildProcess }> {
  if (process.env.SWITCHYARD_BENCH_REDIS) return { url: process.env.SWITCHYARD_BENCH_REDIS };
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    child.once('error', reject);
    child.stdout.on('data', (b: Buffer) => {
      log += b.toString();
      if (log.includes('Ready to accept connections')) resolve();
    });
  });
  return { url: `redis://127.0.0.1:${port}`, child };
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'sy-keys-bench-'));
  try {
    const tokens = ['static-token-one', 'static-token-two'];
    await measure('static-token', N, () => tokenMatches('static-token-two', tokens));

    const mem = await service(dir, new MemoryLimiter());
    await measure('key', N, () => oneRequest(mem.svc, reqOf(mem.free)));
    await measure('key+limits/memory', N, () => oneRequest(mem.svc, reqOf(mem.limited)));
    await mem.svc.close();

    let redis: { url: string; child?: ChildProcess };
    try {
      redis = await startRedis(dir);
    } catch {
      process.stderr.write('no redis-server on PATH and no SWITCHYARD_BENCH_REDIS: Redis rows skipped\n');
      return;
    }
    const limiter = await RedisLimiter.open({ url: redis.url, prefix: 'bench:', share: 1, timeoutMs: 1000, logger });
    const rs = await service(dir, limiter);
    await measure('key+limits/redis', RN, () => oneRequest(rs.svc, reqOf(rs.limited)));
    await rs.svc.close();

    // The alternative: permits taken from Redis 10 at a time, spent locally.
    const conn = new Redis(redis.url);
    let permits = 0;
    await measure('local-bucket/redis', RN, async () => {
      if (permits === 0) {
        await conn.incrby('bench:bucket', 10);
        permits = 10;
      }
      permits--;
    });
    await conn.quit();
    redis.child?.kill('SIGKILL');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
