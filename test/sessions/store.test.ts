/**
 * One behavioural suite, run against every SessionStore implementation: SQLite in a temp dir and Redis on a
 * real redis-server started here. Each test gets a fresh namespace (a new db file / a new key prefix); `open`
 * opens another instance on the same namespace, as a second gateway process would.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, sleep } from '../helpers/env.js';
import Database from 'better-sqlite3';
import { appendTurn, newSession, newTurn, markMoved, adoptTransferred, type Session } from '../../src/sessions/model.js';
import { openStore, persistedGatewayId } from '../../src/sessions/open-store.js';
import {
  mutateSession,
  SessionExistsError,
  SessionNotFoundError,
  TransferConflictError,
  VersionConflictError,
  type SessionStore,
} from '../../src/sessions/store.js';
import { SqliteStore } from '../../src/sessions/sqlite-store.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';

interface Backend {
  name: string;
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** a fresh namespace; the returned function opens one more store instance on it */
  namespace(): () => Promise<SessionStore>;
}

let tmp = '';
let redis: RedisServer | undefined;
let seq = 0;

const backends: Backend[] = [
  {
    name: 'sqlite',
    setup: async () => void (tmp = mkdtempSync(join(tmpdir(), 'switchyard-store-'))),
    teardown: async () => rmSync(tmp, { recursive: true, force: true }),
    namespace:
      (path = join(tmp, `n${++seq}`, 'switchyard.db')) =>
      () =>
        openStore({ kind: 'sqlite', path }),
  },
  {
    name: 'redis',
    setup: async () => void (redis = await startRedis()),
    teardown: async () => redis?.stop(),
    namespace:
      (prefix = `t${++seq}:`) =>
      () =>
        openStore({ kind: 'redis', url: (redis as RedisServer).url, prefix }),
  },
];

const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };
function sample(id: string, owner = 'gw_a'): Session {
  const s = newSession({ id, kind: 'chat', ownerGatewayId: owner, target, affinity: 'cand_1', metadata: { cwd: 'w1', n: [1, 2] } });
  return appendTurn(s, {
    ...newTurn('hello', [
      { role: 'user', content: 'hello' },
      { role: 'assistant', content: 'hi' },
    ]),
    status: 'completed',
    output: 'hi',
    endedAt: s.createdAt,
  });
}
/** resolves with the next message delivered to a fresh subscription on `channel` */
async function nextMessage(store: SessionStore, channel: string): Promise<{ msg: Promise<unknown>; off: () => Promise<void> }> {
  let deliver!: (m: unknown) => void;
  const msg = new Promise<unknown>((r) => (deliver = r));
  const off = await store.subscribe(channel, (m) => deliver(m));
  return { msg, off };
}

describe.each(backends)('SessionStore conformance: $name', (backend) => {
  let open: () => Promise<SessionStore>;
  const opened: SessionStore[] = [];
  const instance = async () => {
    const s = await open();
    opened.push(s);
    return s;
  };

  beforeAll(() => backend.setup());
  afterAll(() => backend.teardown());
  afterEach(() => Promise.all(opened.splice(0).map((s) => s.close())));
  const fresh = async () => {
    open = backend.namespace();
    return instance();
  };

  it('expiring documents: read back, replaced by a later put, gone after their ttl', async () => {
    const store = await fresh();
    expect(await store.getExpiring('resp_a')).toBeUndefined();
    await store.putExpiring('resp_a', '{"v":1}', 60_000);
    expect(await store.getExpiring('resp_a')).toBe('{"v":1}');
    await store.putExpiring('resp_a', '{"v":2}', 60_000);
    expect(await store.getExpiring('resp_a')).toBe('{"v":2}');
    await store.putExpiring('resp_short', 'x', 30);
    const until = Date.now() + 5_000;
    while ((await store.getExpiring('resp_short')) !== undefined && Date.now() < until) await sleep(20);
    expect(await store.getExpiring('resp_short')).toBeUndefined();
    expect(await store.getExpiring('resp_a')).toBe('{"v":2}');
  });

  it('creates and reads back every field, at version 1; unknown ids are undefined', async () => {
    const store = await fresh();
    const s = sample('s1');
    const created = await store.create({ ...s, version: 7 });
    expect(created.version).toBe(1);
    expect(await store.get('s1')).toEqual({ ...s, version: 1 });
    expect(await store.get('nope')).toBeUndefined();
    expect(store.kind).toBe(backend.name);
  });

  it('refuses to create a session that exists, and leaves it untouched', async () => {
    const store = await fresh();
    await store.create(sample('s1', 'gw_a'));
    const err = await store.create(sample('s1', 'gw_b')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SessionExistsError);
    expect(err).toMatchObject({ reason: 'SESSION_EXISTS', status: 409, sessionId: 's1' });
    expect((await store.get('s1'))?.ownerGatewayId).toBe('gw_a');
  });

  it('update is compare-and-set on the version', async () => {
    const store = await fresh();
    const v1 = await store.create(sample('s1'));
    const v2 = await store.update({ ...v1, metadata: { step: 2 } }, 1);
    expect(v2.version).toBe(2);
    expect(await store.get('s1')).toEqual(v2);
    await expect(store.update({ ...v1, metadata: { step: 'stale' } }, 1)).rejects.toBeInstanceOf(VersionConflictError);
    expect((await store.get('s1'))?.metadata).toEqual({ step: 2 });
    await expect(store.update(sample('ghost'), 1)).rejects.toBeInstanceOf(SessionNotFoundError);
  });

  it('of two concurrent writers on two instances holding the same version, exactly one wins', async () => {
    const a = await fresh();
    const b = await instance();
    await a.create(sample('s1'));
    const base = (await b.get('s1')) as Session;
    const results = await Promise.allSettled([a.update({ ...base, metadata: { by: 'a' } }, 1), b.update({ ...base, metadata: { by: 'b' } }, 1)]);
    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect((lost[0] as PromiseRejectedResult).reason).toBeInstanceOf(VersionConflictError);
    const stored = (await a.get('s1')) as Session;
    expect(stored.version).toBe(2);
    expect(stored.metadata).toEqual((won[0] as PromiseFulfilledResult<Session>).value.metadata);
  });

  it('read-modify-write from three instances at once loses no update', async () => {
    const stores = [await fresh(), await instance(), await instance()];
    await stores[0]!.create(newSession({ id: 's1', kind: 'agent', ownerGatewayId: 'gw_a', target }));
    const bump = (s: Session) => appendTurn(s, { ...newTurn(`p${s.history.length}`), status: 'completed' });
    await Promise.all(stores.flatMap((st) => Array.from({ length: 8 }, () => mutateSession(st, 's1', bump, 1000))));
    const final = (await stores[1]!.get('s1')) as Session;
    expect(final.history).toHaveLength(24);
    expect(final.version).toBe(25);
    expect(final.history.map((t) => t.prompt)).toEqual(Array.from({ length: 24 }, (_, i) => `p${i}`));
  });

  it('lists most recently updated first, filtered by status and owner, with a limit; delete removes', async () => {
    const store = await fresh();
    for (const [id, owner] of [
      ['a', 'gw_1'],
      ['b', 'gw_2'],
      ['c', 'gw_1'],
    ] as const) {
      await store.create(sample(id, owner));
      await sleep(5);
    }
    const a = (await store.get('a')) as Session;
    await store.update(markMoved(a, 'gw_9'), a.version);
    expect((await store.list()).map((s) => s.id)).toEqual(['a', 'c', 'b']);
    expect((await store.list({ owner: 'gw_1' })).map((s) => s.id)).toEqual(['a', 'c']);
    expect((await store.list({ status: 'active' })).map((s) => s.id)).toEqual(['c', 'b']);
    expect((await store.list({ status: 'moved', owner: 'gw_1' })).map((s) => s.movedTo)).toEqual(['gw_9']);
    expect((await store.list({ limit: 2 })).map((s) => s.id)).toEqual(['a', 'c']);
    expect((await store.list({ status: 'active', limit: 1 })).map((s) => s.id)).toEqual(['c']);
    expect(await store.countByStatus()).toEqual({ active: 2, running: 0, closed: 0, moved: 1 });
    expect(await store.delete('c')).toBe(true);
    expect(await store.delete('c')).toBe(false);
    expect(await store.get('c')).toBeUndefined();
    expect((await store.list()).map((s) => s.id)).toEqual(['a', 'b']);
    expect(await store.countByStatus()).toEqual({ active: 1, running: 0, closed: 0, moved: 1 });
  });

  it('listMarked finds the records that hold a transfer marker or open permission prompts, and no other (a task event naming them is not one)', async () => {
    const store = await fresh();
    for (let i = 0; i < 40; i++) await store.create(sample(`plain-${i}`));
    // an agent's tool call kept in a task event may carry such keys: the text is there, the mark is not
    const detail = { transfer: { id: 'x' }, pendingPermissions: [{ requestId: 'y' }] };
    await store.create({ ...sample('lookalike'), metadata: { taskEvents: [{ task: { detail } }] } });
    // resolved prompts leave an empty list
    await store.create({ ...sample('answered'), metadata: { pendingPermissions: [] } });
    const marked = await store.create({ ...sample('half-way'), metadata: { transfer: { id: 'tx_1', state: 'offering', peer: 'gw_p', since: 1 } } });
    const asking = await store.create({ ...sample('asking'), metadata: { pendingPermissions: [{ requestId: 'perm-1', holder: 'h' }] } });
    expect((await store.listMarked('transfer')).map((s) => [s.id, s.metadata.transfer])).toEqual([['half-way', marked.metadata.transfer]]);
    expect((await store.listMarked('pendingPermissions')).map((s) => [s.id, s.history.length])).toEqual([['asking', 1]]);
    const { transfer: _t, ...rest } = marked.metadata;
    await store.update({ ...marked, metadata: rest }, marked.version);
    await store.update({ ...asking, metadata: { pendingPermissions: [] } }, asking.version);
    expect(await store.listMarked('transfer')).toEqual([]);
    expect(await store.listMarked('pendingPermissions')).toEqual([]);
  });

  it('deleteEndedBefore deletes closed and moved sessions last updated before the cut, with their logs and leases; nothing else', async () => {
    const store = await fresh();
    const DAY = 86_400_000;
    const old = Date.now() - 10 * DAY;
    const at = (s: Session, status: Session['status'], updatedAt: number): Session => ({ ...s, status, updatedAt });
    await store.create(at(sample('old-closed'), 'closed', old));
    await store.create(at({ ...sample('old-moved'), movedTo: 'gw_9' }, 'moved', old));
    await store.create(at(sample('old-active'), 'active', old));
    await store.create(at(sample('old-running'), 'running', old));
    await store.create(at(sample('new-closed'), 'closed', Date.now()));
    await store.appendEvents('old-closed', [{ seq: 1, event: { type: 'x' } }], 100);
    expect(await store.acquireLease('old-closed', 'h1', 60_000)).toMatch(/^h1#/);
    expect(await store.deleteEndedBefore(Date.now() - DAY)).toBe(2);
    expect((await store.list()).map((x) => x.id).sort()).toEqual(['new-closed', 'old-active', 'old-running']);
    expect((await store.readEvents('old-closed', 0, 10)).events).toEqual([]);
    expect(await store.getLease('old-closed')).toBeUndefined();
    expect(await store.deleteEndedBefore(Date.now() - DAY)).toBe(0);
  });

  it('keeps everything across close and reopen', async () => {
    const first = await fresh();
    const s = await first.create(sample('s1'));
    await first.update(appendTurn(s, newTurn('second')), s.version);
    await first.setMeta('gatewayId', 'gw_x');
    await first.close();
    const again = await instance();
    expect((await again.get('s1'))?.history.map((t) => t.prompt)).toEqual(['hello', 'second']);
    expect(await again.getMeta('gatewayId')).toBe('gw_x');
  });

  it('importTransferred stores once per transferId and never overwrites a session owned here', async () => {
    const store = await fresh();
    const offered = adoptTransferred({ ...sample('s1', 'gw_sender'), version: 5 }, 'gw_me');
    const first = await store.importTransferred('tr_1', offered);
    expect(first.duplicate).toBe(false);
    expect(first.session).toMatchObject({ id: 's1', ownerGatewayId: 'gw_me', status: 'active', version: 6 });
    expect(await store.get('s1')).toEqual(first.session);

    // the sender retries (it never saw our ok): same answer, nothing written
    const retry = await store.importTransferred('tr_1', { ...offered, metadata: { changed: true } });
    expect(retry).toEqual({ session: first.session, duplicate: true });
    expect(await store.get('s1')).toEqual(first.session);

    // another offer for a session that is ours: refused, untouched
    await expect(store.importTransferred('tr_2', offered)).rejects.toBeInstanceOf(TransferConflictError);
    await expect(store.importTransferred('tr_1', { ...offered, id: 'other' })).rejects.toMatchObject({ reason: 'TRANSFER_CONFLICT' });
    expect(await store.get('other')).toBeUndefined();

    // it moves away, then comes back with a new transfer: accepted, version keeps growing
    const cur = (await store.get('s1')) as Session;
    const moved = await store.update(markMoved(cur, 'gw_peer'), cur.version);
    const back = await store.importTransferred('tr_3', adoptTransferred({ ...moved, version: 2 }, 'gw_me'));
    expect(back.duplicate).toBe(false);
    expect(back.session).toMatchObject({ status: 'active', ownerGatewayId: 'gw_me', version: moved.version + 1 });
    expect(back.session.movedTo).toBeUndefined();
  });

  it('meta: get, set, overwrite, and set-if-absent agreed by concurrent instances', async () => {
    const a = await fresh();
    const b = await instance();
    expect(await a.getMeta('k')).toBeUndefined();
    await a.setMeta('k', 'v1');
    expect(await b.getMeta('k')).toBe('v1');
    await b.setMeta('k', 'v2');
    expect(await a.getMeta('k')).toBe('v2');
    const [x, y] = await Promise.all([a.getOrSetMeta('gatewayId', 'gw_a'), b.getOrSetMeta('gatewayId', 'gw_b')]);
    expect(x).toBe(y);
    expect(['gw_a', 'gw_b']).toContain(x);
    expect(await a.getOrSetMeta('gatewayId', 'gw_c')).toBe(x);
  });

  it('persists the gateway id: generated once and then stable, a configured id wins', async () => {
    const a = await fresh();
    const first = await persistedGatewayId(a, undefined, () => 'gw_gen1');
    expect(first).toBe('gw_gen1');
    expect(await persistedGatewayId(await instance(), undefined, () => 'gw_gen2')).toBe('gw_gen1');
    expect(await persistedGatewayId(a, 'gw_conf', () => 'gw_gen3')).toBe('gw_conf');
  });

  it('leases: one holder at a time, taken over by the same holder with a new token, renewed and released only by the take', async () => {
    const a = await fresh();
    const b = await instance();
    const first = await a.acquireLease('s1', 'inst_a', 60_000);
    expect(first).toMatch(/^inst_a#/);
    expect(await b.acquireLease('s1', 'inst_b', 60_000)).toBeUndefined();
    const token = await a.acquireLease('s1', 'inst_a', 60_000);
    expect(token).toMatch(/^inst_a#/);
    expect(token).not.toBe(first);
    expect(await b.getLease('s1')).toMatchObject({ holderId: 'inst_a', token });
    expect(await b.renewLease('s1', 'inst_b', 60_000)).toBe(false);
    expect(await b.releaseLease('s1', 'inst_b')).toBe(false);
    // the earlier take of the same holder is over: neither renewed nor released by its token
    expect(await a.renewLease('s1', first!, 60_000)).toBe(false);
    expect(await a.releaseLease('s1', first!)).toBe(false);
    expect((await a.getLease('s1'))?.holderId).toBe('inst_a');
    expect(await a.renewLease('s1', token!, 120_000)).toBe(true);
    expect(await a.getLease('s1')).toMatchObject({ token });
    expect((await a.getLease('s1'))?.expiresAt).toBeGreaterThan(Date.now() + 60_000);
    expect(await a.acquireLease('s2', 'inst_b', 60_000)).toMatch(/^inst_b#/); // per session
    expect(await a.releaseLease('s1', token!)).toBe(true);
    expect(await a.getLease('s1')).toBeUndefined();
    expect(await b.acquireLease('s1', 'inst_b', 60_000)).toMatch(/^inst_b#/);
  });

  it("a crashed holder's lease expires after its ttl and lets another holder in", async () => {
    const a = await fresh();
    const b = await instance();
    const ttl = 1500;
    const gone = await a.acquireLease('s1', 'inst_a', ttl);
    expect(gone).toMatch(/^inst_a#/);
    expect(await b.acquireLease('s1', 'inst_b', ttl)).toBeUndefined();
    const acquiredBy = Date.now();
    await a.close(); // the holder goes away without releasing
    await waitFor(async () => (await b.getLease('s1')) === undefined, 'the lease to expire', ttl + 1000, 50);
    expect(Date.now() - acquiredBy, 'not before its ttl').toBeGreaterThanOrEqual(ttl - 100);
    expect(await b.getLease('s1')).toBeUndefined();
    expect(await b.acquireLease('s1', 'inst_b', 60_000)).toMatch(/^inst_b#/);
    expect(await b.renewLease('s1', gone!, 60_000)).toBe(false);
    expect(await b.releaseLease('s1', gone!)).toBe(false);
    expect((await b.getLease('s1'))?.holderId).toBe('inst_b');
  });

  it('publish reaches subscribers on another instance, per channel, until unsubscribed', async () => {
    const a = await fresh();
    const b = await instance();
    const cancel = await nextMessage(b, 'cancel');
    const own = await nextMessage(a, 'cancel');
    await a.publish('cancel', { sessionId: 's1', turnId: 't1' });
    expect(await cancel.msg).toEqual({ sessionId: 's1', turnId: 't1' });
    expect(await own.msg).toEqual({ sessionId: 's1', turnId: 't1' });

    // after unsubscribing, a message on that channel is not delivered: a later one on another channel of the
    // same subscriber arrives, and delivery is in order, so the first would have come before it.
    const got: unknown[] = [];
    const off = await b.subscribe('cancel', (m) => got.push(m));
    await cancel.off();
    await off();
    const other = await nextMessage(b, 'other');
    await a.publish('cancel', 'late');
    await a.publish('other', 'marker');
    expect(await other.msg).toBe('marker');
    expect(got).toEqual([]);
  });
});

describe('SqliteStore specifics', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-sqlite-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('creates missing folders, uses WAL, applies versioned migrations once', async () => {
    const path = join(dir, 'nested', 'deeper', 'switchyard.db');
    const s1 = new SqliteStore({ path });
    expect(s1.migrations()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await s1.close();
    const s2 = new SqliteStore({ path });
    expect(s2.migrations()).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    await s2.close();
    const db = new Database(path, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.prepare('SELECT count(*) AS n FROM schema_migrations').get()).toEqual({ n: 8 });
    db.close();
  });

  it('refuses a database written by a newer Switchyard', async () => {
    const path = join(dir, 'newer.db');
    await new SqliteStore({ path }).close();
    const db = new Database(path);
    db.prepare("INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'future', 0)").run();
    db.close();
    expect(() => new SqliteStore({ path })).toThrow(/schema version 99/);
  });
});

describe('RedisStore specifics', () => {
  let server: RedisServer;
  beforeAll(async () => void (server = await startRedis()));
  afterAll(() => server.stop());

  it('prefixes isolate stores sharing one Redis', async () => {
    const a = await openStore({ kind: 'redis', url: server.url, prefix: 'one:' });
    const b = await openStore({ kind: 'redis', url: server.url, prefix: 'two:' });
    await a.create(sample('s1'));
    expect(await b.get('s1')).toBeUndefined();
    expect(await b.list()).toEqual([]);
    await Promise.all([a.close(), b.close()]);
  });

  it('fails to open when Redis is unreachable', async () => {
    const dead = await startRedis();
    await dead.stop();
    await expect(openStore({ kind: 'redis', url: dead.url })).rejects.toThrow();
  });
});
