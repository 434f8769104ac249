/**
 * Regression: when a bridge link comes up, TransferCoordinator.reconcile settles the transfers left half-way with
 * that peer. It read every record of the store (with its history, up to 100,000) to find the few with a transfer
 * marker: a peer connecting to a gateway holding 20,000 sessions held that gateway's event loop for 17 s (its
 * /healthz answered after 17 s), and again at every reconnect. It now asks the store for the marked records only
 * (listMarked('transfer'): SQLite filters the metadata column, Redis looks inside each doc in a script), and reads
 * no other record. On both stores (real SQLite, real redis-server); the transport answers the status question.
 */
import { describe, expect, it } from 'vitest';
import { newSession } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { createLogger } from '../../src/util/log.js';
import { bothStores } from './fixtures/both-stores.js';

const { backends, stores } = bothStores('off');
const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'm' };

/** The store, with the ids of the records read (get, and each record a list handed back) counted. */
function counting(store: SessionStore): { store: SessionStore; read: string[] } {
  const read: string[] = [];
  const wrapped = new Proxy(store, {
    get(t, prop, receiver) {
      const v = Reflect.get(t, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'get' || prop === 'list' || prop === 'listMarked')
        return async (...args: unknown[]) => {
          const r = (await (v as (...a: unknown[]) => Promise<unknown>).apply(t, args)) as { id: string } | Array<{ id: string }> | undefined;
          for (const s of Array.isArray(r) ? r : r ? [r] : []) read.push(s.id);
          return r;
        };
      return (v as (...a: unknown[]) => unknown).bind(t);
    },
  });
  return { store: wrapped, read };
}

describe.each(backends)('reconcile on link up reads only the records with a transfer marker: $name', (b) => {
  it('300 sessions, one offered to the peer before the link came up: that one is settled, no other record is read', async () => {
    const raw = await b.open();
    stores.push(raw);
    const self = 'gw_self';
    for (let i = 0; i < 300; i++) await raw.create(newSession({ id: `plain-${i}`, kind: 'chat', ownerGatewayId: self, target }));
    await raw.create({
      ...newSession({ id: 'offered', kind: 'chat', ownerGatewayId: self, target }),
      metadata: { transfer: { id: 'tx_old', state: 'offering', peer: 'gw_peer', since: Date.now() - 60_000 } },
    });
    const { store, read } = counting(raw);
    const asked: string[] = [];
    const coordinator = new TransferCoordinator(
      store,
      self,
      true,
      {
        peerAcceptsSessions: () => true,
        offer: async () => undefined,
        call: async (_peer, _method, params) => {
          asked.push((params as { sessionId: string }).sessionId);
          return { owner: 'unknown' };
        },
      },
      createLogger({}, () => undefined),
    );
    await coordinator.reconcile('gw_peer', Date.now());
    // the peer holds nothing of it: the offer failed, the session stays here with its marker cleared
    expect(asked).toEqual(['offered']);
    expect((await raw.get('offered'))!.metadata.transfer).toBeUndefined();
    expect(read.filter((id) => id !== 'offered')).toEqual([]);
  });
});
