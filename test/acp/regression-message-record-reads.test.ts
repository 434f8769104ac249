/**
 * Regression: the session-store reads of one `session.message` before its turn takes the session's lease. The
 * owner check (peers.ts `ownerOf`: is the session moved to another gateway?) read the record, then the runner read
 * it again: to see whether an idle live session was overtaken (`overtaken`), or to revive one that is not live
 * here (`rehydrate`); a virtual key's call read it once more before both (`assertReach`). With Redis each read is a
 * round trip on every turn. Now the steps of one call share one read while nothing began or ended on the session in
 * this process since it was made (record-read.ts): 1 read where there were 2 (3 for a key's call), on SQLite and on
 * Redis alike. The dispatch is the gateway's (methods.ts), with its bridge's owner check and transfer coordinator.
 * The last case guards what the shared read must not do: act on a record a close in this process has changed since.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { createDispatch } from '../../src/acp/methods.js';
import { remoteSessions } from '../../src/acp/peers.js';
import type { Runtime } from '../../src/acp/runtime.js';
import type { BridgeMesh } from '../../src/bridge/mesh.js';
import { configSchema } from '../../src/config/schema.js';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { TransferCoordinator, type TransferTransport } from '../../src/sessions/transfer.js';
import { memoryLogger, tmpDir, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { redisForFile } from '../sessions/fixtures/redis-server.js';

const redis = redisForFile();
const GW = 'gw_record_reads';
const target = { executionTarget: 'gateway', gatewayProviderId: 'echo', providerId: '', model: '' } as const;

const echo: Runtime = {
  async prompt(turn, emit) {
    emit({ type: 'delta', event: 'delta', delta: `echo: ${turn.text}`, text: `echo: ${turn.text}` });
    return { output: `echo: ${turn.text}`, stopReason: 'end_turn' };
  },
  async close() {},
};

/** no peer is ever asked: every session here is this gateway's own */
const noPeers: TransferTransport = {
  peerAcceptsSessions: () => undefined,
  offer: () => Promise.reject(new Error('no peers')),
  call: () => Promise.reject(new Error('no peers')),
};

/**
 * The store with its `get`s counted, and the count when the first lease was taken since `reset`. Reset once the
 * runner's writes of the previous turn are done (`settled`): a late task-event write reads the record too.
 */
function counting(store: SessionStore) {
  const c = { gets: 0, atLease: undefined as number | undefined };
  const wrapped = wrapStore(store, {
    get: (id: string) => {
      c.gets++;
      return store.get(id);
    },
    acquireLease: (...args: Parameters<SessionStore['acquireLease']>) => {
      c.atLease ??= c.gets;
      return store.acquireLease(...args);
    },
  });
  return {
    store: wrapped,
    reset: () => {
      c.gets = 0;
      c.atLease = undefined;
    },
    c,
  };
}

/** A turn runner and the gateway's /acp/rpc dispatch over `store` (a gateway's: with a bridge mesh, no peers). */
function gateway(store: SessionStore) {
  const logger = memoryLogger().logger;
  const runner = new TurnRunner({ store, gatewayId: GW, logger, runtimeFor: async () => echo, leaseTtlMs: 3_000 });
  const mesh = { peerAgents: () => [], transfers: new TransferCoordinator(store, GW, true, noPeers, logger) } as unknown as BridgeMesh;
  const dispatch = createDispatch({
    acp: configSchema().parse({}).acp,
    runner,
    catalog: () => Promise.reject(new Error('session.message never reads the catalog')),
    remote: remoteSessions(mesh, store, new Set()),
  });
  return { runner, dispatch };
}

/** the session's task events stored (tasks.get waits for them before it answers) */
const settled = (runner: TurnRunner, sessionId: string) => runner.task({ sessionId });

const stores: SessionStore[] = [];
const runners: TurnRunner[] = [];
afterEach(async () => {
  await Promise.all(runners.splice(0).map((r) => r.shutdown(1_000)));
  await Promise.all(stores.splice(0).map((s) => s.close()));
});

async function open(kind: 'sqlite' | 'redis'): Promise<SessionStore> {
  if (kind === 'sqlite') {
    const s = await openStore({ kind: 'sqlite', path: join(tmpDir(), 'reads.db') });
    stores.push(s);
    return s;
  }
  const s = await openStore({ kind: 'redis', url: redis.server.url, prefix: `reads${Math.random().toString(36).slice(2, 8)}:` });
  redis.stores.push(s);
  return s;
}

describe.each(['sqlite', 'redis'] as const)('store reads of a session.message before its turn takes the lease (%s)', (kind) => {
  it('a live open session: one read (was two: the owner check, then whether it was overtaken)', async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    await runner.start({ sessionId: 'live-1', threadId: 'live-1', prompt: 'one', workingDirectory: undefined, target }, () => undefined);
    for (const text of ['two', 'three']) {
      await settled(runner, 'live-1');
      cs.reset();
      const r = await dispatch({ method: 'session.message', params: { sessionId: 'live-1', taskPrompt: text } }, { notify: () => undefined });
      expect(r).toMatchObject({ status: 'completed', output: `echo: ${text}` });
      expect(cs.c.atLease).toBe(1);
    }
  });

  it('a session revived from its record (a restarted gateway): one read (was two: the owner check, then the revival)', async () => {
    const cs = counting(await open(kind));
    const first = gateway(cs.store);
    runners.push(first.runner);
    await first.runner.start({ sessionId: 'revive-1', threadId: 'revive-1', prompt: 'one', workingDirectory: undefined, target }, () => undefined);
    await first.runner.shutdown(1_000);
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    await settled(runner, 'revive-1');
    cs.reset();
    const r = await dispatch({ method: 'session.message', params: { sessionId: 'revive-1', taskPrompt: 'two' } }, { notify: () => undefined });
    expect(r).toMatchObject({ status: 'completed', output: 'echo: two' });
    expect(cs.c.atLease).toBe(1);
  });

  it("a virtual key's call on its live session: one read (was three: the caller check besides)", async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    const caller = 'key:k_reads';
    await runner.start({ sessionId: 'key-1', threadId: 'key-1', prompt: 'one', workingDirectory: undefined, target, caller }, () => undefined);
    await settled(runner, 'key-1');
    cs.reset();
    const r = await dispatch({ method: 'session.message', params: { sessionId: 'key-1', taskPrompt: 'two' } }, { notify: () => undefined, caller });
    expect(r).toMatchObject({ status: 'completed', output: 'echo: two' });
    expect(cs.c.atLease).toBe(1);
  });

  it('a close that runs while the owner check reads the record: the message is refused, not revived from that read', async () => {
    const base = await open(kind);
    const first = gateway(base);
    runners.push(first.runner);
    await first.runner.start({ sessionId: 'closed-1', threadId: 'closed-1', prompt: 'one', workingDirectory: undefined, target }, () => undefined);
    await first.runner.shutdown(1_000);
    // the owner check's read (the message's first) answers with the record as it was before the close ran
    let reads = 0;
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    const store = wrapStore(base, {
      get: async (id: string) => {
        const rec = await base.get(id);
        if (++reads === 1) await released;
        return rec;
      },
    });
    const { runner, dispatch } = gateway(store);
    runners.push(runner);
    const msg = dispatch({ method: 'session.message', params: { sessionId: 'closed-1', taskPrompt: 'two' } }, { notify: () => undefined });
    await waitFor(() => reads > 0 || undefined, 'the owner check reading the record');
    expect(await runner.close('closed-1')).toEqual({ accepted: true, closed: true });
    release();
    await expect(msg).rejects.toMatchObject({ code: 'SESSION_CONTINUATION_UNAVAILABLE' });
    expect((await base.get('closed-1'))?.history).toHaveLength(1);
  });
});
