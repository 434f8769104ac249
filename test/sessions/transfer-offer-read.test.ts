/**
 * Regression: to offer a session, the sender read and parsed its whole update log (up to 1,000 entries and
 * acp.updateLogMaxBytes, 64 MiB) to send at most 1 MiB of the newest entries. It now reads only the newest entries
 * an offer can carry (readNewestEvents, bounded by MAX_TRANSFER_EVENT_BYTES), and offers the same: the newest entries
 * in order, and the highest seq below them as not carried. On both stores (real SQLite, real redis-server); the
 * transport records the offer (what the bridge then trims and sends is covered by transfer.e2e.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { appendTurn, newSession, newTurn } from '../../src/sessions/model.js';
import type { SessionEvent, SessionStore } from '../../src/sessions/store.js';
import { TransferCoordinator } from '../../src/sessions/transfer.js';
import { MAX_TRANSFER_EVENT_BYTES } from '../../src/wire/bridge-frames.js';
import { createLogger } from '../../src/util/log.js';
import { bothStores } from './fixtures/both-stores.js';

const { backends, stores } = bothStores('off');

/** The store, with the bytes of JSON of every update-log entry a read handed back counted. */
function counting(store: SessionStore): { store: SessionStore; read: () => number } {
  let read = 0;
  const add = (events: readonly SessionEvent[]) => {
    for (const e of events) read += Buffer.byteLength(JSON.stringify(e.event));
  };
  const wrapped = new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (typeof v !== 'function') return v;
      if (prop === 'readEvents' || prop === 'readNewestEvents')
        return async (...args: unknown[]) => {
          const r = await (v as (...a: unknown[]) => Promise<{ events: SessionEvent[] }>).apply(target, args);
          add(r.events);
          return r;
        };
      return (v as (...a: unknown[]) => unknown).bind(target);
    },
  });
  return { store: wrapped, read: () => read };
}

describe.each(backends)('a transfer offer reads only the newest entries it can carry: $name', (b) => {
  it('a log of 1,000 entries of ~8 KiB (8 MB): at most 1 MiB of it is read, and the newest entries and what lies below them are offered', async () => {
    const raw = await b.open();
    stores.push(raw);
    const { store, read } = counting(raw);
    const self = 'gw_sender';
    await raw.create(
      newSession({
        id: 's-big',
        kind: 'chat',
        ownerGatewayId: self,
        target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'm' },
      }),
    );
    const log = Array.from({ length: 1000 }, (_, i) => ({ seq: i + 1, event: { sessionId: 's-big', seq: i + 1, type: 'delta', text: 'x'.repeat(8000) } }));
    for (let i = 0; i < log.length; i += 100) await raw.appendEvents('s-big', log.slice(i, i + 100), 1000);
    const size = (e: { seq: number; event: Record<string, unknown> }) => Buffer.byteLength(JSON.stringify(e.event));
    const offered: Array<{ events: readonly SessionEvent[]; droppedThrough: number }> = [];
    const coordinator = new TransferCoordinator(
      store,
      self,
      true,
      {
        peerAcceptsSessions: () => true,
        offer: async (_peer, _id, _snapshot, events, droppedThrough) => {
          offered.push({ events, droppedThrough });
        },
        call: async () => ({}),
      },
      createLogger({}, () => undefined),
    );
    const moved = await coordinator.transfer('s-big', 'gw_peer');
    expect(moved.status).toBe('moved');
    expect(offered).toHaveLength(1);
    const { events, droppedThrough } = offered[0]!;
    // the newest entries whose JSON is within the bound (an offer's `{seq, event}` is more than that: all it carries is here)
    const n = Math.floor(MAX_TRANSFER_EVENT_BYTES / size(log[0]!));
    expect(events).toEqual(log.slice(log.length - n));
    expect(droppedThrough).toBe(log.length - n);
    // and nothing more of the log was read: the defect read all 1,000 entries (8 MB)
    expect(read()).toBeLessThanOrEqual(MAX_TRANSFER_EVENT_BYTES);
  });

  it("an offer's turns carry no errorCode (a gateway older than the field refuses a record with it); the sender keeps its own", async () => {
    const store = await b.open();
    stores.push(store);
    const self = 'gw_sender';
    const s = newSession({
      id: 's-code',
      kind: 'chat',
      ownerGatewayId: self,
      target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'm' },
    });
    const failed = { ...newTurn('q'), status: 'failed' as const, error: 'upstream said 400', errorCode: 'UPSTREAM_CLIENT_ERROR', endedAt: 2 };
    const done = { ...newTurn('r'), status: 'completed' as const, output: 'ok', endedAt: 3 };
    await store.create(appendTurn(appendTurn(s, failed), done));
    const offered: Array<Record<string, unknown>> = [];
    const coordinator = new TransferCoordinator(
      store,
      self,
      true,
      {
        peerAcceptsSessions: () => true,
        offer: async (_peer, _id, snapshot) => {
          offered.push(snapshot);
        },
        call: async () => ({}),
      },
      createLogger({}, () => undefined),
    );
    await coordinator.transfer('s-code', 'gw_peer');
    const history = offered[0]!.history as Array<Record<string, unknown>>;
    const { errorCode: _code, ...failedAsOffered } = failed;
    expect(history).toEqual([failedAsOffered, done]);
    // what the sender keeps of the moved session still has the code
    expect((await store.get('s-code'))?.history[0]).toMatchObject({ errorCode: 'UPSTREAM_CLIENT_ERROR' });
  });
});
