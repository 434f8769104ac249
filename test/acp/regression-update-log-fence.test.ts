/**
 * Regression: a process paused right after UpdateLog.flush's `held()` check, before the store applied its write. Its
 * lease expired meanwhile and another instance took the session, numbered from the log's highest seq and wrote; on
 * the old code the paused write then landed and replaced that instance's update at the same seq (the log keeps one
 * update per seq). Now the store refuses the batch (it is fenced by the lease holder it was numbered under) and the
 * update log says how many updates it did not store. The pause is the write held in flight while the lease's renewals
 * stop (a paused process renews nothing), on a real store of each kind.
 *
 * The same with the session taken over by the paused process's restart (the same holder id): the fence was the
 * holder id, so that batch still landed. Now it is the take's token.
 */
import { describe, expect, it } from 'vitest';
import { SessionLease } from '../../src/acp/lease.js';
import { UpdateLog } from '../../src/acp/update-log.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { bothStores } from '../sessions/fixtures/both-stores.js';
import { wrapStore } from '../helpers/store-wrap.js';

const { backends, stores } = bothStores('ulfence');

const update = (seq: number, by: string) => ({ sessionId: 's1', seq, type: 'delta', delta: `from ${by}` });

describe.each(backends)('update log writes fenced by the lease: $name', (b) => {
  it('a batch that passed its held() check and landed after the lease was taken over is not stored, and the drop is logged', async () => {
    const store = await b.open();
    stores.push(store);
    const { logger, lines } = memoryLogger();
    // once a is paused, a write of its is held in flight (the store has not applied it) while b takes the session
    // and logs its own update at the seq a numbered
    let pausing = false;
    const heldAtWrite: boolean[] = [];
    let bWrote: boolean | undefined;
    const takeOver = async () => {
      const b = await waitFor(() => store.acquireLease('s1', 'gw/b', 30_000), "b's take of the lease", 5_000, 10);
      const next = (await store.lastEventSeq('s1')) + 1;
      bWrote = await store.appendEvents('s1', [{ seq: next, event: update(next, 'b') }], 1000, undefined, b);
    };
    const paused = wrapStore(store, {
      appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => {
        heldAtWrite.push(lease.held());
        if (pausing) await takeOver();
        return store.appendEvents(...args);
      },
    });
    const log = new UpdateLog(paused, logger);
    const lease = await SessionLease.acquire(store, 's1', 'gw/a', new AbortController().signal, { ttlMs: 1_000 });
    log.push('s1', update(1, 'a'), lease);
    await log.flush('s1');
    expect((await store.readEvents('s1', 0, 10)).events.map((e) => e.event)).toEqual([update(1, 'a')]);

    log.push('s1', update(2, 'a'), lease);
    log.push('s1', update(3, 'a'), lease);
    // a is paused: its renewals stop too
    lease.stopRenewing();
    pausing = true;
    await log.flush('s1');
    // a's held() said yes when each batch went out: the second was under way before the lease lapsed
    expect(heldAtWrite).toEqual([true, true]);

    expect((await store.readEvents('s1', 0, 10)).events.map((e) => e.event)).toEqual([update(1, 'a'), update(2, 'b')]);
    const warned = lines.filter((l) => l.includes('session updates not stored'));
    expect(warned).toHaveLength(1);
    expect(warned[0]).toContain('taken over or lapsed');
    expect(JSON.parse(warned[0]!)).toMatchObject({ sessionId: 's1', dropped: 2 });
    expect(bWrote).toBe(true);
  });

  it("a batch numbered under a take its own restart (the same holder id) took over is not stored; the restart's update stands", async () => {
    const store = await b.open();
    stores.push(store);
    const { logger, lines } = memoryLogger();
    let restart: SessionLease | undefined;
    let restartWrote: boolean | undefined;
    const paused = wrapStore(store, {
      appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => {
        if (args[0] === 's2' && args[1][0]!.seq === 2 && !restart) {
          // the old process is paused here; its restart, with its holder id, takes the session at once (no wait for
          // the lease to run out) and logs its own update at the seq the old one numbered
          restart = await SessionLease.acquire(store, 's2', 'gw/a', new AbortController().signal, { ttlMs: 30_000, waitMs: 0 });
          const next = (await store.lastEventSeq('s2')) + 1;
          restartWrote = await store.appendEvents(
            's2',
            [{ seq: next, event: { ...update(next, 'a, restarted'), sessionId: 's2' } }],
            1000,
            undefined,
            restart.token,
          );
        }
        return store.appendEvents(...args);
      },
    });
    const log = new UpdateLog(paused, logger);
    const old = await SessionLease.acquire(store, 's2', 'gw/a', new AbortController().signal, { ttlMs: 30_000 });
    log.push('s2', { ...update(1, 'a'), sessionId: 's2' }, old);
    await log.flush('s2');
    log.push('s2', { ...update(2, 'a'), sessionId: 's2' }, old);
    log.push('s2', { ...update(3, 'a'), sessionId: 's2' }, old);
    await log.flush('s2');
    expect(restart!.token).not.toBe(old.token);
    expect(restartWrote).toBe(true);
    // the old take's held() still says yes (its ttl has not run out): the store alone tells the two takes apart
    expect(old.held()).toBe(true);
    expect((await store.readEvents('s2', 0, 10)).events.map((e) => e.event)).toEqual([
      { ...update(1, 'a'), sessionId: 's2' },
      { ...update(2, 'a, restarted'), sessionId: 's2' },
    ]);
    const warned = lines.filter((l) => l.includes('session updates not stored'));
    expect(warned).toHaveLength(1);
    expect(JSON.parse(warned[0]!)).toMatchObject({ sessionId: 's2', dropped: 2 });
    // the old take's next renewal finds the lease not its own: its turn would stop (onLost)
    expect(await old.confirm()).toBe(false);
    old.stopRenewing();
    await restart!.release();
    expect(await store.getLease('s2')).toBeUndefined();
  });
});
