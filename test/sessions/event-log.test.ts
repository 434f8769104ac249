/** The session update log (resume after a disconnect, issue 12 item 7): the same behaviour on SQLite and Redis. */
import { describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { openStore } from '../../src/sessions/open-store.js';
import { bothStores } from './fixtures/both-stores.js';

const { backends, stores, redisUrl } = bothStores('ev');

describe.each(backends)('session event log: $name', (b) => {
  it('reads what came after a seq, oldest first, bounded; keeps only the newest entries; drops them with the session', async () => {
    const store = await b.open();
    stores.push(store);
    const ev = (seq: number) => ({ seq, event: { seq, type: 'delta', delta: `piece ${seq}` } });
    await store.appendEvents('s1', [1, 2, 3].map(ev), 10);
    await store.appendEvents('s1', [4, 5].map(ev), 10);
    await store.appendEvents('other', [1].map(ev), 10);
    expect((await store.readEvents('s1', 0, 100)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect((await store.readEvents('s1', 3, 100)).events).toEqual([ev(4), ev(5)]);
    expect((await store.readEvents('s1', 1, 2)).events.map((e) => e.seq)).toEqual([2, 3]);
    expect((await store.readEvents('s1', 5, 100)).events).toEqual([]);
    expect((await store.readEvents('nobody', 0, 100)).events).toEqual([]);

    await store.appendEvents('s1', [6, 7, 8].map(ev), 4);
    expect((await store.readEvents('s1', 0, 100)).events.map((e) => e.seq)).toEqual([5, 6, 7, 8]);
    // equal payloads at different seqs stay distinct entries
    await store.appendEvents(
      'same',
      [
        { seq: 1, event: { x: 1 } },
        { seq: 2, event: { x: 1 } },
      ],
      10,
    );
    expect((await store.readEvents('same', 0, 10)).events.map((e) => e.seq)).toEqual([1, 2]);

    await store.delete('s1');
    expect((await store.readEvents('s1', 0, 100)).events).toEqual([]);
    expect((await store.readEvents('other', 0, 100)).events.map((e) => e.seq)).toEqual([1]);
  });

  it('keeps at most maxBytes of JSON per session, the oldest going first (never the newest), and says through which seq it dropped', async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is 1000 bytes: {"x":"…"} with 992 characters
    const big = (seq: number) => ({ seq, event: { x: 'y'.repeat(992) } });
    expect(Buffer.byteLength(JSON.stringify(big(1).event))).toBe(1000);
    expect(await store.droppedThrough('b1')).toBe(0);
    await store.appendEvents('b1', [1, 2, 3].map(big), 100, 2500);
    expect((await store.readEvents('b1', 0, 100)).events.map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.droppedThrough('b1')).toBe(1);
    // the JSON the writer already made is stored as it is
    await store.appendEvents('b1', [{ seq: 4, event: { x: 'y'.repeat(992) }, json: JSON.stringify({ x: 'z'.repeat(992) }) }], 100, 2500);
    expect((await store.readEvents('b1', 3, 100)).events).toEqual([{ seq: 4, event: { x: 'z'.repeat(992) } }]);
    expect(await store.droppedThrough('b1')).toBe(2);
    // one entry larger than the bound is still kept (the newest always is); all before it go
    await store.appendEvents('b1', [{ seq: 5, event: { x: 'y'.repeat(5000) } }], 100, 2500);
    expect((await store.readEvents('b1', 0, 100)).events.map((e) => e.seq)).toEqual([5]);
    expect(await store.droppedThrough('b1')).toBe(4);
    // the count bound drops too, and says so
    await store.appendEvents('b1', [6, 7, 8].map(big), 2, 1_000_000);
    expect((await store.readEvents('b1', 0, 100)).events.map((e) => e.seq)).toEqual([7, 8]);
    expect(await store.droppedThrough('b1')).toBe(6);
    expect(await store.droppedThrough('nobody')).toBe(0);
    await store.delete('b1');
    expect(await store.droppedThrough('b1')).toBe(0);
  });

  it('reads a page bounded by bytes as well as by count, at least one entry, and says whether the log holds more', async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is 1000 bytes; one of 5000 at seq 4
    const sized = (seq: number) => ({ seq, event: { x: 'y'.repeat(seq === 4 ? 4992 : 992) } });
    await store.appendEvents('p1', [1, 2, 3, 4, 5, 6].map(sized), 100);
    const seqs = async (after: number, limit: number, maxBytes?: number) => {
      const page = await store.readEvents('p1', after, limit, maxBytes);
      return [page.events.map((e) => e.seq), page.more];
    };
    expect(await seqs(0, 100, 2500)).toEqual([[1, 2], true]);
    expect(await seqs(0, 100, 2000)).toEqual([[1, 2], true]);
    expect(await seqs(0, 100, 1999)).toEqual([[1], true]);
    // an entry larger than the bound is a page by itself
    expect(await seqs(3, 100, 2500)).toEqual([[4], true]);
    expect(await seqs(2, 100, 2500)).toEqual([[3], true]);
    expect(await seqs(4, 100, 2500)).toEqual([[5, 6], false]);
    expect(await seqs(0, 2, 1_000_000)).toEqual([[1, 2], true]);
    expect(await seqs(0, 6, 1_000_000)).toEqual([[1, 2, 3, 4, 5, 6], false]);
    expect(await seqs(0, 100)).toEqual([[1, 2, 3, 4, 5, 6], false]);
    expect(await seqs(6, 100, 2500)).toEqual([[], false]);
    // the pages, read one after another, are the whole log in order
    const all: number[] = [];
    for (let after = 0, more = true; more;) {
      const page = await store.readEvents('p1', after, 100, 1500);
      all.push(...page.events.map((e) => e.seq));
      more = page.more;
      after = page.events.at(-1)?.seq ?? after;
    }
    expect(all).toEqual([1, 2, 3, 4, 5, 6]);
    expect((await store.readEvents('p1', 0, 100, 2500)).events[0]).toEqual(sized(1));
  });

  it("the log's bound and a page's bound count the same bytes, each entry's JSON (UTF-8), so both stores keep and page alike", async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is exactly 1000 bytes, 'é' being two of them
    const kb = (seq: number) => ({ seq, event: { x: 'é'.repeat(496) } });
    expect(Buffer.byteLength(JSON.stringify(kb(1).event))).toBe(1000);
    // a bound of exactly three entries keeps three, and a page of that bound is those three
    await store.appendEvents('c1', [7, 8, 9].map(kb), 100, 3000);
    expect((await store.readEvents('c1', 0, 100)).events.map((e) => e.seq)).toEqual([7, 8, 9]);
    expect(await store.droppedThrough('c1')).toBe(0);
    expect(await store.readEvents('c1', 0, 100, 3000)).toEqual({ events: [7, 8, 9].map(kb), more: false });
    // a byte more than the bound goes
    await store.appendEvents('c1', [{ seq: 10, event: { x: 'é'.repeat(496) + 'y' } }], 100, 3000);
    expect((await store.readEvents('c1', 0, 100)).events.map((e) => e.seq)).toEqual([9, 10]);
    expect(await store.droppedThrough('c1')).toBe(8);
    // dropThrough takes off what an entry counted, no more and no less: 2 and 3 (2000 bytes) are left, a third
    // entry fits a bound of 3000 exactly, and a fourth at 2999 takes two of them out
    await store.appendEvents('c2', [1, 2, 3].map(kb), 100, 3000);
    await store.dropThrough('c2', 1);
    await store.appendEvents('c2', [4].map(kb), 100, 3000);
    expect((await store.readEvents('c2', 0, 100)).events.map((e) => e.seq)).toEqual([2, 3, 4]);
    await store.appendEvents('c2', [5].map(kb), 100, 2999);
    expect((await store.readEvents('c2', 0, 100)).events.map((e) => e.seq)).toEqual([4, 5]);
    expect(await store.droppedThrough('c2')).toBe(3);
  });

  it('an entry appended again at a seq it holds replaces the one there: one entry a seq, counted once in both bounds', async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is 1000 bytes; `v` tells the versions of an entry apart
    const kb = (seq: number, v = 'a') => ({ seq, event: { x: v.repeat(992) } });
    await store.appendEvents(
      'r1',
      [1, 2, 3].map((s) => kb(s)),
      3,
      3000,
    );
    // a re-sent update: the later entry is the one read, and the log still holds three entries of 3000 bytes,
    // so neither the count bound (3) nor the byte bound (3000) drops anything
    await store.appendEvents('r1', [kb(3, 'b')], 3, 3000);
    await store.appendEvents('r1', [kb(2, 'b'), kb(2, 'c')], 3, 3000);
    expect((await store.readEvents('r1', 0, 100)).events).toEqual([kb(1), kb(2, 'c'), kb(3, 'b')]);
    expect(await store.droppedThrough('r1')).toBe(0);
    expect(await store.readNewestEvents('r1', 100, 3000)).toEqual({ events: [kb(1), kb(2, 'c'), kb(3, 'b')], before: 0 });
    // the same entry again changes nothing either
    await store.appendEvents('r1', [kb(1)], 3, 3000);
    expect((await store.readEvents('r1', 0, 100)).events.map((e) => e.seq)).toEqual([1, 2, 3]);
    expect(await store.droppedThrough('r1')).toBe(0);
    // a replacement counts its own size, not the old one's: 500 bytes less leaves room for a 1500-byte entry
    const small = { seq: 2, event: { x: 'd'.repeat(492) } };
    await store.appendEvents('r1', [small], 4, 3000);
    await store.appendEvents('r1', [{ seq: 4, event: { x: 'e'.repeat(492) } }], 4, 3000);
    expect((await store.readEvents('r1', 0, 100)).events.map((e) => e.seq)).toEqual([1, 2, 3, 4]);
    expect(await store.droppedThrough('r1')).toBe(0);
    // and one byte more than the bound drops the oldest, through seq 1 only
    await store.appendEvents('r1', [{ seq: 4, event: { x: 'e'.repeat(493) } }], 4, 3000);
    expect((await store.readEvents('r1', 0, 100)).events).toEqual([small, kb(3, 'b'), { seq: 4, event: { x: 'e'.repeat(493) } }]);
    expect(await store.droppedThrough('r1')).toBe(1);
    // a new seq given twice in one call is one entry too, the later one
    await store.appendEvents('r1', [kb(5), kb(5, 'b')], 4, 1_000_000);
    expect((await store.readEvents('r1', 3, 100)).events).toEqual([{ seq: 4, event: { x: 'e'.repeat(493) } }, kb(5, 'b')]);
    expect((await store.readEvents('r1', 0, 100)).events.map((e) => e.seq)).toEqual([2, 3, 4, 5]);
  });

  it('reads its newest entries, bounded by count and by bytes as a page is, and says the highest seq below them', async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is 1000 bytes; one of 5000 at seq 4; seqs with a gap (no 7)
    const sized = (seq: number) => ({ seq, event: { x: 'y'.repeat(seq === 4 ? 4992 : 992) } });
    await store.appendEvents('n1', [1, 2, 3, 4, 5, 6, 8].map(sized), 100);
    const newest = async (limit: number, maxBytes: number) => {
      const r = await store.readNewestEvents('n1', limit, maxBytes);
      return [r.events.map((e) => e.seq), r.before];
    };
    expect(await newest(100, 2500)).toEqual([[6, 8], 5]);
    expect(await newest(100, 3000)).toEqual([[5, 6, 8], 4]);
    expect(await newest(100, 2999)).toEqual([[6, 8], 5]);
    expect(await newest(2, 1_000_000)).toEqual([[6, 8], 5]);
    expect(await newest(100, 1_000_000)).toEqual([[1, 2, 3, 4, 5, 6, 8], 0]);
    expect(await newest(7, 1_000_000)).toEqual([[1, 2, 3, 4, 5, 6, 8], 0]);
    expect(await newest(100, 8000)).toEqual([[4, 5, 6, 8], 3]);
    // the newest is read whatever its size; none at all when the limit is 0
    expect(await newest(100, 10)).toEqual([[8], 6]);
    expect(await newest(0, 1_000_000)).toEqual([[], 8]);
    expect((await store.readNewestEvents('n1', 1, 10)).events).toEqual([sized(8)]);
    expect(await store.readNewestEvents('nobody', 100, 1000)).toEqual({ events: [], before: 0 });
    // more entries than one read of the store's takes at a time (Redis reads 32 at once)
    const small = (seq: number) => ({ seq, event: { n: seq } });
    await store.appendEvents(
      'n2',
      Array.from({ length: 100 }, (_, i) => small(i + 1)),
      1000,
    );
    const r = await store.readNewestEvents('n2', 70, 1_000_000);
    expect(r).toEqual({ events: Array.from({ length: 70 }, (_, i) => small(i + 31)), before: 30 });
  });

  it('says the highest seq it holds without reading the entries; dropThrough drops through a seq and raises droppedThrough, never lowers it', async () => {
    const store = await b.open();
    stores.push(store);
    const ev = (seq: number) => ({ seq, event: { text: 'z'.repeat(100) } });
    expect(await store.lastEventSeq('d1')).toBe(0);
    await store.appendEvents('d1', [3, 4, 5, 9].map(ev), 100);
    expect(await store.lastEventSeq('d1')).toBe(9);
    await store.dropThrough('d1', 4);
    expect((await store.readEvents('d1', 0, 100)).events.map((e) => e.seq)).toEqual([5, 9]);
    expect(await store.droppedThrough('d1')).toBe(4);
    await store.dropThrough('d1', 2);
    expect(await store.droppedThrough('d1')).toBe(4);
    expect((await store.readEvents('d1', 0, 100)).events.map((e) => e.seq)).toEqual([5, 9]);
    // on a log that never held an entry, and what the byte bound keeps afterwards counts only what is left
    await store.dropThrough('d2', 7);
    expect(await store.droppedThrough('d2')).toBe(7);
    expect(await store.lastEventSeq('d2')).toBe(0);
    // room for four entries and a little (less than a fifth)
    const room = 4 * Buffer.byteLength(JSON.stringify(ev(1).event)) + 20;
    await store.appendEvents('d1', [10, 11].map(ev), 100, room);
    expect((await store.readEvents('d1', 0, 100)).events.map((e) => e.seq)).toEqual([5, 9, 10, 11]);
    await store.appendEvents('d1', [12].map(ev), 100, room);
    expect((await store.readEvents('d1', 0, 100)).events.map((e) => e.seq)).toEqual([9, 10, 11, 12]);
    expect(await store.droppedThrough('d1')).toBe(5);
    await store.delete('d1');
    expect(await store.lastEventSeq('d1')).toBe(0);
    expect(await store.droppedThrough('d1')).toBe(0);
  });
});

describe('session event log: redis, a log written before its bound counted JSON only', () => {
  it("is counted once from its entries, not from the old count (which held each entry's `<seq> ` prefix too)", async () => {
    const prefix = `evold${Math.random()}:`;
    const store = await openStore({ kind: 'redis', url: redisUrl(), prefix });
    stores.push(store);
    const kb = (seq: number) => ({ seq, event: { x: 'y'.repeat(992) } });
    // as the previous code left it: its entries, and `b` counting `<seq> ` with each
    const raw = new Redis(redisUrl());
    try {
      await raw.zadd(`${prefix}events:o1`, 1, `1 ${JSON.stringify(kb(1).event)}`, 2, `2 ${JSON.stringify(kb(2).event)}`);
      await raw.hset(`${prefix}evmeta:o1`, 'b', 2004, 'd', 0);
      await store.appendEvents('o1', [3].map(kb), 100, 3000);
      expect((await store.readEvents('o1', 0, 100)).events.map((e) => e.seq)).toEqual([1, 2, 3]);
      expect(await raw.hgetall(`${prefix}evmeta:o1`)).toEqual({ j: '3000', d: '0' });
    } finally {
      raw.disconnect();
    }
  });
});
