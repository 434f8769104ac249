/**
 * Regression: with the key store already known to fail (a read just failed or timed out), every admin key call
 * (`/admin/keys` list, create, disable, rotate, …) still waited the full 5 s bound before its `503
 * key_store_unavailable`: a script or an operator retrying met 5 s a call, and a stalled Redis held one request per
 * call. Now a failure keeps the store known to fail for a short while (renewed by each failure, ended by the first
 * read that succeeds): such a call is answered at once, while one probe at a time (the key cache's refresh) keeps
 * reading, so the store's recovery is seen within a round trip of the next call, fail closed in between.
 *
 * A real gateway process on a real redis-server stopped with SIGSTOP (connected, answering nothing), then resumed.
 * `gateway.keys.refreshMs` is long, so the recovery seen is the probe's, not the periodic refresh's.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startProcess, waitFor, within, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { redisOnPort } from './redis-on-port.js';

const ADMIN = 'admin-known-failing-token-52ad';
const { procs } = stopAfterAll();
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

async function admin(gw: GatewayProcess, method: string, path: string, body?: unknown) {
  const started = performance.now();
  const r = await fetch(gw.url + path, {
    method,
    headers: { authorization: `Bearer ${ADMIN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = (await r.json()) as any;
  return { status: r.status, retryAfter: r.headers.get('retry-after'), json, ms: performance.now() - started };
}

describe('admin key calls while the key store is known to fail', () => {
  it('are answered 503 key_store_unavailable at once, and served again as soon as the store answers', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-known-failing-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const redis = await redisOnPort(port, dir);
    cleanup.push(() => redis.stop());
    const gw = await startProcess({
      gateway: { admin: { token: ADMIN }, keys: { refreshMs: 600_000 } },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}`, prefix: 'known-failing:' },
    });
    procs.push(gw);
    expect((await admin(gw, 'POST', '/admin/keys', { name: 'before' })).status).toBe(201);

    cleanup.push(redis.freeze());
    // the first call finds out: it waits the store's 5 s bound
    const first = await within(admin(gw, 'GET', '/admin/keys'), 8000, 'the first call');
    expect([first.status, first.json.error.code]).toEqual([503, 'key_store_unavailable']);
    expect(first.ms).toBeGreaterThan(4000);

    // every call after it, one after the other, is answered at once (before: 5 s each), in the admin API's format
    const calls: Array<[string, string, unknown?]> = [
      ['GET', '/admin/keys'],
      ['POST', '/admin/keys', { name: 'while-stalled' }],
      ['GET', '/admin/keys/before'],
      ['POST', '/admin/keys/before/disable'],
      ['POST', '/admin/keys/before/enable'],
      ['POST', '/admin/keys/before/rotate'],
      ['GET', '/admin/usage?by=key'],
      ['GET', '/admin/keys'],
    ];
    for (const [method, path, body] of calls) {
      const r = await within(admin(gw, method, path, body), 8000, `${method} ${path}`);
      expect([method, path, r.status, r.retryAfter, r.json.error.code]).toEqual([method, path, 503, '1', 'key_store_unavailable']);
      // nothing was sent to the store, so a change says it was not made (not "may not have been")
      expect(r.json.error.message).toBe(
        method === 'POST'
          ? 'the key store cannot be reached now, so the change was not made: retry shortly'
          : 'the key store cannot be reached now: retry shortly',
      );
      expect(r.ms, `${method} ${path}`).toBeLessThan(1000);
    }
    // and so it stays while the stall lasts, past the known-failing state's few seconds and past a probe's own 5 s
    // bound: each probe's failure renews the state
    for (const until = Date.now() + 8000; Date.now() < until; await new Promise((r) => setTimeout(r, 100))) {
      const r = await admin(gw, 'GET', '/admin/keys');
      expect([r.status, r.json.error.code]).toEqual([503, 'key_store_unavailable']);
      expect(r.ms).toBeLessThan(1000);
    }

    // the store answers again: the next calls see it (the probe's read succeeded), fail closed until then
    process.kill(redis.pid, 'SIGCONT');
    const back = await waitFor(
      async () => {
        const r = await admin(gw, 'GET', '/admin/keys');
        return r.status === 200 ? r : undefined;
      },
      'the key list served again',
      10_000,
    );
    expect(back.json.keys.map((k: { name: string }) => k.name)).toEqual(['before']);
    const created = await admin(gw, 'POST', '/admin/keys', { name: 'after' });
    expect(created.status).toBe(201);
    expect((await admin(gw, 'POST', '/admin/keys/after/disable')).status).toBe(200);
  });
});
