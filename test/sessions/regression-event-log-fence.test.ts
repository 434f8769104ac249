/**
 * Regression: the update log's writes are fenced by the session's lease, in the store, in the write itself. On the old
 * code a writer that had checked its lease was held, then was paused (SIGSTOP, a long GC, a VM freeze) past the
 * lease's ttl, still landed its batch once it resumed: meanwhile another holder had taken the lease and numbered
 * from the log's highest seq, so the paused writer's entries replaced the new holder's at the same seqs, and a
 * client resuming with `afterSeq` got the wrong update. Now `appendEvents(…, fence)` writes only while the lease is
 * the fence's and not expired, on both stores, and says when it wrote nothing.
 */
import { describe, expect, it } from 'vitest';
import type { SessionStore } from '../../src/sessions/store.js';
import { waitFor } from '../helpers/env.js';
import { bothStores } from './fixtures/both-stores.js';

const { backends, stores } = bothStores('fence');

const update = (seq: number, by: string) => ({ seq, event: { seq, type: 'delta', delta: `from ${by}` } });

/** the session's lease has run out, as the store sees it (getLease finds none) */
const lapsed = (store: SessionStore, sid: string) => waitFor(async () => (await store.getLease(sid)) === undefined, 'the lease to expire', 5_000, 10);

describe.each(backends)('update log writes fenced by the lease: $name', (b) => {
  it("a batch numbered under a lease taken over since is not written; the new holder's entry at that seq stays", async () => {
    const store = await b.open();
    stores.push(store);
    expect(await store.acquireLease('s1', 'gw/a', 30_000)).toBe(true);
    const wrote: boolean[] = [];
    wrote.push(await store.appendEvents('s1', [update(1, 'a')], 100, undefined, 'gw/a'));
    // a is paused past its ttl (its last renewal, a short one, runs out); b takes the session and numbers from the
    // log's highest seq. The first write is made under a long ttl: a slow machine cannot let it lapse before it
    expect(await store.acquireLease('s1', 'gw/a', 50)).toBe(true);
    // taken once the store itself has let a's lease go (Redis expires the key by its own clock, a few ms after the
    // expiry getLease reads)
    await lapsed(store, 's1');
    await waitFor(() => store.acquireLease('s1', 'gw/b', 30_000), "b's take of the lease", 5_000, 10);
    wrote.push(await store.appendEvents('s1', [update(2, 'b')], 100, undefined, 'gw/b'));
    // a resumes: its batch, numbered under its lease before the pause, goes out
    wrote.push(await store.appendEvents('s1', [update(2, 'a'), update(3, 'a')], 100, undefined, 'gw/a'));
    expect((await store.readEvents('s1', 0, 100)).events).toEqual([update(1, 'a'), update(2, 'b')]);
    expect(await store.lastEventSeq('s1')).toBe(2);
    // the current holder writes on
    wrote.push(await store.appendEvents('s1', [update(3, 'b')], 100, undefined, 'gw/b'));
    expect((await store.readEvents('s1', 0, 100)).events).toEqual([update(1, 'a'), update(2, 'b'), update(3, 'b')]);
    expect(wrote).toEqual([true, true, false, true]);
  });

  it('a lease that expired with no new holder, or was given back, refuses its former holder too', async () => {
    const store = await b.open();
    stores.push(store);
    const wrote: boolean[] = [];
    expect(await store.acquireLease('s2', 'gw/a', 50)).toBe(true);
    await lapsed(store, 's2');
    wrote.push(await store.appendEvents('s2', [update(1, 'a')], 100, undefined, 'gw/a'));
    expect(await store.releaseLease('s2', 'gw/a')).toBe(false);
    expect(await store.acquireLease('s3', 'gw/a', 30_000)).toBe(true);
    expect(await store.releaseLease('s3', 'gw/a')).toBe(true);
    wrote.push(await store.appendEvents('s3', [update(1, 'a')], 100, undefined, 'gw/a'));
    // a session whose lease was never taken
    wrote.push(await store.appendEvents('s4', [update(1, 'a')], 100, undefined, 'gw/a'));
    for (const sid of ['s2', 's3', 's4']) {
      expect((await store.readEvents(sid, 0, 100)).events).toEqual([]);
      expect(await store.lastEventSeq(sid)).toBe(0);
    }
    expect(wrote).toEqual([false, false, false]);
  });

  it('the bounds apply to a fenced batch as to any; a write without a fence goes in whoever holds the lease (a transfer)', async () => {
    const store = await b.open();
    stores.push(store);
    expect(await store.acquireLease('s5', 'gw/a', 30_000)).toBe(true);
    expect(
      await store.appendEvents(
        's5',
        [1, 2, 3].map((s) => update(s, 'a')),
        2,
        undefined,
        'gw/a',
      ),
    ).toBe(true);
    expect((await store.readEvents('s5', 0, 100)).events.map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.droppedThrough('s5')).toBe(1);
    expect(await store.appendEvents('s5', [update(4, 'transfer')], 100)).toBe(true);
    expect(await store.appendEvents('s6', [update(1, 'transfer')], 100)).toBe(true);
    expect((await store.readEvents('s5', 3, 100)).events).toEqual([update(4, 'transfer')]);
    expect((await store.readEvents('s6', 0, 100)).events).toEqual([update(1, 'transfer')]);
  });
});
