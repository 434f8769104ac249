/**
 * SessionStore.list pages by keyset (`after`: the last session of the previous page), in one order on both stores:
 * most recently updated first, ties by id, greatest first as bytes. Before, `list` had no position to start from
 * (`GET /admin/sessions` could show the first page only), the two stores broke ties in opposite orders (SQLite by id
 * ascending, Redis by id descending), SQLite sorted every row past its (updated_at) index for the id, and Redis read
 * its whole index (and, with a status filter, every session's status field) for each call. listMarked in SQLite read
 * every row's metadata. On both stores (real SQLite, real redis-server).
 */
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { newSession, type Session } from '../../src/sessions/model.js';
import type { ListOptions, SessionPosition, SessionStore } from '../../src/sessions/store.js';
import { SqliteStore } from '../../src/sessions/sqlite-store.js';
import { bothStores } from './fixtures/both-stores.js';
import { inListOrder } from './fixtures/list-order.js';

const { backends, stores, redisUrl } = bothStores('lp');
const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'm' };
const T0 = Date.parse('2026-01-01T00:00:00Z');

interface Spec {
  id: string;
  updatedAt: number;
  status?: Session['status'];
}

async function seeded(open: () => Promise<SessionStore>, specs: readonly Spec[]): Promise<SessionStore> {
  const store = await open();
  stores.push(store);
  for (const s of specs)
    await store.create({ ...newSession({ id: s.id, kind: 'chat', ownerGatewayId: 'gw_lp', target }, s.updatedAt), status: s.status ?? 'active' });
  return store;
}

const positionOf = (s: Session): SessionPosition => ({ updatedAt: s.updatedAt, id: s.id });

/** Page after page as GET /admin/sessions reads them (`limit` + 1 asked, the last listed the next position). */
async function pages(store: SessionStore, limit: number, opts: ListOptions = {}, between?: (page: number) => Promise<void>): Promise<string[][]> {
  const out: string[][] = [];
  for (let after: SessionPosition | undefined; ;) {
    const list = await store.list({ ...opts, limit: limit + 1, ...(after ? { after } : {}) });
    const page = list.slice(0, limit);
    out.push(page.map((s) => s.id));
    if (list.length <= limit) return out;
    // a list that does not move on would page for ever
    if (out.length > 1000) throw new Error(`more than 1000 pages: ${JSON.stringify(out.slice(0, 3))}`);
    after = positionOf(page[page.length - 1]!);
    await between?.(out.length);
  }
}

/**
 * 157 sessions over 13 milliseconds (about a dozen updated in each), ids of every kind of byte (upper and lower case,
 * digits, punctuation, accents, CJK), created in no particular order.
 */
const ODD_IDS = ['A', 'a', 'Z', 'z', '0', '9', 'a-b', 'a_b', 'a.b', 'é', 'e', 'ü-1', '日本', 'Ω', '~', ' x'];
const MANY: Spec[] = Array.from({ length: 157 }, (_, i): Spec => {
  const k = (i * 61) % 157;
  return { id: k < ODD_IDS.length ? ODD_IDS[k]! : `s-${k}`, updatedAt: T0 + (k % 13) * 1000, status: k % 3 === 0 ? 'closed' : 'active' };
});

describe.each(backends)('SessionStore.list pages: $name', (b) => {
  it('page after page lists every session exactly once, in one order: newest first, ties by id, greatest first as bytes', async () => {
    const store = await seeded(b.open, MANY);
    const expected = inListOrder(MANY);
    expect((await store.list()).map((s) => s.id)).toEqual(expected);
    const read = await pages(store, 10);
    expect(read.map((p) => p.length)).toEqual([...Array<number>(15).fill(10), 7]);
    expect(read.flat()).toEqual(expected);
    expect((await pages(store, 1)).flat()).toEqual(expected);
    expect((await pages(store, 156)).flat()).toEqual(expected);
    // the same order every time it is asked
    expect((await pages(store, 13)).flat()).toEqual(expected);
    // a position no session holds, just past each session's own (its id and a \u0001: greater by one byte), is just
    // before that session: ties compared byte by byte, multi-byte ids too (Redis: in its script)
    const firsts: string[] = [];
    for (const s of MANY) firsts.push((await store.list({ limit: 1, after: { updatedAt: s.updatedAt, id: `${s.id}\u0001` } }))[0]!.id);
    expect(firsts).toEqual(MANY.map((s) => s.id));
  });

  it('a status filter combines with the position: each page of that status only, every one of them once', async () => {
    const store = await seeded(b.open, MANY);
    for (const status of ['closed', 'active'] as const) {
      const expected = inListOrder(MANY.filter((s) => s.status === status));
      const read = await pages(store, 7, { status });
      expect(read.flat()).toEqual(expected);
      expect(read.slice(0, -1).every((p) => p.length === 7)).toBe(true);
    }
    expect((await pages(store, 5, { status: 'running' })).flat()).toEqual([]);
  });

  it('a position no session holds any more (updated, deleted, never was) still places the page', async () => {
    // twenty sessions updated in one millisecond, ten older ones each in its own
    const specs: Spec[] = [
      ...Array.from({ length: 20 }, (_, i) => ({ id: `t-${String(i).padStart(2, '0')}`, updatedAt: T0 + 50_000 })),
      ...Array.from({ length: 10 }, (_, i) => ({ id: `o-${i}`, updatedAt: T0 + i * 1000 })),
    ];
    const store = await seeded(b.open, specs);
    const first = await store.list({ limit: 8 });
    expect(first.map((s) => s.id)).toEqual(['t-19', 't-18', 't-17', 't-16', 't-15', 't-14', 't-13', 't-12']);
    const cursor = positionOf(first[7]!);
    // the cursor's own session is updated (it moves to the front) and the next one is deleted
    const t12 = (await store.get('t-12'))!;
    await store.update({ ...t12, metadata: { touched: true } }, t12.version);
    expect(await store.delete('t-11')).toBe(true);
    expect((await store.list({ limit: 8, after: cursor })).map((s) => s.id)).toEqual(['t-10', 't-09', 't-08', 't-07', 't-06', 't-05', 't-04', 't-03']);
    // between two ids of the same millisecond, and past the last of them
    expect((await store.list({ limit: 3, after: { updatedAt: T0 + 50_000, id: 't-15x' } })).map((s) => s.id)).toEqual(['t-15', 't-14', 't-13']);
    expect((await store.list({ limit: 3, after: { updatedAt: T0 + 50_000, id: 't-00' } })).map((s) => s.id)).toEqual(['o-9', 'o-8', 'o-7']);
    expect((await store.list({ limit: 3, after: { updatedAt: T0 + 7500, id: 'zzz' } })).map((s) => s.id)).toEqual(['o-7', 'o-6', 'o-5']);
    expect(await store.list({ after: { updatedAt: T0 - 1, id: 'o-0' } })).toEqual([]);
  });

  it('a session updated while the pages are read moves to the front: listed once if it was listed already, not in this pass if not', async () => {
    const specs = Array.from({ length: 30 }, (_, i) => ({ id: `u-${String(i).padStart(2, '0')}`, updatedAt: T0 + i * 1000 }));
    const store = await seeded(b.open, specs);
    const touch = async (id: string) => {
      const s = (await store.get(id))!;
      await store.update({ ...s, metadata: { touched: true } }, s.version);
    };
    const read = await pages(store, 10, {}, async (page) => {
      if (page !== 1) return;
      await touch('u-25'); // listed on page 1
      await touch('u-05'); // on page 3, not read yet
    });
    expect(read.flat()).toEqual(inListOrder(specs).filter((id) => id !== 'u-05'));
    // a new listing has them first
    expect((await store.list({ limit: 2 })).map((s) => s.id).sort()).toEqual(['u-05', 'u-25']);
  });
});

describe('SqliteStore reads the list and the marked records from indexes', () => {
  it('a page past a position is a range of the (status,) updated_at, id index, with no sort; listMarked reads its partial index', async () => {
    const sqlite = backends.find((x) => x.name === 'sqlite')!;
    const store = (await seeded(sqlite.open, MANY)) as SqliteStore;
    const after = { updatedAt: T0 + 6000, id: 's-50' };
    await store.list({ limit: 11, after });
    await store.list({ status: 'active', limit: 11, after });
    await store.listMarked('transfer');
    await store.listMarked('pendingPermissions');
    // the statements the store ran (it prepares each once, by its text), and SQLite's plan of each
    const internals = store as unknown as { stmts: Map<string, unknown>; db: { prepare(sql: string): { all(p: object): Array<{ detail: string }> } } };
    const plan = (sql: string) =>
      internals.db
        .prepare(`EXPLAIN QUERY PLAN ${sql}`)
        .all({ limit: 1, status: 'active', afterUpdatedAt: 1, afterId: 'x' })
        .map((r) => r.detail)
        .join(' | ');
    const ran = [...internals.stmts.keys()];
    const lists = ran.filter((sql) => sql.includes('ORDER BY updated_at')).map(plan);
    expect(lists).toEqual([
      'SEARCH sessions USING INDEX sessions_listed ((updated_at,id)<(?,?))',
      'SEARCH sessions USING INDEX sessions_status_listed (status=? AND (updated_at,id)<(?,?))',
    ]);
    const marked = ran.filter((sql) => sql.includes('metadata,') && sql.includes('WHERE json_')).map(plan);
    expect(marked).toEqual(['SCAN sessions USING INDEX sessions_marked_transfer', 'SCAN sessions USING INDEX sessions_marked_permissions']);
  });
});

describe('RedisStore reads the index from the position on', () => {
  it('a page of one status past a position reads a few status fields and only the records it lists, of 1200 sessions', async () => {
    const redis = backends.find((x) => x.name === 'redis')!;
    const specs = Array.from({ length: 1200 }, (_, i): Spec => ({
      id: `r-${String(i).padStart(4, '0')}`,
      updatedAt: T0 + i * 10,
      status: i % 2 ? 'active' : 'closed',
    }));
    const store = await seeded(redis.open, specs);
    const raw = new Redis(redisUrl());
    try {
      const stat = async (): Promise<Record<string, number>> => {
        const info = await raw.info('commandstats');
        return Object.fromEntries([...info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)].map((m) => [m[1]!, Number(m[2])]));
      };
      await raw.config('RESETSTAT');
      const page = await store.list({ status: 'active', limit: 11, after: { updatedAt: T0 + 6000, id: 'r-0600' } });
      const calls = await stat();
      expect(page.map((s) => s.id)).toEqual(inListOrder(specs.filter((s) => s.status === 'active' && s.updatedAt < T0 + 6000)).slice(0, 11));
      // the 11 records listed, each read by one GET script (its HMGET, and one HGET of the store's epoch)
      expect(calls.hmget).toBe(11);
      // one chunk of the index, 50 ids, and their status fields
      expect(calls.hget).toBeLessThanOrEqual(50 + 11);
    } finally {
      raw.disconnect();
    }
  });
});
