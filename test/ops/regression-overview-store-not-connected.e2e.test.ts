/**
 * Regression: with the session store's Redis gone (its port refusing connections) and nothing read since the
 * gateway started, `/admin/overview` said "not read yet (the session store is slow: a read under way …)" for up to
 * the admin calls' 5 s store bound before it turned unreadable: the read it started was queued by ioredis until its
 * next reconnect attempt gave up, though the client knew it was not connected. Now the store's client is asked
 * (SessionStore.connectionProblem): the first snapshot already says `storeReadable: false` with the reason
 * (`unreadableReason: "not connected: connection refused"`), in the API, `switchyard status` and the status page.
 *
 * A real gateway process on a real redis-server, killed; the real CLI; a real browser.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startProcess, waitFor, within } from '../helpers/env.js';
import { launchChromium } from '../helpers/chromium.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { runCli } from './cli-run.js';

const ADMIN = 'overview-not-connected-admin-2d8a';
const { procs } = stopAfterAll();
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const REASON = 'not connected: connection refused';

async function overview(url: string) {
  const started = Date.now();
  const r = await fetch(url + '/admin/overview', { headers: { authorization: `Bearer ${ADMIN}` } });
  const text = await r.text();
  return { status: r.status, ms: Date.now() - started, text, sessions: (JSON.parse(text) as { sessions: Record<string, unknown> }).sessions };
}

/** a gateway on a redis-server that is then killed: its port refuses connections, and the gateway's client knows it */
async function gatewayWithRedisGone() {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-overview-refused-'));
  cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
  const port = await freePort();
  const redis = await redisOnPort(port, dir);
  cleanup.push(() => redis.stop());
  const gw = await startProcess({
    gateway: { admin: { token: ADMIN } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
  });
  procs.push(gw);
  await redis.stop();
  // the session store's client has tried to reconnect and been refused
  await waitFor(
    () =>
      gw
        .logs()
        .split('\n')
        .some((l) => l.includes('redis connection error') && l.includes('"role":"main"') && l.includes('ECONNREFUSED')),
    'the refused reconnect logged',
  );
  // a read of the store has been given up on by the client (its reconnect attempts between two gives-up grow: the
  // next one is over a second away, past the overview's 500 ms wait)
  const sessions = await fetch(gw.url + '/admin/sessions', { headers: { authorization: `Bearer ${ADMIN}` } });
  expect(sessions.status).toBe(503);
  return { gw, port };
}

describe('the overview with a session store whose client cannot connect', () => {
  it('says unreadable, with the reason, from the first snapshot on; the CLI says so', { timeout: 60_000 }, async () => {
    const { gw, port } = await gatewayWithRedisGone();
    const first = await within(overview(gw.url), 8000, '/admin/overview');
    expect(first.status).toBe(200);
    // at once: not after the overview's 500 ms wait for a read (before: "slow", then unreadable only at 5 s)
    expect(first.ms).toBeLessThan(400);
    expect(first.sessions).toEqual({
      byStatus: { active: 0, running: 0, closed: 0, moved: 0 },
      running: [],
      storeReadable: false,
      readAt: null,
      // the read it started (which answers once the client is back) is under way
      readingMs: expect.any(Number),
      unreadableReason: REASON,
    });
    // the reason names nothing of the store
    expect(first.text).not.toContain(String(port));
    expect(first.text.toLowerCase()).not.toContain('redis');
    // and so every snapshot while the client is not connected
    const started = Date.now();
    while (Date.now() - started < 2000) {
      const r = await within(overview(gw.url), 8000, '/admin/overview');
      expect(r.sessions).toMatchObject({ storeReadable: false, unreadableReason: REASON });
      await new Promise((res) => setTimeout(res, 200));
    }
    const status = await runCli(['status', '--url', gw.url, '--token', ADMIN]);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[2]).toBe(`sessions  unknown: the session store cannot be read now: ${REASON} (see the gateway log)`);
  });

  it('the status page says the store cannot be read, and why, at once', { timeout: 60_000 }, async () => {
    const { gw } = await gatewayWithRedisGone();
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
    // the first snapshot shown: never "slow" or "not read yet"
    await page.locator('#session-counts[data-store]').waitFor({ timeout: 10_000 });
    expect(await counts.getAttribute('data-store')).toBe('unreadable');
    expect(await counts.textContent()).toBe(`unknown: the session store cannot be read now (${REASON})`);
    expect(await page.textContent('#running')).toBe('?');
    expect(errors).toEqual([]);
  });
});
