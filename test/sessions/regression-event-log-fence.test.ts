/**
 * Regression: the update log's writes are fenced by the session's lease, in the store, in the write itself. On the old
 * code a writer that had checked its lease was held, then was paused (SIGSTOP, a long GC, a VM freeze) past the
 * lease's ttl, still landed its batch once it resumed: meanwhile another holder had taken the lease and numbered
 * from the log's highest seq, so the paused writer's entries replaced the new holder's at the same seqs, and a
 * client resuming with `afterSeq` got the wrong update. Now `appendEvents(…, fence)` writes only while the lease is
 * the fence's and not expired, on both stores, and says when it wrote nothing.
 *
 * The fence was the holder id: a process paused while its restart (the same holder id: `<gateway>/sqlite`, or the
 * same `store.instanceId`) took the session over still landed its batch when it resumed, the lease naming the same
 * holder. Now it is the take's token, new at every take: that batch is refused too. A lease written before tokens
 * (the holder id alone) is read, and taken over by its holder at once.
 */
import { join } from 'node:path';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { waitFor } from '../helpers/env.js';
import { bothStores } from './fixtures/both-stores.js';
import { writeSchema5File } from './fixtures/sqlite-schema-5.js';

const { backends, stores, redisUrl } = bothStores('fence');
const tmp = mkdtempSync(join(tmpdir(), 'sy-fence-old-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/**
 * A store whose session `sid` has the lease an older Switchyard wrote (the holder id alone, no token), live for
 * `ttlMs`: SQLite, a file of the schema before tokens holding the row, opened (so migrated) by this version; Redis,
 * the key as that version set it.
 */
async function withOldLease(name: 'sqlite' | 'redis', sid: string, holder: string, ttlMs: number): Promise<SessionStore> {
  if (name === 'sqlite') {
    const path = join(tmp, `old${Math.random()}.db`);
    writeSchema5File(path, []);
    const db = new Database(path);
    db.prepare('INSERT INTO leases (session_id, holder_id, expires_at) VALUES (?, ?, ?)').run(sid, holder, Date.now() + ttlMs);
    db.close();
    return openStore({ kind: 'sqlite', path });
  }
  const prefix = `fenceold${Math.random()}:`;
  const raw = new Redis(redisUrl());
  await raw.set(`${prefix}lease:${sid}`, holder, 'PX', ttlMs);
  raw.disconnect();
  return openStore({ kind: 'redis', url: redisUrl(), prefix });
}

const update = (seq: number, by: string) => ({ seq, event: { seq, type: 'delta', delta: `from ${by}` } });

/** the session's lease has run out, as the store sees it (getLease finds none) */
const lapsed = (store: SessionStore, sid: string) => waitFor(async () => (await store.getLease(sid)) === undefined, 'the lease to expire', 5_000, 10);

describe.each(backends)('update log writes fenced by the lease: $name', (b) => {
  it("a batch numbered under a lease taken over since is not written; the new holder's entry at that seq stays", async () => {
    const store = await b.open();
    stores.push(store);
    const aTake = (await store.acquireLease('s1', 'gw/a', 30_000))!;
    expect(aTake).toMatch(/^gw\/a#/);
    const wrote: boolean[] = [];
    wrote.push(await store.appendEvents('s1', [update(1, 'a')], 100, undefined, aTake));
    // a is paused past its ttl (its last renewal, a short one, runs out); b takes the session and numbers from the
    // log's highest seq. The first write is made under a long ttl: a slow machine cannot let it lapse before it
    expect(await store.renewLease('s1', aTake, 50)).toBe(true);
    // taken once the store itself has let a's lease go (Redis expires the key by its own clock, a few ms after the
    // expiry getLease reads)
    await lapsed(store, 's1');
    const bTake = await waitFor(() => store.acquireLease('s1', 'gw/b', 30_000), "b's take of the lease", 5_000, 10);
    wrote.push(await store.appendEvents('s1', [update(2, 'b')], 100, undefined, bTake));
    // a resumes: its batch, numbered under its lease before the pause, goes out
    wrote.push(await store.appendEvents('s1', [update(2, 'a'), update(3, 'a')], 100, undefined, aTake));
    expect((await store.readEvents('s1', 0, 100)).events).toEqual([update(1, 'a'), update(2, 'b')]);
    expect(await store.lastEventSeq('s1')).toBe(2);
    // the current holder writes on
    wrote.push(await store.appendEvents('s1', [update(3, 'b')], 100, undefined, bTake));
    expect((await store.readEvents('s1', 0, 100)).events).toEqual([update(1, 'a'), update(2, 'b'), update(3, 'b')]);
    expect(wrote).toEqual([true, true, false, true]);
  });

  it('a lease that expired with no new holder, or was given back, refuses its former holder too', async () => {
    const store = await b.open();
    stores.push(store);
    const wrote: boolean[] = [];
    const lapsing = (await store.acquireLease('s2', 'gw/a', 50))!;
    expect(lapsing).toMatch(/^gw\/a#/);
    await lapsed(store, 's2');
    wrote.push(await store.appendEvents('s2', [update(1, 'a')], 100, undefined, lapsing));
    expect(await store.releaseLease('s2', lapsing)).toBe(false);
    const given = (await store.acquireLease('s3', 'gw/a', 30_000))!;
    expect(given).toMatch(/^gw\/a#/);
    expect(await store.releaseLease('s3', given)).toBe(true);
    wrote.push(await store.appendEvents('s3', [update(1, 'a')], 100, undefined, given));
    // a session whose lease was never taken
    wrote.push(await store.appendEvents('s4', [update(1, 'a')], 100, undefined, given));
    for (const sid of ['s2', 's3', 's4']) {
      expect((await store.readEvents(sid, 0, 100)).events).toEqual([]);
      expect(await store.lastEventSeq(sid)).toBe(0);
    }
    expect(wrote).toEqual([false, false, false]);
  });

  it('the bounds apply to a fenced batch as to any; a write without a fence goes in whoever holds the lease (a transfer)', async () => {
    const store = await b.open();
    stores.push(store);
    const aTake = (await store.acquireLease('s5', 'gw/a', 30_000))!;
    expect(aTake).toMatch(/^gw\/a#/);
    expect(
      await store.appendEvents(
        's5',
        [1, 2, 3].map((s) => update(s, 'a')),
        2,
        undefined,
        aTake,
      ),
    ).toBe(true);
    expect((await store.readEvents('s5', 0, 100)).events.map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.droppedThrough('s5')).toBe(1);
    expect(await store.appendEvents('s5', [update(4, 'transfer')], 100)).toBe(true);
    expect(await store.appendEvents('s6', [update(1, 'transfer')], 100)).toBe(true);
    expect((await store.readEvents('s5', 3, 100)).events).toEqual([update(4, 'transfer')]);
    expect((await store.readEvents('s6', 0, 100)).events).toEqual([update(1, 'transfer')]);
  });

  it("a batch numbered under an earlier take by the same holder id (a process paused across its restart) is refused; the restart's lands", async () => {
    const store = await b.open();
    stores.push(store);
    const take1 = (await store.acquireLease('r1', 'gw/a', 30_000))!;
    expect(await store.appendEvents('r1', [update(1, 'a, take 1')], 100, undefined, take1)).toBe(true);
    // take 1's process is paused; its restart, with the same holder id, takes the session over at once (no wait for
    // the lease to run out) and numbers from the log's highest seq
    const take2 = (await store.acquireLease('r1', 'gw/a', 30_000))!;
    expect(take2).toMatch(/^gw\/a#/);
    expect(take2).not.toBe(take1);
    expect(await store.getLease('r1')).toMatchObject({ holderId: 'gw/a', token: take2 });
    expect(await store.appendEvents('r1', [update(2, 'a, take 2')], 100, undefined, take2)).toBe(true);
    // take 1's process resumes: its pending batch goes out, its renewal and its release too
    expect(await store.appendEvents('r1', [update(2, 'a, take 1'), update(3, 'a, take 1')], 100, undefined, take1)).toBe(false);
    expect(await store.renewLease('r1', take1, 30_000)).toBe(false);
    expect(await store.releaseLease('r1', take1)).toBe(false);
    expect(await store.appendEvents('r1', [update(3, 'a, take 2')], 100, undefined, take2)).toBe(true);
    expect((await store.readEvents('r1', 0, 100)).events).toEqual([update(1, 'a, take 1'), update(2, 'a, take 2'), update(3, 'a, take 2')]);
    expect(await store.getLease('r1')).toMatchObject({ holderId: 'gw/a', token: take2 });
  });

  it('a lease written before tokens (the holder id alone) is read, kept from other holders, and taken over by its holder at once', async () => {
    const store = await withOldLease(b.name, 'o1', 'gw/a', 30_000);
    stores.push(store);
    expect(await store.getLease('o1')).toMatchObject({ holderId: 'gw/a', token: 'gw/a' });
    expect((await store.getLease('o1'))!.expiresAt).toBeGreaterThan(Date.now() + 20_000);
    // another holder waits for it, as for any live lease
    expect(await store.acquireLease('o1', 'gw/b', 30_000)).toBeUndefined();
    expect(await store.appendEvents('o1', [update(1, 'b')], 100, undefined, 'gw/b#0000000000000000')).toBe(false);
    // its holder's new process takes it over with a token, and writes under it
    const take = (await store.acquireLease('o1', 'gw/a', 30_000))!;
    expect(take).toMatch(/^gw\/a#/);
    expect(await store.getLease('o1')).toMatchObject({ holderId: 'gw/a', token: take });
    expect(await store.appendEvents('o1', [update(1, 'a')], 100, undefined, take)).toBe(true);
    // the old process (in a rolling upgrade: the previous version, still running) renews and fences by its holder
    // id: refused now
    expect(await store.renewLease('o1', 'gw/a', 30_000)).toBe(false);
    expect(await store.appendEvents('o1', [update(2, 'a, old')], 100, undefined, 'gw/a')).toBe(false);
    expect((await store.readEvents('o1', 0, 100)).events).toEqual([update(1, 'a')]);
  });
});
