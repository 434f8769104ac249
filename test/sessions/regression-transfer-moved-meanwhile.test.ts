/**
 * A transfer offers only an open session this gateway still owns, judged where its marker is written
 * (docs/sessions.md, Transfer step 2). It reads the record first and then waits until no turn runs and no take of
 * the session's lease is live; the marker's write checked only for a running turn and another marker. A session
 * moved meanwhile by another transfer (a second call, another instance sharing the store) was then offered to a
 * second peer, and was open on two gateways; one closed meanwhile was offered as well. Here the transfer's lease check
 * is held while the session moves (or closes), then let go. Gateway A as two coordinators over one store (two
 * instances), B and C over their own, the bridge a direct call; a real store of each kind.
 */
import { describe, expect, it } from 'vitest';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { mutateSession, type SessionStore } from '../../src/sessions/store.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { directTransfer, echoTarget } from '../helpers/echo-sessions.js';
import { closeSession, newSession } from '../../src/sessions/model.js';
import { bothStores } from './fixtures/both-stores.js';

const { backends, stores } = bothStores('xfermm');

describe.each(backends)('a session that changes while a transfer of it waits: $name', (b) => {
  async function gateways(tag: string) {
    const [storeA, storeB, storeC] = await Promise.all([b.open(), b.open(), b.open()]);
    stores.push(storeA, storeB, storeC);
    const { logger } = memoryLogger();
    const [idA, idB, idC] = [`gw_${tag}_a`, `gw_${tag}_b`, `gw_${tag}_c`];
    // the second instance's lease check, held once armed until `open`
    let armed = true;
    let reached = false;
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const heldStore = wrapStore(storeA, {
      getLease: async (id: string) => {
        const lease = await storeA.getLease(id);
        if (armed) {
          armed = false;
          reached = true;
          await gate;
        }
        return lease;
      },
    });
    const coordinator = (store: SessionStore, self: string, to: () => TransferCoordinator) =>
      new TransferCoordinator(store, self, true, directTransfer(self, to), logger);
    const peers: Record<string, TransferCoordinator> = {};
    const a1 = coordinator(storeA, idA, () => peers[idB]!);
    const a2 = coordinator(heldStore, idA, () => peers[idC]!);
    peers[idB] = coordinator(storeB, idB, () => a1);
    peers[idC] = coordinator(storeC, idC, () => a2);
    const sid = `xfermm-${tag}-${b.name}`;
    await storeA.create(newSession({ id: sid, kind: 'chat', ownerGatewayId: idA, target: echoTarget }));
    return { storeA, storeB, storeC, a1, a2, idB, idC, sid, reached: () => reached, open };
  }

  it('moved by another transfer meanwhile: not offered again, it stays with the first peer only', async () => {
    const g = await gateways('mv');
    const second = g.a2.transfer(g.sid, g.idC);
    await waitFor(() => g.reached(), "the second transfer's lease check");
    expect((await g.a1.transfer(g.sid, g.idB)).status).toBe('moved');
    g.open();
    await expect(second).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining(`already moved to ${g.idB}`) });
    expect(await g.storeA.get(g.sid)).toMatchObject({ status: 'moved', movedTo: g.idB });
    expect(await g.storeB.get(g.sid)).toMatchObject({ status: 'active' });
    // C never got it
    expect(await g.storeC.get(g.sid)).toBeUndefined();
  });

  it('closed meanwhile: not offered', async () => {
    const g = await gateways('cl');
    const moving = g.a2.transfer(g.sid, g.idC);
    await waitFor(() => g.reached(), "the transfer's lease check");
    await mutateSession(g.storeA, g.sid, (s) => closeSession(s));
    g.open();
    await expect(moving).rejects.toMatchObject({ code: 'INVALID_REQUEST', message: expect.stringContaining('is closed') });
    expect(await g.storeA.get(g.sid)).toMatchObject({ status: 'closed' });
    expect(await g.storeC.get(g.sid)).toBeUndefined();
  });
});
