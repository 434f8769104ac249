/**
 * Regression: the hand-over of a session's lease between two instances sharing one Redis store (two turn runners,
 * each with its own connection). Instance A's writes to the update log are slow (held until instance B has tried to
 * take the lease). On the old code A stored its turn's result with `metadata.seq` one below the turn's last update,
 * gave the lease back, and only then numbered and logged the turn's last updates (task.completed, completed): B,
 * reviving the session from the record and a log that did not hold them yet, took the lease at once and numbered
 * its first update with the `seq` of A's final status. The log keeps one update per `seq`: one of the two was lost.
 * Now A numbers and logs its last updates before it gives the lease back, and B numbers above the log's highest.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import type { Runtime } from '../../src/acp/runtime.js';
import { taskEventFields } from '../../src/acp/task-events.js';
import { openStore } from '../../src/sessions/open-store.js';
import { mutateSession, type SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { redisForFile } from '../sessions/fixtures/redis-server.js';
import { wrapStore } from '../helpers/store-wrap.js';

const redis = redisForFile();

const echo: Runtime = {
  async prompt(turn, emit) {
    emit({ type: 'delta', event: 'delta', delta: `echo: ${turn.text}`, text: `echo: ${turn.text}` });
    return { output: `echo: ${turn.text}`, stopReason: 'end_turn' };
  },
  async close() {},
};

const runner = (store: SessionStore, holderId: string) =>
  new TurnRunner({
    store,
    gatewayId: 'gw_seq_handover',
    holderId,
    logger: memoryLogger().logger,
    runtimeFor: async () => echo,
    leaseTtlMs: 3_000,
    leaseWaitMs: 10_000,
  });

describe('seq across a lease hand-over between instances sharing the store', () => {
  it("the next holder numbers above the previous holder's last update, logged late", async () => {
    const prefix = `seqhand${Math.random().toString(36).slice(2, 8)}:`;
    const storeA = await openStore({ kind: 'redis', url: redis.server.url, prefix });
    const storeB = await openStore({ kind: 'redis', url: redis.server.url, prefix });
    redis.stores.push(storeA, storeB);

    // A's log writes wait until B has tried to take the session's lease once
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const a = runner(
      wrapStore(storeA, { appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => gate.then(() => storeA.appendEvents(...args)) }),
      'gw_seq_handover/a',
    );
    let tried = false;
    const b = runner(
      wrapStore(storeB, {
        acquireLease: async (...args: Parameters<SessionStore['acquireLease']>) => {
          const got = await storeB.acquireLease(...args);
          if (!tried) {
            tried = true;
            open();
          }
          return got;
        },
      }),
      'gw_seq_handover/b',
    );
    try {
      const sent: Record<string, unknown>[] = [];
      const sid = 'handover-1';
      const target = { executionTarget: 'gateway', gatewayProviderId: 'echo', providerId: '', model: '' } as const;
      const first = a.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target }, (u) => void sent.push(u));
      // A's turn ran to its end; its result waits for its updates to be in the log (held)
      await waitFor(async () => (await storeA.get(sid))?.history[0]?.status === 'completed' || undefined, "A's turn stored as completed", 10_000, 10);
      const second = b.message(sid, 'two', (u) => void sent.push(u));
      const [ra, rb] = await Promise.all([first, second]);
      expect(ra).toMatchObject({ status: 'completed', output: 'echo: one' });
      expect(rb).toMatchObject({ status: 'completed', output: 'echo: two' });

      const seqs = sent.map((u) => u.seq as number);
      expect(new Set(seqs).size).toBe(seqs.length);
      const log = (await storeB.readEvents(sid, 0, 1000)).events;
      expect(log.map((e) => e.seq)).toEqual([...seqs].sort((x, y) => x - y));
      const bySeq = new Map(log.map((e) => [e.seq, e.event]));
      for (const u of sent) expect(bySeq.get(u.seq as number)).toEqual(u);
      // the record's seq is the session's last
      expect((await storeB.get(sid))?.metadata.seq).toBe(Math.max(...seqs));
    } finally {
      await Promise.all([a.shutdown(1_000), b.shutdown(1_000)]);
    }
  }, 30_000);

  it('a revival settling a prompt left open, or a rejection, does not number beside a turn running on the other instance; the next holder settles the prompt', async () => {
    const prefix = `seqrev${Math.random().toString(36).slice(2, 8)}:`;
    const storeA = await openStore({ kind: 'redis', url: redis.server.url, prefix });
    const storeB = await openStore({ kind: 'redis', url: redis.server.url, prefix });
    redis.stores.push(storeA, storeB);
    // B's turn "hold" streams a chunk, then waits for `go` and streams more
    let go!: () => void;
    const going = new Promise<void>((r) => (go = r));
    const holding: Runtime = {
      async prompt(turn, emit) {
        if (turn.text !== 'hold') return echo.prompt(turn, emit, new AbortController().signal);
        emit({ type: 'delta', event: 'delta', delta: 'a', text: 'a' });
        await going;
        for (const c of ['b', 'c', 'd']) emit({ type: 'delta', event: 'delta', delta: c, text: c });
        return { output: 'abcd', stopReason: 'end_turn' };
      },
      async close() {},
    };
    const a = runner(storeA, 'gw_seq_handover/a');
    const b = new TurnRunner({
      store: storeB,
      gatewayId: 'gw_seq_handover',
      holderId: 'gw_seq_handover/b',
      logger: memoryLogger().logger,
      runtimeFor: async () => holding,
      leaseTtlMs: 3_000,
      leaseWaitMs: 10_000,
    });
    try {
      const sent: Record<string, unknown>[] = [];
      const sid = 'revive-1';
      const target = { executionTarget: 'gateway', gatewayProviderId: 'echo', providerId: '', model: '' } as const;
      expect(await b.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target }, (u) => void sent.push(u))).toMatchObject({
        status: 'completed',
      });
      // a prompt an instance that is gone left open
      const orphan = {
        requestId: 'perm_orphan_1',
        sessionId: sid,
        turnId: 'turn_gone',
        createdAt: new Date().toISOString(),
        toolCall: {},
        options: [],
        holder: 'gw_seq_handover/gone',
      };
      await mutateSession(storeB, sid, (s) => ({ ...s, metadata: { ...s.metadata, pendingPermissions: [orphan] } }));

      const held = b.message(sid, 'hold', (u) => void sent.push(u));
      await waitFor(async () => (await b.task({ sessionId: sid })).status === 'running' || undefined, "B's turn running", 10_000, 10);
      await waitFor(async () => ((await b.task({ sessionId: sid, afterSeq: 0 })).lastSeq as number) > 0 || undefined, "B's first chunk logged", 10_000, 10);
      // A revives the session (its next turn waits for B's) while B's turn runs
      const queued = a.message(sid, 'two', (u) => void sent.push(u));
      await waitFor(async () => (await a.task({ sessionId: sid })).status === 'queued' || undefined, "A's turn queued", 10_000, 10);
      // a role turn the policy refused meanwhile, on A, whose own turn still waits for the lease: numbered from A's
      // counter it could take a seq B's turn hands out, so it goes out without one
      const rejected: Record<string, unknown>[] = [];
      const rejIds = { sessionId: sid, threadId: sid, turnId: 'turn_rejected_1' };
      await a.rejected(rejIds, taskEventFields('rejected', rejIds, {}, { code: 'ROLE_REJECTED' }), (u) => void rejected.push(u));
      expect(rejected).toHaveLength(1);
      expect(rejected[0]).not.toHaveProperty('seq');
      go();
      const [rb, ra] = await Promise.all([held, queued]);
      expect(rb).toMatchObject({ status: 'completed', output: 'abcd' });
      expect(ra).toMatchObject({ status: 'completed', output: 'echo: two' });

      const log = (await storeA.readEvents(sid, 0, 1000)).events;
      const bySeq = new Map(log.map((e) => [e.seq, e.event]));
      for (const u of sent) expect(bySeq.get(u.seq as number), `seq ${String(u.seq)}`).toEqual(u);
      // the prompt was resolved, once, numbered apart from every update a client was sent
      const resolved = log.filter((e) => (e.event as { task?: { detail?: { requestId?: string } } }).task?.detail?.requestId === orphan.requestId);
      expect(resolved).toHaveLength(1);
      expect(sent.map((u) => u.seq)).not.toContain(resolved[0]!.seq);
      expect((await storeA.get(sid))?.metadata.pendingPermissions).toEqual([]);
    } finally {
      await Promise.all([a.shutdown(1_000), b.shutdown(1_000)]);
    }
  }, 30_000);
});
