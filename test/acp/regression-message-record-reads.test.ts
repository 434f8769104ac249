/**
 * Regression: the session-store reads of one `session.message` before its turn takes the session's lease. The
 * owner check (peers.ts `ownerOf`: is the session moved to another gateway?) read the record, then the runner read
 * it again: to see whether an idle live session was overtaken (`overtaken`), or to revive one that is not live
 * here (`rehydrate`); a virtual key's call read it once more before both (`assertReach`). With Redis each read is a
 * round trip on every turn. Now the steps of one call share one read while nothing began or ended on the session in
 * this process since it was made (record-read.ts): 1 read where there were 2 (3 for a key's call), on SQLite and on
 * Redis alike. The dispatch is the gateway's (methods.ts), with its bridge's owner check and transfer coordinator.
 * The last case guards what the shared read must not do: act on a record a close in this process has changed since.
 *
 * The same for the other steps that read the record before the call's work: a bridged call's serving side
 * (peers.ts peerRpcHandler: may this peer reach the session?) read it before the owner check read it again, now
 * the check is made on the owner check's read (DispatchOptions.reach); the REST surface's `exists` (session-api.ts)
 * read it after a virtual key's caller check had, now it takes that read's answer. And after the lease: with Redis
 * the turn's `started` task event was being written when its result was, the two read the same version, and the
 * loser of the compare-and-set read again; the result's write now waits for it and carries the task events not
 * yet written (TaskEventStore.write): a whole message reads 4 times on both stores (Redis: 6).
 *
 * `xworkmate.tasks.get` of a session read the record after the owner check once for its task events and again for
 * its open prompts (a turn no longer in memory: once more for its snapshot), on every call of a client polling it;
 * now one read answers all three, made once this process's writes of the session's events and prompts are done.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import { createDispatch } from '../../src/acp/methods.js';
import { peerRpcHandler, remoteSessions } from '../../src/acp/peers.js';
import { createSessionApi } from '../../src/acp/session-api.js';
import type { PeerInfo } from '../../src/bridge/link-types.js';
import type { BridgeMesh } from '../../src/bridge/mesh.js';
import { configSchema } from '../../src/config/schema.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { notPeersSession, peerReaches, type Session } from '../../src/sessions/model.js';
import { TransferCoordinator, type TransferTransport } from '../../src/sessions/transfer.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { runnerStores } from '../helpers/runner-stores.js';
import { echoRuntime, echoTarget } from '../helpers/echo-sessions.js';

const GW = 'gw_record_reads';

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
  const runner = new TurnRunner({ store, gatewayId: GW, logger, runtimeFor: async () => echoRuntime, leaseTtlMs: 3_000 });
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

const { open, runners } = runnerStores('reads');

describe.each(['sqlite', 'redis'] as const)('store reads of a session.message before its turn takes the lease (%s)', (kind) => {
  it('a live open session: one read (was two: the owner check, then whether it was overtaken)', async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    await runner.start({ sessionId: 'live-1', threadId: 'live-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
    for (const text of ['two', 'three']) {
      await settled(runner, 'live-1');
      cs.reset();
      const r = await dispatch({ method: 'session.message', params: { sessionId: 'live-1', taskPrompt: text } }, { notify: () => undefined });
      expect(r).toMatchObject({ status: 'completed', output: `echo: ${text}` });
      expect(cs.c.atLease).toBe(1);
    }
  });

  it("the whole message, through its turn's end: four reads on both stores (was six with Redis: its task events raced its result)", async () => {
    const base = await open(kind);
    const cs = counting(base);
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    await runner.start({ sessionId: 'whole-1', threadId: 'whole-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
    for (const text of ['two', 'three']) {
      await settled(runner, 'whole-1');
      cs.reset();
      const r = (await dispatch({ method: 'session.message', params: { sessionId: 'whole-1', taskPrompt: text } }, { notify: () => undefined })) as {
        turnId: string;
      };
      expect(r).toMatchObject({ status: 'completed', output: `echo: ${text}` });
      // its last write is its `completed` event's (read on the store itself: not counted)
      const stored = async () => ((await base.get('whole-1'))?.metadata.taskEvents ?? []) as Array<{ event: string; task: { taskId: string } }>;
      await waitFor(
        async () => (await stored()).some((e) => e.event === 'task.completed' && e.task.taskId === r.turnId) || undefined,
        'the task events stored',
      );
      // the owner check; the record under the lease; the turn's result with its `started` event; the `completed`
      // event. With Redis the `started` event's own write raced the result's: the loser of the compare-and-set read
      // the record again, and the `started` event cost a read of its own
      expect(cs.c.gets).toBe(4);
      expect((await stored()).filter((e) => e.task.taskId === r.turnId).map((e) => e.event)).toEqual(['task.started', 'task.completed']);
    }
  });

  it("a turn's result that cannot be stored: the task events it carried are stored by a write of their own", async () => {
    const base = await open(kind);
    let failed = 0;
    const store = wrapStore(base, {
      update: (s, v) => {
        // the result's write (its turn completed in the history) fails every attempt
        if (s.history.at(-1)?.status === 'completed' && s.history.length === 2) {
          failed++;
          return Promise.reject(new Error('the store refused the write'));
        }
        return base.update(s, v);
      },
    });
    const { runner, dispatch } = gateway(store);
    runners.push(runner);
    await runner.start({ sessionId: 'lost-1', threadId: 'lost-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
    await settled(runner, 'lost-1');
    const r = (await dispatch({ method: 'session.message', params: { sessionId: 'lost-1', taskPrompt: 'two' } }, { notify: () => undefined })) as {
      turnId: string;
    };
    await settled(runner, 'lost-1');
    expect(failed).toBeGreaterThan(0);
    const events = ((await base.get('lost-1'))?.metadata.taskEvents ?? []) as Array<{ event: string; task: { taskId: string } }>;
    expect(events.filter((e) => e.task.taskId === r.turnId).map((e) => e.event)).toEqual(['task.started', 'task.completed']);
  });

  it('a session revived from its record (a restarted gateway): one read (was two: the owner check, then the revival)', async () => {
    const cs = counting(await open(kind));
    const first = gateway(cs.store);
    runners.push(first.runner);
    await first.runner.start({ sessionId: 'revive-1', threadId: 'revive-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
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
    await runner.start({ sessionId: 'key-1', threadId: 'key-1', prompt: 'one', workingDirectory: undefined, target: echoTarget, caller }, () => undefined);
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
    await first.runner.start({ sessionId: 'closed-1', threadId: 'closed-1', prompt: 'one', workingDirectory: undefined, target: echoTarget }, () => undefined);
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

/** a bridge peer calling this gateway's /acp methods (its bridge-rpc, as the link hands it to the handler) */
const PEER = 'gw_record_reads_peer';
const bridged = (store: SessionStore, dispatch: ReturnType<typeof gateway>['dispatch'], peer = PEER) => {
  const serve = peerRpcHandler(dispatch, store, () => Promise.resolve());
  return (method: string, params: Record<string, unknown>) =>
    serve({
      peer: { id: peer, name: peer } as PeerInfo,
      method,
      params,
      sharedAgents: new Set(['echo']),
      hops: [GW],
      signal: new AbortController().signal,
      emit: () => undefined,
    });
};

describe.each(['sqlite', 'redis'] as const)('store reads of a bridged call and of a REST read (%s)', (kind) => {
  it("a peer's session.message on the session it started here: one read before the lease (was two: the peer check, then the owner check)", async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    await runner.start(
      { sessionId: 'peer-1', threadId: 'peer-1', prompt: 'one', workingDirectory: undefined, target: echoTarget, origin: PEER },
      () => undefined,
    );
    await settled(runner, 'peer-1');
    cs.reset();
    const r = await bridged(cs.store, dispatch)('session.message', { sessionId: 'peer-1', taskPrompt: 'two' });
    expect(r).toMatchObject({ result: { status: 'completed', output: 'echo: two' } });
    expect(cs.c.atLease).toBe(1);
  });

  it('a peer still reaches only its own sessions, with every session method (the check made on the shared read)', async () => {
    const store = await open(kind);
    const { runner, dispatch } = gateway(store);
    runners.push(runner);
    await runner.start(
      { sessionId: 'other-1', threadId: 'other-1', prompt: 'one', workingDirectory: undefined, target: echoTarget, origin: 'gw_someone_else' },
      () => undefined,
    );
    await settled(runner, 'other-1');
    const call = bridged(store, dispatch);
    const calls: Array<[string, Record<string, unknown>]> = [
      ['session.message', { sessionId: 'other-1', taskPrompt: 'two' }],
      ['session.cancel', { sessionId: 'other-1' }],
      ['session.close', { sessionId: 'other-1' }],
      ['xworkmate.tasks.get', { sessionId: 'other-1' }],
      ['xworkmate.permissions.respond', { sessionId: 'other-1', requestId: 'r1', decision: 'cancel' }],
      ['xworkmate.permissions.list', { sessionId: 'other-1' }],
      ['xworkmate.tasks.get', { runId: 'run_any' }],
      ['session.message', { sessionId: 'nobody', taskPrompt: 'two' }],
    ];
    for (const [method, params] of calls) await expect(call(method, params), method).rejects.toMatchObject({ code: 'CHANNEL_NOT_SHARED' });
    // a check handed to the dispatch for another id than the method names (a session of the peer's own) is made on
    // no record, never on that other id's: refused
    await runner.start(
      { sessionId: 'peers-own', threadId: 'peers-own', prompt: 'one', workingDirectory: undefined, target: echoTarget, origin: PEER },
      () => undefined,
    );
    const reach = {
      sessionId: 'peers-own',
      read: () => store.get('peers-own'),
      check: (rec: Session | undefined) => {
        if (!rec || !peerReaches(rec, PEER)) throw notPeersSession('other-1');
      },
    };
    await expect(
      dispatch({ method: 'xworkmate.tasks.get', params: { sessionId: 'other-1' } }, { notify: () => undefined }, { origin: PEER, localOnly: true, reach }),
    ).rejects.toMatchObject({ code: 'CHANNEL_NOT_SHARED' });
    expect((await store.get('other-1'))?.status).not.toBe('closed');
    expect((await store.get('other-1'))?.history).toHaveLength(1);
  });

  it('xworkmate.tasks.get of a session: one read after the owner check (was two: the snapshot, then the open prompts)', async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    const r = await runner.start(
      { sessionId: 'tasks-1', threadId: 'tasks-1', prompt: 'one', workingDirectory: undefined, target: echoTarget },
      () => undefined,
    );
    await settled(runner, 'tasks-1');
    cs.reset();
    const snap = await dispatch({ method: 'xworkmate.tasks.get', params: { sessionId: 'tasks-1' } }, { notify: () => undefined });
    expect(snap).toMatchObject({ status: 'completed', runId: r.runId, pendingPermissions: [] });
    expect((snap as { taskEvents: Array<{ event: string }> }).taskEvents.map((e) => e.event)).toEqual(['task.started', 'task.completed']);
    // the owner check; the record (its task events, its open prompts)
    expect(cs.c.gets).toBe(2);
  });

  it('xworkmate.tasks.get of a turn no longer in memory (a restarted gateway): one read after the owner check (was three)', async () => {
    const cs = counting(await open(kind));
    const first = gateway(cs.store);
    runners.push(first.runner);
    const r = await first.runner.start(
      { sessionId: 'tasks-2', threadId: 'tasks-2', prompt: 'one', workingDirectory: undefined, target: echoTarget },
      () => undefined,
    );
    await first.runner.shutdown(1_000);
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    cs.reset();
    const snap = await dispatch({ method: 'xworkmate.tasks.get', params: { sessionId: 'tasks-2' } }, { notify: () => undefined });
    expect(snap).toMatchObject({ status: 'completed', runId: r.runId, output: 'echo: one', sessionStatus: 'active', pendingPermissions: [] });
    expect((snap as { taskEvents: Array<{ event: string }> }).taskEvents.map((e) => e.event)).toEqual(['task.started', 'task.completed']);
    // the owner check; the record (the stored turn, its task events, its open prompts)
    expect(cs.c.gets).toBe(2);
    // by runId alone: the run index, then the record, as before
    cs.reset();
    expect(await dispatch({ method: 'xworkmate.tasks.get', params: { runId: r.runId } }, { notify: () => undefined })).toMatchObject({
      status: 'completed',
      runId: r.runId,
    });
    expect(cs.c.gets).toBe(1);
  });

  it("the REST events of a virtual key's session: the caller check's read answers whether it exists (3 reads, was 5)", async () => {
    const cs = counting(await open(kind));
    const { runner, dispatch } = gateway(cs.store);
    runners.push(runner);
    const caller = 'key:k_rest_reads';
    await runner.start({ sessionId: 'rest-1', threadId: 'rest-1', prompt: 'one', workingDirectory: undefined, target: echoTarget, caller }, () => undefined);
    await settled(runner, 'rest-1');
    const api = createSessionApi({ dispatch, store: cs.store, runner });
    cs.reset();
    const r = await api.events('rest-1', 0, 10, caller);
    expect(r.events.length).toBeGreaterThan(0);
    // `exists` (the caller check, whether the record is there: one read), then tasks.get: its caller and owner checks
    // (one), and the record for its task events and the session's open prompts (one; was two)
    expect(cs.c.gets).toBe(3);
    cs.reset();
    await expect(api.events('rest-1', 0, 10, 'key:k_other')).rejects.toMatchObject({ code: 'FORBIDDEN' });
    await expect(api.events('rest-none', 0, 10, caller)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    await expect(api.events('rest-none', 0, 10, undefined)).rejects.toMatchObject({ code: 'SESSION_NOT_FOUND' });
    // one read each (the unknown session asked by a key was read twice)
    expect(cs.c.gets).toBe(3);
  });
});
