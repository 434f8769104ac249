/**
 * Regression: a process's own take of a session's lease ended its own earlier take that still had writes to land.
 * A session is closed while its turn runs (the turn is aborted, but its agent takes a moment to stop) and a turn is
 * queued behind it; a session.start reuses the id at once. The close drops the live session, so the start does not
 * wait for its turns: the new session's turn took the lease with this process's holder id, which takes it over at
 * once with a new token (lease-token.ts). The closed session's turn then ended: its last updates (task.cancelled,
 * cancelled) were numbered with the seqs the new session's turn had already sent, and refused by the log's fence
 * (its release too). The queued turn's end (cancelled: the session was closed before it started) took the lease
 * briefly (withLease), again with the same holder id, ending the new session's take and logging its two updates at
 * seqs the new turn then numbered again: the new turn's last three updates were refused by the fence (or, found
 * lost at a renewal first, its turn stopped with SESSION_NOT_OWNED_HERE). Now every take of this process waits while
 * an earlier one of the session here is live (lease.ts OwnTakes): the closed session's turn ends under its own take,
 * and the new session's turn numbers above it. One process, a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { OwnTakes, SessionLease } from '../../src/acp/lease.js';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import type { Runtime } from '../../src/acp/runtime.js';
import { taskEventFields } from '../../src/acp/task-events.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { bothStores } from '../sessions/fixtures/both-stores.js';

const { backends, stores } = bothStores('owntake');

type Update = Record<string, unknown>;
const target = { executionTarget: 'gateway', gatewayProviderId: 'held', providerId: '', model: '' } as const;

describe.each(backends)("a session.start after a session.close, while the closed session's turn still ends: $name", (b) => {
  it("the closed session's last updates are logged under its own take, and the new session's turn keeps its lease", async () => {
    const store = await b.open();
    stores.push(store);
    const { logger, lines } = memoryLogger();
    // the first turn streams, then runs until aborted; aborted, it ends only once let (its agent is slow to stop)
    let letFirstEnd!: () => void;
    const firstMayEnd = new Promise<void>((r) => (letFirstEnd = r));
    // the new session's turn streams, then waits to be let end (it holds the lease meanwhile)
    let letNextEnd!: () => void;
    const nextMayEnd = new Promise<void>((r) => (letNextEnd = r));
    const runtime: Runtime = {
      async prompt(turn, emit, signal) {
        emit({ type: 'delta', event: 'delta', delta: `${turn.text}: a`, text: `${turn.text}: a` });
        if (turn.text === 'first') {
          if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
          await firstMayEnd;
          return { output: 'first: a', stopReason: 'cancelled' };
        }
        await nextMayEnd;
        emit({ type: 'delta', event: 'delta', delta: ' b', text: ' b' });
        return { output: `${turn.text}: a b`, stopReason: 'end_turn' };
      },
      async close() {},
    };
    const r = new TurnRunner({
      store,
      gatewayId: 'gw_own_take',
      holderId: `gw_own_take/${b.name}`,
      logger,
      runtimeFor: async () => runtime,
      // renewed every 300 ms: a take ended by another take of this process is found lost soon
      leaseTtlMs: 900,
      leaseWaitMs: 10_000,
    });
    const sent: Update[] = [];
    const sink = (u: Update) => void sent.push(u);
    const sid = `owntake-${b.name}`;
    const input = (prompt: string) => ({ sessionId: sid, threadId: sid, prompt, workingDirectory: undefined, target });
    try {
      const first = r.start(input('first'), sink);
      const firstDelta = await waitFor(() => sent.find((u) => u.delta === 'first: a'), "the first turn's chunk");
      const queued = r.message(sid, 'queued', sink);
      const queuedRun = (await waitFor(() => sent.find((u) => u.status === 'queued'), "the queued turn's queued status")).runId;
      expect(await r.close(sid)).toMatchObject({ closed: true });

      const next = r.start(input('next'), sink);
      const nextRun = await waitFor(async () => {
        const t = await r.task({ sessionId: sid });
        return t.runId !== firstDelta.runId && t.runId !== queuedRun ? (t.runId as string) : undefined;
      }, "the new session's turn queued");
      // answered once the new turn's first try for the lease did (withLease waits for it): it holds the lease (the
      // old code) or waits for the closed session's turn to give its take back
      const rejIds = { sessionId: sid, threadId: sid, turnId: 'turn_rejected_own_take' };
      await r.rejected(rejIds, taskEventFields('rejected', rejIds, {}, { code: 'ROLE_REJECTED' }), sink);

      letFirstEnd();
      expect(await first).toMatchObject({ status: 'cancelled' });
      expect(await queued).toMatchObject({ status: 'cancelled' });
      letNextEnd();
      expect(await next).toMatchObject({ status: 'completed', output: 'next: a b', runId: nextRun });

      // the closed session's turn ended under its own take: its last updates numbered, and in the log
      const firstEnd = sent.filter((u) => u.runId === firstDelta.runId && u.type === 'status' && u.status === 'cancelled');
      expect(firstEnd).toHaveLength(1);
      expect(firstEnd[0]).toHaveProperty('seq');
      const log = (await store.readEvents(sid, 0, 1000)).events;
      const bySeq = new Map(log.map((e) => [e.seq, e.event]));
      const numbered = sent.filter((u) => typeof u.seq === 'number');
      expect(new Set(numbered.map((u) => u.seq)).size).toBe(numbered.length);
      for (const u of numbered) expect(bySeq.get(u.seq as number), `seq ${String(u.seq)}: ${JSON.stringify(u)}`).toEqual(u);
      // the new session's turn numbered every update of its own, above the closed session's last
      const nextUpdates = sent.filter((u) => u.runId === nextRun);
      expect(nextUpdates.every((u) => typeof u.seq === 'number')).toBe(true);
      expect(Math.min(...nextUpdates.map((u) => u.seq as number))).toBeGreaterThan(firstEnd[0]!.seq as number);
      expect(lines.filter((l) => l.includes('session updates not stored'))).toEqual([]);
      expect((await store.get(sid))?.history.map((t) => [t.runId, t.status])).toEqual([[nextRun, 'completed']]);
      // every take was given back
      expect(await store.getLease(sid)).toBeUndefined();
    } finally {
      letFirstEnd();
      letNextEnd();
      await r.shutdown(1_000);
    }
  }, 30_000);

  it('a take waits for an earlier take of this process until it is given back, and one never given back until it lapsed', async () => {
    const store = await b.open();
    stores.push(store);
    const own = new OwnTakes();
    const holder = `gw_own_take/${b.name}`;
    const signal = new AbortController().signal;
    const first = await SessionLease.acquire(store, 'w1', holder, signal, { ttlMs: 600, own });
    // a brief take (no wait) finds the session busy: asked, the store would have ended the first take
    await expect(SessionLease.acquire(store, 'w1', holder, signal, { ttlMs: 600, waitMs: 0, own })).rejects.toMatchObject({ code: 'OVERLOADED' });
    let waiting = false;
    const next = SessionLease.acquire(store, 'w1', holder, signal, { ttlMs: 600, waitMs: 5_000, own, onBusy: () => (waiting = true) });
    await waitFor(() => waiting, 'the second take waiting');
    expect(await first.confirm()).toBe(true);
    await first.release();
    const second = await next;
    expect((await store.getLease('w1'))?.token).toBe(second.token);

    // its holder stops renewing and never gives it back (it failed on the way): waited for until its lease ran out
    second.stopRenewing();
    const third = await SessionLease.acquire(store, 'w1', holder, signal, { ttlMs: 600, waitMs: 5_000, own });
    expect(second.held()).toBe(false);
    expect(await second.confirm()).toBe(false);
    expect((await store.getLease('w1'))?.token).toBe(third.token);
    await third.release();
    expect(await store.getLease('w1')).toBeUndefined();
  });
});
