/**
 * Regression: a Redis key store that stalls (it keeps its connections open but answers nothing: a paused or
 * swapping server) held every request with a secret the gateway had not loaded (a wrong key, a key created on
 * another instance) for as long as the stall lasted, and the key refresh with it, which never logged that the store
 * could not be read. A store read now counts as failed after a bound (5 s): such a request gets `503
 * key_store_unavailable` (retryable, never the 401 of a wrong key: regression-key-store-unavailable), the keys
 * loaded last stay in force, and the failure is logged once, as for a Redis that is down. A real gateway process on
 * a real redis-server, stopped with SIGSTOP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanupDirs, freePort, startProcess, waitFor, within, type GatewayProcess } from '../helpers/env.js';
import { redisOnPort } from './redis-on-port.js';
import { ask, chat, createKey } from './helpers.js';

let redis: { pid: number; stop(): Promise<void> };
let dir: string;
let gw: GatewayProcess;
let stopped = false;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'switchyard-stall-'));
  const port = await freePort();
  redis = await redisOnPort(port, dir);
  gw = await startProcess({
    gateway: { keys: { refreshMs: 200 } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
  });
});

afterAll(async () => {
  if (stopped) process.kill(redis.pid, 'SIGCONT');
  await gw?.stop(2000);
  await redis?.stop();
  rmSync(dir, { recursive: true, force: true });
  cleanupDirs();
});

describe('a Redis key store that stalls', () => {
  it('refuses a secret not loaded within the bound as the store being unavailable, keeps the loaded keys working, and logs it once', async () => {
    const k = await createKey(gw.url, { name: 'loaded' });
    expect((await chat(gw.url, k.secret, ask('mock-1'))).status).toBe(200);
    process.kill(redis.pid, 'SIGSTOP');
    stopped = true;
    const unknown = await within(chat(gw.url, `sy-${'q'.repeat(43)}`, ask('mock-1')), 8000, 'the answer to an unknown secret');
    expect(unknown.status).toBe(503);
    expect(unknown.json.error).toMatchObject({ code: 'key_store_unavailable', type: 'server_error' });
    expect(unknown.headers.get('retry-after')).toBe('1');
    expect((await within(chat(gw.url, k.secret, ask('mock-1')), 8000, 'a loaded key')).status).toBe(200);
    await waitFor(() => gw.logs().includes('cannot read the key store'), 'the key store failure logged', 8000);
    expect(gw.logs().split('cannot read the key store').length - 1).toBe(1);
    process.kill(redis.pid, 'SIGCONT');
    stopped = false;
    await waitFor(() => gw.logs().includes('the store answers again'), 'the store back', 15_000);
  });
});
