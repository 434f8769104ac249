/**
 * Regression: a stalled session store made every `/admin/overview` snapshot wait its 5 s bound, and so every
 * `/ui/events` tick: the status page, meant for an outage, froze with the store, and each snapshot stacked one more
 * read on a store that did not answer. Now at most one read of the overview's sessions part is under way, until the
 * store answers it; a snapshot waits for it at most OVERVIEW_STORE_WAIT_MS (500 ms) and otherwise shows the last values
 * read with their `readAt` and the time the read has been under way (`readingMs`), so the page keeps its pace; once the
 * store has not answered within the admin calls' store bound (5 s) they are marked `storeReadable: false`. When the
 * store answers again, the next snapshots are fresh.
 *
 * A real gateway process on a real redis-server stopped with SIGSTOP (connected, answering nothing), then resumed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { freePort, startProcess, waitFor, within } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { runCli } from './cli-run.js';
import { STORE_READ_TIMEOUT_MS } from '../../src/keys/key-cache.js';

const ADMIN = 'overview-frozen-admin-6b1e';
const { procs } = stopAfterAll();
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

interface Tick {
  at: number;
  sessions: { byStatus: Record<string, number>; storeReadable: boolean; readAt: string | null; readingMs: number | null; unreadableReason: string | null };
}

/** reads an SSE stream of snapshots into `ticks` (with the time each arrived) until aborted */
async function follow(url: string, ticks: Tick[], signal: AbortSignal): Promise<void> {
  const res = await fetch(url, { headers: { authorization: `Bearer ${ADMIN}` }, signal });
  expect(res.status).toBe(200);
  const decoder = new TextDecoder();
  let buf = '';
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buf += decoder.decode(chunk, { stream: true });
      for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
        const event = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (event.startsWith('data: ')) ticks.push({ at: Date.now(), sessions: JSON.parse(event.slice(6)).sessions });
      }
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}

async function overview(url: string) {
  const started = Date.now();
  const r = await fetch(url + '/admin/overview', { headers: { authorization: `Bearer ${ADMIN}` } });
  return { status: r.status, ms: Date.now() - started, sessions: ((await r.json()) as Tick).sessions };
}

describe('the overview with a session store that stops answering', () => {
  it('keeps its pace with the last values read, marked not readable, and reads fresh again once the store answers', { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-overview-frozen-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const redis = await redisOnPort(port, dir);
    cleanup.push(() => redis.stop());
    // three closed sessions (each in the `sessions` index and its status's): counts the overview reads
    const seed = new Redis(port, '127.0.0.1', { maxRetriesPerRequest: 0 });
    for (const id of ['old-1', 'old-2', 'old-3']) {
      await seed.hset(`switchyard:session:${id}`, 'st', 'closed');
      await seed.zadd('switchyard:sessions', Date.now(), id);
      await seed.zadd('switchyard:sessions:st:closed', Date.now(), id);
    }
    seed.disconnect();
    const gw = await startProcess({
      gateway: { admin: { token: ADMIN } },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
    });
    procs.push(gw);
    const before = await overview(gw.url);
    expect(before.status).toBe(200);
    expect(before.sessions).toMatchObject({ byStatus: { active: 0, running: 0, closed: 3, moved: 0 }, storeReadable: true });
    expect(typeof before.sessions.readAt).toBe('string');

    const ticks: Tick[] = [];
    const stream = new AbortController();
    const following = follow(`${gw.url}/ui/events?interval=500`, ticks, stream.signal);
    cleanup.push(() => stream.abort());
    await waitFor(() => ticks.length >= 2, 'the stream ticking');

    cleanup.push(redis.freeze());
    const frozenAt = Date.now();
    // past the store's 5 s bound: the overview asked on its own answers within its short wait each time (before: 5 s)
    const answers = [];
    while (Date.now() - frozenAt < 8000) {
      const r = await within(overview(gw.url), 8000, '/admin/overview');
      answers.push(r);
      expect(r.status).toBe(200);
      expect(r.ms).toBeLessThan(1500);
      await new Promise((res) => setTimeout(res, 200));
    }
    // the last values read, said to be so: a read under way (readingMs), slow but not failed until the store's bound
    // (STORE_READ_TIMEOUT_MS, when it is given up on), not readable from then on
    for (const r of answers.slice(1)) {
      expect(r.sessions).toEqual({
        byStatus: { active: 0, running: 0, closed: 3, moved: 0 },
        running: [],
        storeReadable: expect.any(Boolean),
        readAt: expect.any(String),
        readingMs: expect.any(Number),
        // connected, not answering: not "not connected"; why it is unreadable once it is
        unreadableReason: r.sessions.storeReadable ? null : 'no answer within 5 s',
      });
      expect(Date.parse(r.sessions.readAt!)).toBeLessThan(frozenAt);
    }
    const firstUnreadable = answers.findIndex((r) => !r.sessions.storeReadable);
    expect(firstUnreadable).toBeGreaterThan(0);
    expect(answers.slice(firstUnreadable).every((r) => !r.sessions.storeReadable)).toBe(true);
    expect(answers[firstUnreadable]!.sessions.readingMs).toBeGreaterThanOrEqual(STORE_READ_TIMEOUT_MS);
    expect(answers[firstUnreadable - 1]!.sessions.readingMs).toBeLessThan(STORE_READ_TIMEOUT_MS + 200);
    // `switchyard status` shows them, and says what they are
    const status = await runCli(['status', '--url', gw.url, '--token', ADMIN]);
    expect(status.code).toBe(0);
    expect(status.stdout.split('\n')[2]).toMatch(
      /^sessions {2}0 active, 0 running, 3 closed, 0 moved as read \S+ ago: the session store cannot be read now: no answer within 5 s \(see the gateway log\)$/,
    );
    // the page's stream kept its pace (500 ms, a snapshot's wait of at most 500 ms, slack): before, a tick each 5.5 s
    const during = ticks.filter((t) => t.at > frozenAt);
    expect(during.length).toBeGreaterThanOrEqual(6);
    const gaps = during.slice(1).map((t, i) => t.at - during[i]!.at);
    expect(Math.max(...gaps)).toBeLessThan(1500);
    expect(during.slice(1).every((t) => typeof t.sessions.readingMs === 'number' && t.sessions.byStatus.closed === 3)).toBe(true);
    expect(during.at(-1)!.sessions.storeReadable).toBe(false);
    // one read of the store under way, not one stacked per snapshot: given up on once (logged), never asked again
    // while it was not answered
    expect(
      gw
        .logs()
        .split('\n')
        .filter((l) => l.includes('admin: the session store failed')).length,
    ).toBe(1);

    process.kill(redis.pid, 'SIGCONT');
    const fresh = await waitFor(
      async () => {
        const r = await overview(gw.url);
        return r.sessions.storeReadable ? r : undefined;
      },
      'a fresh overview',
      10_000,
    );
    expect(fresh.sessions.byStatus).toEqual({ active: 0, running: 0, closed: 3, moved: 0 });
    expect(Date.parse(fresh.sessions.readAt!)).toBeGreaterThan(frozenAt);
    await waitFor(() => ticks.at(-1)?.sessions.storeReadable === true, 'a fresh tick');
    stream.abort();
    await following;
  });
});
