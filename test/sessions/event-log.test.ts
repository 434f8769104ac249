/** The session update log (resume after a disconnect, issue 12 item 7): the same behaviour on SQLite and Redis. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';

const tmp = mkdtempSync(join(tmpdir(), 'sy-events-'));
let redis: RedisServer | undefined;
const stores: SessionStore[] = [];
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const backends = [
  { name: 'sqlite', open: () => openStore({ kind: 'sqlite', path: join(tmp, `e${Math.random()}.db`) }) },
  { name: 'redis', open: () => openStore({ kind: 'redis', url: (redis as RedisServer).url, prefix: `ev${Math.random()}:` }) },
];

describe.each(backends)('session event log: $name', (b) => {
  it('reads what came after a seq, oldest first, bounded; keeps only the newest entries; drops them with the session', async () => {
    const store = await b.open();
    stores.push(store);
    const ev = (seq: number) => ({ seq, event: { seq, type: 'delta', delta: `piece ${seq}` } });
    await store.appendEvents('s1', [1, 2, 3].map(ev), 10);
    await store.appendEvents('s1', [4, 5].map(ev), 10);
    await store.appendEvents('other', [1].map(ev), 10);
    expect((await store.readEvents('s1', 0, 100)).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(await store.readEvents('s1', 3, 100)).toEqual([ev(4), ev(5)]);
    expect((await store.readEvents('s1', 1, 2)).map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.readEvents('s1', 5, 100)).toEqual([]);
    expect(await store.readEvents('nobody', 0, 100)).toEqual([]);

    await store.appendEvents('s1', [6, 7, 8].map(ev), 4);
    expect((await store.readEvents('s1', 0, 100)).map((e) => e.seq)).toEqual([5, 6, 7, 8]);
    // equal payloads at different seqs stay distinct entries
    await store.appendEvents(
      'same',
      [
        { seq: 1, event: { x: 1 } },
        { seq: 2, event: { x: 1 } },
      ],
      10,
    );
    expect((await store.readEvents('same', 0, 10)).map((e) => e.seq)).toEqual([1, 2]);

    await store.delete('s1');
    expect(await store.readEvents('s1', 0, 100)).toEqual([]);
    expect((await store.readEvents('other', 0, 100)).map((e) => e.seq)).toEqual([1]);
  });

  it('keeps at most maxBytes of JSON per session, the oldest going first (never the newest), and says through which seq it dropped', async () => {
    const store = await b.open();
    stores.push(store);
    // each entry's JSON is 1000 bytes: {"x":"…"} with 992 characters
    const big = (seq: number) => ({ seq, event: { x: 'y'.repeat(992) } });
    expect(Buffer.byteLength(JSON.stringify(big(1).event))).toBe(1000);
    expect(await store.droppedThrough('b1')).toBe(0);
    await store.appendEvents('b1', [1, 2, 3].map(big), 100, 2500);
    expect((await store.readEvents('b1', 0, 100)).map((e) => e.seq)).toEqual([2, 3]);
    expect(await store.droppedThrough('b1')).toBe(1);
    // the JSON the writer already made is stored as it is
    await store.appendEvents('b1', [{ seq: 4, event: { x: 'y'.repeat(992) }, json: JSON.stringify({ x: 'z'.repeat(992) }) }], 100, 2500);
    expect(await store.readEvents('b1', 3, 100)).toEqual([{ seq: 4, event: { x: 'z'.repeat(992) } }]);
    expect(await store.droppedThrough('b1')).toBe(2);
    // one entry larger than the bound is still kept (the newest always is); all before it go
    await store.appendEvents('b1', [{ seq: 5, event: { x: 'y'.repeat(5000) } }], 100, 2500);
    expect((await store.readEvents('b1', 0, 100)).map((e) => e.seq)).toEqual([5]);
    expect(await store.droppedThrough('b1')).toBe(4);
    // the count bound drops too, and says so
    await store.appendEvents('b1', [6, 7, 8].map(big), 2, 1_000_000);
    expect((await store.readEvents('b1', 0, 100)).map((e) => e.seq)).toEqual([7, 8]);
    expect(await store.droppedThrough('b1')).toBe(6);
    expect(await store.droppedThrough('nobody')).toBe(0);
    await store.delete('b1');
    expect(await store.droppedThrough('b1')).toBe(0);
  });
});
