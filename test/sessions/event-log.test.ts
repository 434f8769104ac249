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
});
