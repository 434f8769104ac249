/**
 * Regression: `/admin/overview` (so `switchyard status` and the status page) said `storeReadable: false`, "the session
 * store cannot be read now", for any read of the sessions part slower than its 500 ms wait (OVERVIEW_STORE_WAIT_MS): a
 * large but healthy store (a Redis with many session records, whose counts take longer than that) read as an outage.
 * Now a read still under way, not failed and within the admin calls' store bound (STORE_READ_TIMEOUT_MS, 5 s), is
 * slow, not failing: the last values, stale (`readAt`), with `readingMs` saying a read is under way and for how long,
 * and `storeReadable` stays true. A store that gives no answer within that bound, or fails, is still `storeReadable:
 * false`.
 *
 * A real gateway process on a real redis-server: made slow with DEBUG SLEEP (it answers every command, late), and
 * made not to answer with SIGSTOP.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { STORE_READ_TIMEOUT_MS } from '../../src/keys/key-cache.js';
import { freePort, startProcess, waitFor, within } from '../helpers/env.js';
import { launchChromium } from '../helpers/chromium.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { runCli } from './cli-run.js';

const ADMIN = 'overview-slow-admin-51c7';
const { procs } = stopAfterAll();
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

interface Sessions {
  byStatus: Record<string, number>;
  running: unknown[];
  storeReadable: boolean;
  readAt: string | null;
  readingMs: number | null;
  unreadableReason: string | null;
}

async function overview(url: string): Promise<{ status: number; ms: number; sessions: Sessions }> {
  const started = Date.now();
  const r = await fetch(url + '/admin/overview', { headers: { authorization: `Bearer ${ADMIN}` } });
  return { status: r.status, ms: Date.now() - started, sessions: ((await r.json()) as { sessions: Sessions }).sessions };
}

/** a redis-server with DEBUG allowed (DEBUG SLEEP), three closed sessions in it, and a gateway process on it */
async function gatewayOnRedis() {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-overview-slow-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const redis = await redisOnPort(port, dir, false, ['--enable-debug-command', 'local']);
  cleanup.push(() => redis.stop());
  const client = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 });
  client.on('error', () => undefined); // the Redis killed below: reconnects refused
  cleanup.push(() => client.disconnect());
  for (const id of ['old-1', 'old-2', 'old-3']) {
    await client.hset(`switchyard:session:${id}`, 'st', 'closed');
    await client.zadd('switchyard:sessions', Date.now(), id);
    await client.zadd('switchyard:sessions:st:closed', Date.now(), id);
  }
  const gw = await startProcess({
    gateway: { admin: { token: ADMIN } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
  });
  procs.push(gw);
  const fresh = await overview(gw.url);
  expect(fresh.sessions).toEqual({
    byStatus: { active: 0, running: 0, closed: 3, moved: 0 },
    running: [],
    storeReadable: true,
    readAt: expect.any(String),
    readingMs: null,
    unreadableReason: null,
  });
  /** Redis answers nothing for `sec` seconds, then everything: resolves when it answers again */
  const slow = (sec: number) => client.call('DEBUG', 'SLEEP', String(sec)).then(() => Date.now());
  return { gw, redis, client, slow };
}

describe('the overview with a session store that is slow, not failing', () => {
  it('shows the last values as stale with the read under way, not as unreadable; the CLI says so', { timeout: 60_000 }, async () => {
    const { gw, slow } = await gatewayOnRedis();
    const sleptAt = Date.now();
    // 4.5 s: slower than the overview's 500 ms wait, within the store's 5 s bound
    const awake = slow(4.5);
    // asked at once: its snapshot is taken while the store is slow (the CLI's start takes a while)
    const statusRun = runCli(['status', '--url', gw.url, '--token', ADMIN]);
    const during = [];
    while (Date.now() - sleptAt < 2500) {
      const r = await within(overview(gw.url), 4000, '/admin/overview');
      expect(r.status).toBe(200);
      expect(r.ms).toBeLessThan(1500);
      during.push(r);
    }
    expect(during.length).toBeGreaterThanOrEqual(2);
    for (const r of during) {
      expect(r.sessions).toEqual({
        byStatus: { active: 0, running: 0, closed: 3, moved: 0 },
        running: [],
        storeReadable: true,
        readAt: expect.any(String),
        readingMs: expect.any(Number),
        unreadableReason: null,
      });
      // the values are the last read, from before the store slowed down, and said to be so
      expect(Date.parse(r.sessions.readAt!)).toBeLessThan(sleptAt);
      expect(r.sessions.readingMs).toBeGreaterThanOrEqual(400);
      expect(r.sessions.readingMs).toBeLessThan(STORE_READ_TIMEOUT_MS);
    }
    // one read under way: each snapshot says how long it has been
    expect(during.at(-1)!.sessions.readingMs!).toBeGreaterThan(during[0]!.sessions.readingMs!);
    const status = await statusRun;
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[2]).toMatch(
      /^sessions {2}0 active, 0 running, 3 closed, 0 moved as read \S+ ago \(the session store is slow: a read under way for \d+\.\ds\)$/,
    );
    expect(status.stdout).not.toContain('cannot be read');
    // the store answers: fresh again, no read under way
    const answeredAt = await awake;
    const fresh = await waitFor(async () => {
      const r = await overview(gw.url);
      return r.sessions.readingMs === null ? r : undefined;
    }, 'a fresh overview');
    expect(fresh.sessions.storeReadable).toBe(true);
    expect(Date.parse(fresh.sessions.readAt!)).toBeGreaterThanOrEqual(answeredAt - 1000);
    // nothing was given up on
    expect(gw.logs()).not.toContain('admin: the session store failed');
  });

  it('a store that gives no answer within the store bound is unreadable, and from then on only', { timeout: 60_000 }, async () => {
    const { gw, redis } = await gatewayOnRedis();
    cleanup.push(redis.freeze());
    const frozenAt = Date.now();
    const answers = [];
    for (;;) {
      const r = await within(overview(gw.url), 4000, '/admin/overview');
      expect(r.status).toBe(200);
      answers.push(r);
      if (!r.sessions.storeReadable) break;
      expect(Date.now() - frozenAt).toBeLessThan(STORE_READ_TIMEOUT_MS + 3000);
      await new Promise((res) => setTimeout(res, 200));
    }
    const unreadable = answers.at(-1)!;
    // slow until the bound, then given up on (logged once), the last values still shown
    expect(answers.slice(1, -1).every((r) => r.sessions.storeReadable && typeof r.sessions.readingMs === 'number')).toBe(true);
    expect(unreadable.sessions).toEqual({
      byStatus: { active: 0, running: 0, closed: 3, moved: 0 },
      running: [],
      storeReadable: false,
      readAt: expect.any(String),
      readingMs: expect.any(Number),
      // connected, not answering: not "not connected"
      unreadableReason: 'no answer within 5 s',
    });
    expect(unreadable.sessions.readingMs).toBeGreaterThanOrEqual(STORE_READ_TIMEOUT_MS);
    expect(
      gw
        .logs()
        .split('\n')
        .filter((l) => l.includes('admin: the session store failed')).length,
    ).toBe(1);
    const status = await runCli(['status', '--url', gw.url, '--token', ADMIN]);
    expect(status.stdout.split('\n')[2]).toMatch(/the session store cannot be read now: no answer within 5 s \(see the gateway log\)$/);
    process.kill(redis.pid, 'SIGCONT');
    await waitFor(async () => {
      const r = await overview(gw.url);
      return r.sessions.storeReadable && r.sessions.readingMs === null ? r : undefined;
    }, 'a fresh overview');
  });

  it('a store that failed stays unreadable while the reads retrying it are under way, until one answers', { timeout: 60_000 }, async () => {
    const { gw, redis } = await gatewayOnRedis();
    // killed: each read waits on the client's reconnects, then fails (or is given up on at the bound)
    await redis.stop();
    const killedAt = Date.now();
    const answers = [];
    while (Date.now() - killedAt < 15_000) {
      const r = await within(overview(gw.url), 4000, '/admin/overview');
      expect(r.status).toBe(200);
      answers.push(r);
      await new Promise((res) => setTimeout(res, 200));
    }
    const firstUnreadable = answers.findIndex((r) => !r.sessions.storeReadable);
    expect(firstUnreadable).toBeGreaterThanOrEqual(0);
    // more than one read was tried after it (each read under way for a while): none said the store readable
    const after = answers.slice(firstUnreadable);
    expect(after.every((r) => !r.sessions.storeReadable)).toBe(true);
    expect(after.some((r) => r.sessions.readingMs !== null && r.sessions.readingMs < STORE_READ_TIMEOUT_MS)).toBe(true);
  });

  it('the status page says the store is slow, not that it cannot be read', { timeout: 60_000 }, async () => {
    const { gw, slow } = await gatewayOnRedis();
    const browser = await launchChromium();
    cleanup.push(() => browser.close());
    const page = await browser.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(`${gw.url}/ui`);
    await page.locator('#login').waitFor({ state: 'visible' });
    await page.fill('#token', ADMIN);
    await page.click('#login-form button');
    const counts = page.locator('#session-counts');
    await expect.poll(() => counts.textContent()).toBe('0 active, 0 running, 3 closed, 0 moved');
    expect(await counts.getAttribute('data-store')).toBe('fresh');
    const awake = slow(4.5);
    await page.locator('#session-counts[data-store="slow"]').waitFor({ timeout: 3000 });
    expect(await counts.textContent()).toMatch(
      /^0 active, 0 running, 3 closed, 0 moved as read at \S+ \(the session store is slow: a read under way for \d+\.\d s\)$/,
    );
    expect(await page.textContent('#running')).toBe('0');
    await awake;
    await page.locator('#session-counts[data-store="fresh"]').waitFor({ timeout: 5000 });
    expect(await counts.textContent()).toBe('0 active, 0 running, 3 closed, 0 moved');
    expect(errors).toEqual([]);
  });
});
