/**
 * Regression: a start whose session store opened but could not keep the gateway id (persistedGatewayId threw)
 * failed with the store's bare message and left the providers and the store open: only the store's and the keys'
 * own open failures, and a failed listen, closed what was open. An embedder that caught the error kept the Redis
 * connection for good, so its process never exited. Now every step after the providers are made runs under one
 * registry of what is open (OpenedParts, src/gateway-stop.ts), closed by the stop's sequence when a step throws,
 * and the error says what the store could not do.
 *
 * Real parts: a real redis-server whose ACL user for the gateway may do all but HSET (the store's open reads and
 * creates its schema with HSETNX, so it opens; writing the configured id needs HSET), a real gateway process.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, tmpDir } from '../helpers/env.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';

const FIXTURE = join(fileURLToPath(new URL('.', import.meta.url)), 'fixtures', 'start-store-cannot-keep-id.mjs');
let redis: RedisServer;

beforeAll(async () => {
  redis = await startRedis();
  const admin = new Redis(redis.url);
  await admin.call('ACL', 'SETUSER', 'gw', 'on', '>gw-keep-id-pass', '~*', '&*', '+@all', '-hset');
  admin.disconnect();
});
afterAll(async () => {
  await redis?.stop();
  cleanupDirs();
});

describe('a start whose session store cannot keep the gateway id', () => {
  it('throws an error that says so and leaves nothing open: the process exits on its own', async () => {
    const url = `redis://gw:gw-keep-id-pass@127.0.0.1:${redis.port}`;
    const child = spawn(process.execPath, [FIXTURE, tmpDir(), url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    // bounded: on the code before the fix the open Redis connection kept the process up for good
    const kill = setTimeout(() => child.kill('SIGKILL'), 15_000);
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
    clearTimeout(kill);
    expect(out).toMatch(/rejected: the redis session store could not keep the gateway id: NOPERM .*'hset'/);
    expect({ code, signal }, out).toEqual({ code: 0, signal: null });
    expect(out).not.toContain('gw-keep-id-pass');
  }, 30_000);
});
