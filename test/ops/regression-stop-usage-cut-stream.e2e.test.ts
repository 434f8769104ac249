/**
 * Regression: the usage of a request cut at the end of a graceful stop's grace was lost without a word. The
 * listener's close cuts the streams still running; each one's handler then gives its limiter lease back and records
 * its (estimated) usage, after the listener has closed and while the rest of the stop goes on: the keys' close had
 * already closed the usage recorder by then, so the record went into a list nobody wrote (not even counted in
 * `usage records lost at shutdown`), and the lease's settlement raced the limiter's QUIT. Now the final usage write
 * waits for the requests still settling (within its bound: the stop's deadline, at least 1 s), the limiter and the
 * key store close after it, and a record that still comes later is logged as lost.
 *
 * Real gateway processes on a real redis-server (keys, limits, usage and sessions in it); a real streaming client.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanupDirs, freePort, startProcess, tmpDir, waitFor } from '../helpers/env.js';
import { exitWithin } from '../helpers/sharing-pair.js';
import { redisOnPort } from '../keys/redis-on-port.js';

const cleanups: Array<() => unknown> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  cleanupDirs();
});

/** a redis-server, a gateway on it with a slow streaming channel, and a key limited to 5 concurrent requests */
async function gatewayWithKey(id: string) {
  const dir = tmpDir();
  const port = await freePort();
  const redis = await redisOnPort(port, dir);
  cleanups.push(() => redis.stop());
  const client = new Redis(port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  cleanups.push(() => client.disconnect());
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
  const g = await startProcess(
    {
      // the limiter waits for a Redis that holds its writes rather than giving up on it at 250 ms
      gateway: { id, shutdownGraceMs: 500, limits: { redisTimeoutMs: 5000 } },
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
      // one word a chunk, 200 ms apart: the stream runs past the grace, and is cut
      channels: [{ name: 'drip', provider: 'mock', models: ['drip-1'], options: { reply: words, chunkDelayMs: 200 } }],
    },
    {},
    dir,
  );
  cleanups.push(() => g.stop(1000));
  const created = await fetch(`${g.url}/admin/keys`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    // a limit: the request holds a lease in the Redis limiter, which its end gives back (a settlement that waits on Redis)
    body: JSON.stringify({ name: 'streamer', limits: { concurrent: 5 } }),
  });
  expect(created.status).toBe(201);
  const { key, secret } = (await created.json()) as { key: { id: string }; secret: string };
  return { g, redis, client, keyId: key.id, secret };
}

/** starts a stream with `secret` and resolves once its first chunk has arrived (the stream runs) */
async function streaming(url: string, secret: string): Promise<void> {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${secret}` },
    body: JSON.stringify({ model: 'drip-1', stream: true, messages: [{ role: 'user', content: 'go on' }] }),
  });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = '';
  while (!text.includes('"content"')) {
    const { value, done } = await reader.read();
    if (done) throw new Error('the stream ended before its first chunk');
    text += new TextDecoder().decode(value);
  }
  // read on (to the cut) so the client does not hold the stop: a client that reads nothing is cut 1 s after its end
  const rest = (async () => {
    for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return;
  })();
  cleanups.push(() => rest);
}

const usageOf = async (client: Redis, keyId: string) =>
  (await client.xrange('switchyard:usage', '-', '+')).map(([, fields]) => fields).filter((f) => f[f.indexOf('key') + 1] === keyId);

describe('a graceful stop that cuts a stream at the end of its grace', () => {
  it("writes that request's usage to the store before the store closes", { timeout: 60_000 }, async () => {
    const { g, client, keyId, secret } = await gatewayWithKey('gw_cut_usage');
    await client.connect();
    await streaming(g.url, secret);
    g.proc.kill('SIGTERM');
    // Redis holds every write for 1 s from now (reads and the rest answered): the cut stream's settlement (a script,
    // at the grace's end, 0.5 s) waits for it past the moment the keys' close begins, and ends well within the final
    // usage write's bound (1 s from then)
    expect(await client.call('CLIENT', 'PAUSE', '1000', 'WRITE')).toBe('OK');
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(g.logs()).toContain('graceful stop: grace period over, cutting requests still in flight');
    // the cut stream's record (its usage estimated from what it sent) is in the store; before, nowhere: the
    // recorder had closed before the settlement ended
    const rows = await usageOf(client, keyId);
    expect(rows).toHaveLength(1);
    expect(g.logs()).not.toContain('usage records lost at shutdown');
    // its lease was given back before the limiter closed: nothing held in the key's concurrency set
    expect(await client.keys('switchyard:rl:*:c')).toEqual([]);
  });

  it('with the Redis frozen under it: the record is said lost, and the stop ends in bound', { timeout: 60_000 }, async () => {
    const { g, redis, secret } = await gatewayWithKey('gw_cut_usage_frozen');
    await streaming(g.url, secret);
    // connected, answering nothing: the lease's settlement waits (redisTimeoutMs, 5 s) past the final write's bound
    // (1 s), which cannot write anyway
    cleanups.push(redis.freeze());
    const stoppedAt = Date.now();
    g.proc.kill('SIGTERM');
    // grace 0.5 s, the final usage write's 1 s, 1 s for each client's QUIT (the keys' two together, then the
    // session store's), and slack
    expect(await exitWithin(g, 15_000)).toBe(0);
    expect(Date.now() - stoppedAt).toBeLessThan(15_000);
    await waitFor(() => g.logs().includes('usage records lost at shutdown'), 'the lost record logged');
    // the cut request's record, still to come when the final write gave up, is counted with what it could not
    // write; before, it was not counted anywhere
    const lost = g
      .logs()
      .split('\n')
      .filter((l) => l.includes('usage records lost at shutdown'))
      .map((l) => (JSON.parse(l) as { lost: number }).lost);
    expect(lost.reduce((a, b) => a + b, 0)).toBe(1);
  });
});
