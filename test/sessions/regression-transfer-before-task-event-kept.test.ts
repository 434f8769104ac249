/**
 * A transfer offers the record with the last turn's final task event in it (docs/sessions.md, the seq rule).
 *
 * A turn's final task event (task.completed) is numbered after its result is stored and kept with the record by a
 * write of its own, made once the moment's work is done (task-events.ts). The turn gave its lease back once its last
 * updates were in the log, without waiting for that write: a transfer right then (it waits only for the lease) wrote
 * its marker first and offered the record without the event, which then landed in the sender's record; the receiver's
 * `metadata.taskEvents` lacked the turn's end (seen: test/acp/session-reach.e2e.test.ts under load). Here that write
 * is held until the transfer waits or has offered. Gateway A a turn runner and a transfer coordinator over one store,
 * B a coordinator over its own, the bridge between them a direct call; a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { bothStores } from './fixtures/both-stores.js';
import { directTransfer, echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('xfertev');

const events = (s: { metadata: Record<string, unknown> } | undefined) => ((s?.metadata.taskEvents ?? []) as Array<{ event: string }>).map((e) => e.event);

describe.each(backends)('a transfer right after a turn ended: $name', (b) => {
  it("offers the record with the turn's final task event", async () => {
    const rawA = await b.open();
    const storeB = await b.open();
    stores.push(rawA, storeB);
    let held = false;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    // the write that keeps task.completed with the record, held before it is made
    const storeA = wrapStore(rawA, {
      update: async (...args: Parameters<SessionStore['update']>) => {
        if (!held && events(args[0]).includes('task.completed')) {
          held = true;
          await gate;
        }
        return rawA.update(...args);
      },
    });
    const { logger, lines } = memoryLogger();
    const r = new TurnRunner({ store: storeA, gatewayId: 'gw_xe_a', holderId: `gw_xe_a/${b.name}`, logger, runtimeFor: async () => echoRuntime });
    let offered = false;
    const a: TransferCoordinator = new TransferCoordinator(
      rawA,
      'gw_xe_a',
      true,
      directTransfer(
        'gw_xe_a',
        () => gwB,
        async () => void (offered = true),
      ),
      logger,
    );
    const gwB: TransferCoordinator = new TransferCoordinator(
      storeB,
      'gw_xe_b',
      true,
      directTransfer('gw_xe_b', () => a),
      logger,
    );
    const sid = `xfertev-${b.name}`;
    try {
      const turn = r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
      await waitFor(() => held, 'the write of the final task event');
      const moving = a.transfer(sid, 'gw_xe_b');
      await waitFor(() => offered || lines.some((l) => l.includes('session transfer waits')), 'the transfer offered the session, or waits');
      open();
      expect((await moving).status).toBe('moved');
      expect(await turn).toMatchObject({ status: 'completed' });
      expect(events(await storeB.get(sid))).toEqual(['task.started', 'task.completed']);
    } finally {
      open();
      await r.shutdown(1_000);
    }
  }, 30_000);
});
