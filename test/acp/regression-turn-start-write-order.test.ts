/**
 * Regression: a turn's start write (its turn appended to the record, under the lease) was not in order with the
 * session's task-event writes, as its result write already was (TaskEventStore.write). With a slow store the
 * previous turn's `task.completed` event was still being written when the next turn (queued behind it) began: the
 * two writes read the same record version, and the loser of the compare-and-set read the record again and wrote it
 * again, on the way to the agent or after it (each pair of turns below lost two). No write was lost and the stored
 * events stayed in order (the compare-and-set and the events' own queue saw to that): the cost was the retries.
 * Now the start write waits for a task-event write under way and carries the events not yet written.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { VersionConflictError, type SessionStore } from '../../src/sessions/store.js';
import { memoryLogger } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { runnerStores } from '../helpers/runner-stores.js';
import { echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const { open, runners } = runnerStores('start-order');

/** the store's record reads and writes each take `ms` longer (a large record on a loaded Redis), its lost compare-and-sets counted */
function slowRecords(base: SessionStore, ms: number) {
  const lost: string[] = [];
  const later = () => new Promise<void>((r) => setTimeout(r, ms));
  const store = wrapStore(base, {
    get: async (id: string) => {
      await later();
      return base.get(id);
    },
    update: async (s, version) => {
      await later();
      return base.update(s, version).catch((err: unknown) => {
        if (err instanceof VersionConflictError) lost.push(`turns ${s.history.length}, last ${s.history.at(-1)?.status}`);
        throw err;
      });
    },
  });
  return { store, lost };
}

type Stored = { event: string; seq: number; task: { taskId: string } };

describe.each(['sqlite', 'redis'] as const)("a turn's start write and the previous turn's task events (%s)", (kind) => {
  it('a turn queued behind another begins without a lost compare-and-set, and every event is stored in order', async () => {
    const base = await open(kind);
    const { store, lost } = slowRecords(base, 10);
    const runner = new TurnRunner({
      store,
      gatewayId: 'gw_start_order',
      logger: memoryLogger().logger,
      runtimeFor: async () => echoRuntime,
      leaseTtlMs: 3_000,
    });
    runners.push(runner);
    await runner.start({ sessionId: 'order-1', threadId: 'order-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
    const turns: string[] = [];
    for (let i = 0; i < 3; i++) {
      // the second is queued while the first runs: it begins as the first's last events are written
      const rs = await Promise.all(['a', 'b'].map((text) => runner.message('order-1', text, () => undefined)));
      for (const r of rs) {
        expect(r.status).toBe('completed');
        turns.push(r.turnId);
      }
    }
    await runner.task({ sessionId: 'order-1' });
    expect(lost).toEqual([]);
    const events = ((await base.get('order-1'))?.metadata.taskEvents ?? []) as Stored[];
    for (const t of turns) expect(events.filter((e) => e.task.taskId === t).map((e) => e.event)).toEqual(['task.started', 'task.completed']);
    const seqs = events.map((e) => e.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
  });
});
