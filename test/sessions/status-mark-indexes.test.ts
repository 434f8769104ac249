/**
 * countByStatus, list({ status }) and listMarked answer from indexes on both stores. Redis read its whole `sessions`
 * index for each: countByStatus then every session's status field (a /metrics scrape of a store of 100,000 sessions
 * made 100,000 HGETs), listMarked a script over every record's doc, and a status filter walked the index reading
 * status fields until its page filled (a rare status: the whole index). It keeps one sorted set a status
 * (`sessions:st:<status>`, by the last update) and one set a mark (`sessions:mark:<mark>`), written by the same
 * script as the record (key schema 3), and builds them from the records when it opens keys of an older schema.
 * Real SQLite, real redis-server.
 */
import { describe, expect, it, vi } from 'vitest';
import { Redis } from 'ioredis';
import { adoptTransferred, closeSession, markMoved, newSession, type Session, type SessionStatus } from '../../src/sessions/model.js';
import { mutateSession, SESSION_MARKS, type SessionMark, type SessionStore } from '../../src/sessions/store.js';
import { RedisStore } from '../../src/sessions/redis-store.js';
import { openStore } from '../../src/sessions/open-store.js';
import { REINDEX } from '../../src/sessions/redis-scripts.js';
import { bothStores } from './fixtures/both-stores.js';
import { inListOrder } from './fixtures/list-order.js';

const { backends, stores, redisUrl } = bothStores('ix');
const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'm' };
const STATUSES: SessionStatus[] = ['active', 'running', 'closed', 'moved'];
const MARKS = Object.keys(SESSION_MARKS) as SessionMark[];
const DAY = 86_400_000;

const transferMark = { transfer: { id: 'tx_1', state: 'offering', peer: 'gw_p', since: 1 } };
const promptMark = { pendingPermissions: [{ requestId: 'perm-1', holder: 'h' }] };

function session(id: string, metadata: Session['metadata'] = {}, status: SessionStatus = 'active', updatedAt = Date.now()): Session {
  return { ...newSession({ id, kind: 'chat', ownerGatewayId: 'gw_ix', target, metadata }, updatedAt), status };
}

async function opened(open: () => Promise<SessionStore>): Promise<SessionStore> {
  const store = await open();
  stores.push(store);
  return store;
}

/** Every answer of the indexed reads, against what the records (the whole list) say. */
async function expectIndexedReadsRight(store: SessionStore): Promise<void> {
  const all = await store.list();
  const counts = Object.fromEntries(STATUSES.map((st) => [st, all.filter((s) => s.status === st).length]));
  expect(await store.countByStatus()).toEqual(counts);
  for (const status of STATUSES) {
    const expected = inListOrder(all.filter((s) => s.status === status));
    expect((await store.list({ status })).map((s) => s.id)).toEqual(expected);
    // paged two at a time from each page's last session
    const paged: string[] = [];
    for (let after: Session | undefined; ;) {
      const page = await store.list({ status, limit: 2, ...(after ? { after } : {}) });
      paged.push(...page.map((s) => s.id));
      if (page.length < 2) break;
      after = page[1];
    }
    expect(paged).toEqual(expected);
  }
  for (const mark of MARKS) {
    expect((await store.listMarked(mark)).map((s) => s.id).sort()).toEqual(
      all
        .filter((s) => SESSION_MARKS[mark](s.metadata))
        .map((s) => s.id)
        .sort(),
    );
  }
  if (store instanceof RedisStore) await expectRedisIndexes(store, all);
}

/** The Redis keys themselves: each status's sorted set holds its sessions by their last update, each mark's set its ids. */
async function expectRedisIndexes(store: RedisStore, all: Session[]): Promise<void> {
  const raw = new Redis(redisUrl());
  try {
    for (const st of STATUSES) {
      const flat = await raw.zrange(`${store.prefix}sessions:st:${st}`, '0', '-1', 'WITHSCORES');
      const held = Object.fromEntries(flat.flatMap((v, i) => (i % 2 === 0 ? [[v, Number(flat[i + 1])]] : [])));
      expect(held).toEqual(Object.fromEntries(all.filter((s) => s.status === st).map((s) => [s.id, s.updatedAt])));
    }
    for (const mark of MARKS) {
      expect((await raw.smembers(`${store.prefix}sessions:mark:${mark}`)).sort()).toEqual(
        all
          .filter((s) => SESSION_MARKS[mark](s.metadata))
          .map((s) => s.id)
          .sort(),
      );
    }
  } finally {
    raw.disconnect();
  }
}

describe.each(backends)('counts, status lists and marked lists follow every write: $name', (b) => {
  it('create, status changes, marks set and cleared, close, moved, import, delete, deleteEndedBefore', async () => {
    const store = await opened(b.open);
    const old = Date.now() - 10 * DAY;
    for (let i = 0; i < 6; i++) await store.create(session(`plain-${i}`));
    await store.create(session('half-way', transferMark));
    await store.create(session('asking', promptMark, 'running'));
    await store.create(session('both', { ...transferMark, ...promptMark }));
    await store.create(session('old-closed', {}, 'closed', old));
    await store.create(session('old-moved', transferMark, 'moved', old));
    await store.create(session('old-active', {}, 'active', old));
    await expectIndexedReadsRight(store);

    // a turn starts and ends, a prompt is asked and answered, a marker is cleared
    await mutateSession(store, 'plain-0', (s) => ({ ...s, status: 'running' }));
    await mutateSession(store, 'plain-1', (s) => ({ ...s, status: 'running', metadata: promptMark }));
    await expectIndexedReadsRight(store);
    await mutateSession(store, 'plain-0', (s) => ({ ...s, status: 'active' }));
    await mutateSession(store, 'asking', (s) => ({ ...s, status: 'active', metadata: { pendingPermissions: [] } }));
    await mutateSession(store, 'both', (s) => ({ ...s, metadata: promptMark }));
    await expectIndexedReadsRight(store);

    // closed, moved away
    await mutateSession(store, 'plain-2', (s) => closeSession(s));
    await mutateSession(store, 'half-way', (s) => markMoved(s, 'gw_p'));
    await expectIndexedReadsRight(store);

    // imported: a new one (with a marker), and one that comes back (stored here as moved)
    await store.importTransferred('tr_new', adoptTransferred({ ...session('came', { ...transferMark }), ownerGatewayId: 'gw_p', version: 3 }, 'gw_ix'));
    const away = (await store.get('half-way'))!;
    await store.importTransferred('tr_back', adoptTransferred({ ...away, metadata: {}, version: 2 }, 'gw_ix'));
    // a retried import writes nothing
    await store.importTransferred('tr_back', adoptTransferred({ ...away, metadata: promptMark, version: 2 }, 'gw_ix'));
    await expectIndexedReadsRight(store);

    // deleted; the ended sessions last updated before the cut deleted (old-active kept)
    expect(await store.delete('both')).toBe(true);
    expect(await store.delete('plain-1')).toBe(true);
    await expectIndexedReadsRight(store);
    expect(await store.deleteEndedBefore(Date.now() - DAY)).toBe(2);
    await expectIndexedReadsRight(store);
    expect(await store.countByStatus()).toEqual({ active: 8, running: 0, closed: 1, moved: 0 });
    // an id used again after its deletion starts with no mark and its new status
    await store.create(session('both', {}, 'closed'));
    await expectIndexedReadsRight(store);
  });
});

describe.each(backends)('the indexes under concurrent writers: $name', (b) => {
  it('three instances changing the same sessions’ status and marks at once (compare-and-set, retried): the indexes end as the records', async () => {
    const first = await opened(b.open);
    for (let i = 0; i < 5; i++) await first.create(session(`c-${i}`));
    // Redis: two more instances on the same prefix; SQLite (one process): three writers on the one store
    const others =
      b.name === 'redis'
        ? await Promise.all([1, 2].map(() => opened(() => openStore({ kind: 'redis', url: redisUrl(), prefix: (first as RedisStore).prefix }))))
        : [first, first];
    const writers = [first, ...others];
    const flips: Array<Promise<Session>> = [];
    for (let round = 0; round < 12; round++)
      for (const [w, store] of writers.entries())
        flips.push(
          mutateSession(
            store,
            `c-${(round + w) % 5}`,
            (s) => ({
              ...s,
              status: STATUSES[(round + w) % 3]!,
              metadata: (round + w) % 2 ? { ...transferMark } : (round + w) % 3 ? { ...promptMark } : {},
            }),
            1000,
          ),
        );
    await Promise.all(flips);
    for (const store of writers) await expectIndexedReadsRight(store);
  });
});

describe('RedisStore reads what it returns, whatever the number of sessions', () => {
  it('countByStatus, listMarked and a rare status’s page send as many commands with 1,020 sessions as with 20', async () => {
    const redis = backends.find((x) => x.name === 'redis')!;
    const store = await opened(redis.open);
    const raw = new Redis(redisUrl());
    try {
      // the commands Redis ran for `op`, those run inside scripts included (INFO commandstats), without INFO's own
      const commands = async (op: () => Promise<unknown>): Promise<number> => {
        await raw.config('RESETSTAT');
        await op();
        const info = await raw.info('commandstats');
        return [...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].filter((m) => m[1] !== 'info').reduce((n, m) => n + Number(m[2]), 0);
      };
      const ops = {
        count: () => store.countByStatus(),
        transfer: () => store.listMarked('transfer'),
        prompts: () => store.listMarked('pendingPermissions'),
        running: () => store.list({ status: 'running', limit: 10 }),
        runningPage: () => store.list({ status: 'running', limit: 10, after: { updatedAt: Date.now() + DAY, id: 'z' } }),
      };
      const measure = async (): Promise<Record<string, number>> => {
        const out: Record<string, number> = {};
        for (const [name, op] of Object.entries(ops)) {
          await op(); // the records' turn lists known to this process, as at the next call
          out[name] = await commands(op);
        }
        return out;
      };
      await store.create(session('marked', transferMark));
      await store.create(session('asking', promptMark, 'running'));
      await store.create(session('busy', {}, 'running'));
      for (let i = 0; i < 17; i++) await store.create(session(`few-${i}`, {}, i % 2 ? 'active' : 'closed'));
      const few = await measure();
      for (let i = 0; i < 1000; i += 50)
        await Promise.all(Array.from({ length: 50 }, (_, j) => store.create(session(`many-${i + j}`, {}, (i + j) % 2 ? 'active' : 'closed'))));
      expect(await store.countByStatus()).toEqual({ active: 509, running: 2, closed: 509, moved: 0 });
      expect((await store.list({ status: 'running', limit: 10 })).map((s) => s.id).sort()).toEqual(['asking', 'busy']);
      const many = await measure();
      expect(many).toEqual(few);
      // countByStatus: a ZCARD a status, in one MULTI
      expect(few.count).toBeLessThanOrEqual(2 + STATUSES.length);
    } finally {
      raw.disconnect();
    }
  });
});

describe('RedisStore opening keys of schema 2 builds the indexes once', () => {
  const redisOpen = () => openStore({ kind: 'redis', url: redisUrl(), prefix: `ixm${Math.random()}:` }) as Promise<RedisStore>;
  /** the keys as a Switchyard of key schema 2 left them: no index keys, `_schema` 2 */
  async function asSchema2(raw: Redis, prefix: string): Promise<void> {
    const keys = await raw.keys(`${prefix}sessions:*`);
    if (keys.length > 0) await raw.del(...keys);
    await raw.hset(`${prefix}meta`, '_schema', '2');
    await raw.hdel(`${prefix}meta`, '_reindex');
  }

  it('two instances opening together build them; the answers are those of the records, and schema 3 is set', async () => {
    const first = await redisOpen();
    const prefix = first.prefix;
    const raw = new Redis(redisUrl());
    try {
      // 1,234 sessions (more than a ZSCAN page and a batch), some of each status and mark
      for (let i = 0; i < 1234; i += 100)
        await Promise.all(
          Array.from({ length: Math.min(100, 1234 - i) }, (_, j) => {
            const n = i + j;
            const metadata = n % 97 === 0 ? transferMark : n % 89 === 0 ? promptMark : {};
            return first.create(session(`m-${n}`, metadata, STATUSES[n % 4], Date.now() - (n % 13) * 1000));
          }),
        );
      await first.close();
      await asSchema2(raw, prefix);
      const [a, b] = await Promise.all([1, 2].map(() => openStore({ kind: 'redis', url: redisUrl(), prefix }) as Promise<RedisStore>));
      stores.push(a!, b!);
      expect(await raw.hget(`${prefix}meta`, '_schema')).toBe('3');
      expect(await raw.hexists(`${prefix}meta`, '_reindex')).toBe(0);
      expect(await a!.countByStatus()).toEqual({ active: 309, running: 309, closed: 308, moved: 308 });
      expect((await a!.listMarked('transfer')).length).toBe(13);
      expect((await b!.listMarked('pendingPermissions')).length).toBe(13);
      await expectIndexedReadsRight(a!);
      await expectIndexedReadsRight(b!);
    } finally {
      raw.disconnect();
    }
  });

  it('an open that stopped half-way is done again by the next; a newer schema is refused', async () => {
    const store = await redisOpen();
    stores.push(store);
    const prefix = store.prefix;
    for (let i = 0; i < 30; i++) await store.create(session(`h-${i}`, i === 3 ? promptMark : {}, i % 3 ? 'active' : 'closed'));
    const raw = new Redis(redisUrl());
    try {
      // a migration that raised the version and stopped before its end: `_reindex` still set, the indexes partial
      await asSchema2(raw, prefix);
      await raw.hset(`${prefix}meta`, '_schema', '3', '_reindex', '1');
      await raw.zadd(`${prefix}sessions:st:running`, 1, 'h-1');
      const again = await openStore({ kind: 'redis', url: redisUrl(), prefix });
      stores.push(again);
      expect(await raw.hexists(`${prefix}meta`, '_reindex')).toBe(0);
      // h-1 was never running: a status index that drifted is put right (the record's status wins)
      expect(await again.countByStatus()).toEqual({ active: 20, running: 0, closed: 10, moved: 0 });
      await expectIndexedReadsRight(again);
      await raw.hset(`${prefix}meta`, '_schema', '4');
      await expect(openStore({ kind: 'redis', url: redisUrl(), prefix })).rejects.toThrow(/schema version 4, newer than this Switchyard \(3\)/);
    } finally {
      raw.disconnect();
    }
  });

  it('a record written while the indexes are built keeps the indexes of what was written, not of what the build read', async () => {
    const store = await redisOpen();
    stores.push(store);
    const writer = await openStore({ kind: 'redis', url: redisUrl(), prefix: store.prefix });
    stores.push(writer);
    await store.create(session('unmarked-later', transferMark));
    await store.create(session('closed-later', {}, 'active'));
    await store.create(session('again', promptMark)); // deleted and created again, at version 1, without its mark
    await store.create(session('gone', promptMark));
    await store.create(session('still', transferMark, 'running'));
    const raw = new Redis(redisUrl());
    try {
      await asSchema2(raw, store.prefix);
      // the writes land after the build read the records, before its script indexes them
      const conn = (store as unknown as { redis: Redis }).redis;
      const real = conn.eval.bind(conn) as (...args: unknown[]) => Promise<unknown>;
      let scripts = 0;
      const spy = vi.spyOn(conn, 'eval').mockImplementation(async (...args: unknown[]) => {
        if (args[0] === REINDEX && scripts++ === 0) {
          await mutateSession(writer, 'unmarked-later', (s) => ({ ...s, metadata: {} }));
          await mutateSession(writer, 'closed-later', (s) => closeSession(s));
          await writer.delete('again');
          await writer.create(session('again', {}));
          await writer.delete('gone');
        }
        return real(...args);
      });
      try {
        await (store as unknown as { checkSchema(): Promise<void> }).checkSchema();
      } finally {
        spy.mockRestore();
      }
      expect(scripts).toBe(1);
      expect(await store.listMarked('transfer')).toMatchObject([{ id: 'still' }]);
      expect(await store.listMarked('pendingPermissions')).toEqual([]);
      expect(await store.countByStatus()).toEqual({ active: 2, running: 1, closed: 1, moved: 0 });
      await expectIndexedReadsRight(store);
    } finally {
      raw.disconnect();
    }
  });
});
