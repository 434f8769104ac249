/**
 * A session moved to another gateway right after its turn here stored its result, then moved back: the turn's last
 * updates are in the log (here and on the receiver), and the returning session's turn numbers above them (lease.ts
 * OwnTakes, docs/sessions.md "A gateway's own takes go one at a time", "Transfer").
 *
 * A turn stores its result before it numbers its last updates (task.completed, completed), logs them and gives its
 * lease back. Here the store's answer to that result's write is held (the write is made: a slow reply). A transfer
 * used to go ahead meanwhile (it waited only for the record): the session moved to gateway B (its live session here
 * dropped: movedAway) and back while the old turn still ended, and a session.message revived it, whose turn took the
 * lease with this process's holder id. Without OwnTakes that take ended the old turn's at once (a new token): the old
 * turn then numbered its last updates under its ended take, and the log's fence refused them ("session updates not
 * stored"). Now the transfer waits for the old take to be given back, so the session leaves only once the turn's
 * last updates are in the log, and the returning turn finds no live take of the old one. One process per gateway,
 * B's a transfer coordinator over its own store, the bridge between them a direct call; a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { bothStores } from '../sessions/fixtures/both-stores.js';
import { directTransfer, echoRuntime, echoTarget, holdingResultWrite } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('mvback');

type Update = Record<string, unknown>;

describe.each(backends)('a session moved away right after its turn here stored its result, and back: $name', (b) => {
  it("the old turn's last updates are logged under its own take, and the returning session's turn numbers above them", async () => {
    const rawA = await b.open();
    const storeB = await b.open();
    stores.push(rawA, storeB);
    // the store's answer to the write of the old turn's result is held: the record says it ended, its last updates
    // are not numbered yet
    const { store: storeA, held, release: open } = holdingResultWrite(rawA);
    const { logger, lines } = memoryLogger();
    const r = new TurnRunner({
      store: storeA,
      gatewayId: 'gw_mv_a',
      holderId: `gw_mv_a/${b.name}`,
      logger,
      runtimeFor: async () => echoRuntime,
      // no renewal after a turn's end: the old take stays live for this long, the test's moves take far less
      leaseTtlMs: 10_000,
      leaseWaitMs: 20_000,
    });
    const a: TransferCoordinator = new TransferCoordinator(
      rawA,
      'gw_mv_a',
      true,
      directTransfer('gw_mv_a', () => gwB),
      logger,
    );
    const gwB: TransferCoordinator = new TransferCoordinator(
      storeB,
      'gw_mv_b',
      true,
      directTransfer('gw_mv_b', () => a),
      logger,
    );
    a.onMovedAway = (sessionId) => r.movedAway(sessionId);
    const sent: Update[] = [];
    const sink = (u: Update) => void sent.push(u);
    const sid = `mvback-${b.name}`;
    try {
      const first = r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, sink);
      await waitFor(held, "the old turn's result stored");
      const oldRun = sent.find((u) => u.type === 'status' && u.status === 'running')!.runId;
      // the transfer waits while the turn still ends here (its take live): the session stays until the gate opens
      let settled = false;
      const moving = a.transfer(sid, 'gw_mv_b');
      moving.then(
        () => (settled = true),
        () => (settled = true),
      );
      await waitFor(() => settled || lines.some((l) => l.includes('session transfer waits')), 'the transfer moved the session, or waits');
      expect(settled).toBe(false);
      expect((await rawA.get(sid))?.status).not.toBe('moved');
      open();
      expect((await moving).status).toBe('moved');
      expect(await first).toMatchObject({ status: 'completed', output: 'echo: one' });
      const oldEnd = sent.find((u) => u.runId === oldRun && u.type === 'status' && u.status === 'completed');
      expect(oldEnd).toHaveProperty('seq');
      // the receiver got the old turn's end in its log
      expect((await storeB.readEvents(sid, 0, 1000)).events.find((e) => e.seq === oldEnd!.seq)?.event).toEqual(oldEnd);
      expect((await gwB.transfer(sid, 'gw_mv_a')).status).toBe('moved');
      expect((await rawA.get(sid))?.ownerGatewayId).toBe('gw_mv_a');

      const back = r.message(sid, 'back', sink);
      const backRun = await waitFor(async () => {
        const t = await r.task({ sessionId: sid });
        return t.runId !== oldRun ? (t.runId as string) : undefined;
      }, "the returning session's turn queued");
      const again = r.message(sid, 'again', sink);
      expect(await back).toMatchObject({ status: 'completed', output: 'echo: back', runId: backRun });
      expect(await again).toMatchObject({ status: 'completed', output: 'echo: again' });

      // the old turn's last updates are in the log at the seqs its client got
      const log = (await rawA.readEvents(sid, 0, 1000)).events;
      const bySeq = new Map(log.map((e) => [e.seq, e.event]));
      const numbered = sent.filter((u) => typeof u.seq === 'number');
      expect(new Set(numbered.map((u) => u.seq)).size).toBe(numbered.length);
      for (const u of numbered) expect(bySeq.get(u.seq as number), `seq ${String(u.seq)}: ${JSON.stringify(u)}`).toEqual(u);
      // the returning session's turn numbered every update of its own, above them
      const backUpdates = sent.filter((u) => u.runId === backRun);
      expect(backUpdates.every((u) => typeof u.seq === 'number')).toBe(true);
      expect(Math.min(...backUpdates.map((u) => u.seq as number))).toBeGreaterThan(oldEnd!.seq as number);
      expect(lines.filter((l) => l.includes('session updates not stored'))).toEqual([]);
      expect(await rawA.getLease(sid)).toBeUndefined();
    } finally {
      open();
      await r.shutdown(1_000);
    }
  }, 30_000);
});
