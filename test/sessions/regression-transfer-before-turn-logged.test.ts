/**
 * A transfer offers the update log with the last turn's last updates in it (docs/sessions.md, Transfer).
 *
 * A turn stores its result (the record then says no turn runs, its `metadata.seq` already counting the turn's last
 * updates) before it numbers and logs those updates (task.completed, the completed status) and gives its lease back.
 * A transfer used to wait only for the record: it read the log in between and offered it without them, so the
 * receiver's log ended below the record's seq (seen: `4:delta` with seq 6) and a client resuming there with `afterSeq`
 * never got the turn's end. Here the store's answer to that result's write is held (the write is made: a slow
 * reply), which opens that window for as long as the test likes; the transfer must wait for the lease to be given
 * back. Gateway A a turn runner and a transfer coordinator over one store, B a coordinator over its own, the bridge
 * between them a direct call; a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { bothStores } from './fixtures/both-stores.js';
import { directTransfer, echoRuntime, echoTarget, holdingResultWrite } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('xferlog');

type Update = Record<string, unknown>;

describe.each(backends)('a transfer right after a turn stored its result: $name', (b) => {
  it("offers the log with the turn's last updates: the receiver's log reaches the record's seq", async () => {
    const rawA = await b.open();
    const storeB = await b.open();
    stores.push(rawA, storeB);
    const { store: storeA, held, release: open } = holdingResultWrite(rawA);
    const { logger, lines } = memoryLogger();
    const r = new TurnRunner({ store: storeA, gatewayId: 'gw_xl_a', holderId: `gw_xl_a/${b.name}`, logger, runtimeFor: async () => echoRuntime });
    const a: TransferCoordinator = new TransferCoordinator(
      rawA,
      'gw_xl_a',
      true,
      directTransfer('gw_xl_a', () => gwB),
      logger,
    );
    const gwB: TransferCoordinator = new TransferCoordinator(
      storeB,
      'gw_xl_b',
      true,
      directTransfer('gw_xl_b', () => a),
      logger,
    );
    const sent: Update[] = [];
    const sid = `xferlog-${b.name}`;
    try {
      const turn = r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, (u) => void sent.push(u));
      await waitFor(held, "the turn's result stored, its last updates not yet numbered");
      expect((await rawA.get(sid))?.history.some((t) => t.status === 'running')).toBe(false);

      let settled = false;
      const moving = a.transfer(sid, 'gw_xl_b');
      moving.then(
        () => (settled = true),
        () => (settled = true),
      );
      // the transfer either went ahead (the bug) or waits for the turn's lease to be given back
      await waitFor(() => settled || lines.some((l) => l.includes('session transfer waits')), 'the transfer moved the session, or waits');
      open();
      expect((await moving).status).toBe('moved');
      expect(await turn).toMatchObject({ status: 'completed', output: 'echo: one' });

      // every numbered update the turn's client got is in the receiver's log at its seq, its final status among them
      const numbered = sent.filter((u) => typeof u.seq === 'number');
      const end = numbered.find((u) => u.type === 'status' && u.status === 'completed');
      expect(end).toBeDefined();
      const logB = (await storeB.readEvents(sid, 0, 1000)).events;
      const bySeq = new Map(logB.map((e) => [e.seq, e.event]));
      for (const u of numbered) expect(bySeq.get(u.seq as number), `seq ${String(u.seq)} on B: ${JSON.stringify(u)}`).toEqual(u);
      const recB = await storeB.get(sid);
      expect(await storeB.lastEventSeq(sid)).toBe(Number(recB?.metadata.seq));
      // a client that saw the turn start and resumes on B gets its end
      const started = numbered.find((u) => u.event === 'started')!;
      const missed = (await storeB.readEvents(sid, started.seq as number, 1000)).events.map((e) => e.event);
      expect(missed).toContainEqual(end);
    } finally {
      open();
      await r.shutdown(1_000);
    }
  }, 30_000);
});
