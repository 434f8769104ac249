/**
 * Regression: the `queued` status of a turn queued behind the turn here that is giving the session's lease back
 * was not in the update log, though the docs promise it is numbered and logged (a turn queued behind a turn of the
 * same instance is under that turn's take). Two windows at the end of the turn's take:
 * - while the turn's last updates were being written to the log (before its release), the `queued` status was
 *   numbered under the turn's take, but after that flush had picked what it writes: it was written only after the
 *   take was given back, so the log dropped it ("the lease they were numbered under lapsed first"), a hole at its `seq`;
 * - while the take was being given back (the store's release), withLease saw a turn here `leasing` without a lease,
 *   as when a turn waits for another instance, and sent it without `seq`.
 * Either way a client resuming with `afterSeq` (docs/acp.md) never got it, and the REST messages route answered with
 * an event of `seq` 0 or one the events route does not have. Now a take stops numbering before its last flush, and
 * withLease waits for a take of the live session being given back, then takes the lease briefly: the status is
 * numbered above the ending turn's last update and logged. One process, a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { bothStores } from '../sessions/fixtures/both-stores.js';
import { echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('qgive');

type Update = Record<string, unknown>;

/** where the first turn's end is held: its last updates' write to the log, or the store's release of its lease */
const windows = ['log write', 'release'] as const;

describe.each(backends)('a session.message while the turn here gives the lease back: $name', (b) => {
  it.each(windows)(
    "during the turn's %s: the queued status is numbered above the turn's last update, and logged",
    async (held) => {
      const raw = await b.open();
      stores.push(raw);
      let entered = false;
      let open!: () => void;
      const gate = new Promise<void>((r) => (open = r));
      const hold = async () => {
        entered = true;
        await gate;
      };
      let holding = true;
      const store = wrapStore(raw, {
        appendEvents: async (...args: Parameters<SessionStore['appendEvents']>) => {
          if (held === 'log write' && holding && args[1].some((e) => e.event.type === 'status' && e.event.status === 'completed')) {
            holding = false;
            await hold();
          }
          return raw.appendEvents(...args);
        },
        releaseLease: async (...args: Parameters<SessionStore['releaseLease']>) => {
          if (held === 'release' && holding) {
            holding = false;
            await hold();
          }
          return raw.releaseLease(...args);
        },
      });
      const { logger, lines } = memoryLogger();
      const r = new TurnRunner({
        store,
        gatewayId: 'gw_queued_give',
        holderId: `gw_queued_give/${b.name}`,
        logger,
        runtimeFor: async () => echoRuntime,
        leaseTtlMs: 5_000,
        leaseWaitMs: 10_000,
      });
      const sent: Update[] = [];
      const sink = (u: Update) => void sent.push(u);
      const sid = `qgive-${b.name}-${held.replace(' ', '-')}`;
      try {
        const first = r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, sink);
        await waitFor(() => entered, `the first turn's ${held} held`);
        const firstEnd = sent.find((u) => u.type === 'status' && u.status === 'completed');
        expect(firstEnd).toHaveProperty('seq');
        const firstRun = firstEnd!.runId;
        const second = r.message(sid, 'two', sink);
        // queued behind the first turn, which has not ended (its result waits for its end)
        await waitFor(async () => (await r.task({ sessionId: sid })).runId !== firstRun || undefined, 'the second turn queued');
        open();
        expect(await first).toMatchObject({ status: 'completed', output: 'echo: one' });
        const done = await second;
        expect(done).toMatchObject({ status: 'completed', output: 'echo: two' });

        const mine = sent.filter((u) => u.runId === done.runId);
        expect(mine[0]).toMatchObject({ type: 'status', status: 'queued' });
        expect(mine.every((u) => typeof u.seq === 'number')).toBe(true);
        expect(mine[0]!.seq as number).toBeGreaterThan(firstEnd!.seq as number);
        // every update numbered is in the log at its seq, the queued status too: a resume after any seq misses none
        const log = (await raw.readEvents(sid, 0, 1000)).events;
        const seqs = sent.map((u) => u.seq as number);
        expect(log.map((e) => e.seq)).toEqual([...seqs].sort((x, y) => x - y));
        const bySeq = new Map(log.map((e) => [e.seq, e.event]));
        for (const u of sent) expect(bySeq.get(u.seq as number), `seq ${String(u.seq)}: ${JSON.stringify(u)}`).toEqual(u);
        expect(lines.filter((l) => l.includes('session updates not stored'))).toEqual([]);
        expect(await raw.getLease(sid)).toBeUndefined();
      } finally {
        open();
        await r.shutdown(1_000);
      }
    },
    30_000,
  );
});
