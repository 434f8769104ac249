/**
 * No turn starts while a transfer of its session is being offered (docs/sessions.md, Transfer).
 *
 * The sender waits for a running turn, then writes its marker (`metadata.transfer`, "offering") and offers the record
 * and the update log to the peer. The turn runner did not read the marker: a `session.message` that came while the
 * peer considered the offer ran its turn here, so the session moved with a turn the receiver never saw (its record
 * and log were the offer's), and that turn's updates landed in a log the session had left. Now the turn is refused,
 * retryable (`OVERLOADED`): once the session has moved, the retry goes there. Here the receiver's answer to the offer
 * is held while the message comes; gateway A a turn runner and a transfer coordinator over one store, B a
 * coordinator over its own, the bridge between them a direct call; a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { TRANSFER_TIMEOUT_MS, TransferCoordinator } from '../../src/sessions/transfer.js';
import { mutateSession } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { bothStores } from './fixtures/both-stores.js';
import { directTransfer, echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const { backends, stores } = bothStores('xferturn');

describe.each(backends)('a message while the session is being offered to a peer: $name', (b) => {
  it('is refused, retryable, and the session moves with only the turns the offer carried', async () => {
    const storeA = await b.open();
    const storeB = await b.open();
    stores.push(storeA, storeB);
    let offered = false;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const { logger } = memoryLogger();
    const r = new TurnRunner({ store: storeA, gatewayId: 'gw_xt_a', holderId: `gw_xt_a/${b.name}`, logger, runtimeFor: async () => echoRuntime });
    const a: TransferCoordinator = new TransferCoordinator(
      storeA,
      'gw_xt_a',
      true,
      directTransfer(
        'gw_xt_a',
        () => gwB,
        () => ((offered = true), gate),
      ),
      logger,
    );
    const gwB: TransferCoordinator = new TransferCoordinator(
      storeB,
      'gw_xt_b',
      true,
      directTransfer('gw_xt_b', () => a),
      logger,
    );
    const sid = `xferturn-${b.name}`;
    try {
      expect(await r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined)).toMatchObject({
        status: 'completed',
      });
      await r.task({ sessionId: sid });
      const moving = a.transfer(sid, 'gw_xt_b');
      await waitFor(() => offered, 'the offer to reach the peer');

      const during = await r.message(sid, 'two', () => undefined);
      expect(during).toMatchObject({ status: 'failed', errorCode: 'OVERLOADED' });
      expect(during.error).toMatch(/being transferred/);
      expect((await storeA.get(sid))?.history.map((t) => t.status)).toEqual(['completed']);

      open();
      expect((await moving).status).toBe('moved');
      // the receiver has what the sender had: one turn, and the log up to the record's seq
      const recB = await storeB.get(sid);
      expect(recB?.history.map((t) => t.status)).toEqual(['completed']);
      expect(await storeB.lastEventSeq(sid)).toBe(Number(recB?.metadata.seq));
      // the sender's record says where the session went, and holds no turn besides the one that moved
      const recA = await storeA.get(sid);
      expect(recA).toMatchObject({ status: 'moved', movedTo: 'gw_xt_b' });
      expect(recA?.history).toHaveLength(1);
    } finally {
      open();
      await r.shutdown(1_000);
    }
  }, 30_000);

  it('a marker older than any offer (its sender stopped mid-transfer) keeps no turn from starting', async () => {
    const store = await b.open();
    stores.push(store);
    const r = new TurnRunner({
      store,
      gatewayId: 'gw_xt_c',
      holderId: `gw_xt_c/${b.name}`,
      logger: memoryLogger().logger,
      runtimeFor: async () => echoRuntime,
    });
    const sid = `xferstale-${b.name}`;
    try {
      await r.start({ sessionId: sid, threadId: sid, prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
      await r.task({ sessionId: sid });
      const since = Date.now() - TRANSFER_TIMEOUT_MS - 60_000;
      await mutateSession(store, sid, (s) => ({ ...s, metadata: { ...s.metadata, transfer: { id: 'xfer_gone', state: 'offering', peer: 'gw_gone', since } } }));
      expect(await r.message(sid, 'two', () => undefined)).toMatchObject({ status: 'completed', output: 'echo: two' });
    } finally {
      await r.shutdown(1_000);
    }
  });
});
