/**
 * The resume replay (UpdateLog.follow) paced by its reader, on a real SQLite store: the replay waits while the
 * reader holds too much (the WebSocket resume's drain), and the live updates that come meanwhile reach it
 * after the replay, each once and in order, also when more of them come than it holds in memory, by count or by
 * bytes (the rest is read from the log). The socket side is tested end to end in regression-slow-stream-client.e2e.test.ts.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { UpdateLog, type ReplayFlow } from '../../src/acp/update-log.js';
import { memoryLogger } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';

const tmp = mkdtempSync(join(tmpdir(), 'sy-follow-'));
const stores: SessionStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  rmSync(tmp, { recursive: true, force: true });
});

const update = (seq: number) => ({ sessionId: 's1', seq, type: 'delta', delta: `piece ${seq}` });

/** A reader that takes one update, then holds the replay until `release()`; `gone` once it says so. */
function gatedReader() {
  let open: (() => void) | undefined;
  const gate = new Promise<void>((r) => (open = r));
  let released = false;
  let left = false;
  const got: number[] = [];
  const flow: ReplayFlow = {
    wait: () => (released ? undefined : gate),
    gone: () => left,
  };
  return {
    got,
    flow,
    push: (p: Record<string, unknown>) => void got.push(p.seq as number),
    release() {
      released = true;
      open!();
    },
    leave() {
      left = true;
      open!();
    },
  };
}

async function logWith(n: number): Promise<UpdateLog> {
  const store = await openStore({ kind: 'sqlite', path: join(tmp, `f${Math.random()}.db`) });
  stores.push(store);
  const log = new UpdateLog(store, memoryLogger().logger);
  for (let seq = 1; seq <= n; seq++) log.push('s1', update(seq));
  await log.flushAll();
  return log;
}

describe('a resume replay paced by its reader', () => {
  it('waits while the reader holds too much; the live updates that came meanwhile follow, each once, in order', async () => {
    const log = await logWith(10);
    const r = gatedReader();
    const following = log.follow('s1', 0, r.push, r.flow);
    await expect.poll(() => r.got.length).toBe(1);
    for (let seq = 11; seq <= 20; seq++) log.push('s1', update(seq)); // live, while the replay waits: held
    expect(r.got).toEqual([1]);
    r.release();
    const stop = await following;
    for (let seq = 21; seq <= 25; seq++) log.push('s1', update(seq));
    expect(r.got).toEqual(Array.from({ length: 25 }, (_, i) => i + 1));
    stop();
  });

  it('more live updates than it holds (1000): the rest are read from the log; none missed, none twice', async () => {
    const log = await logWith(10);
    const r = gatedReader();
    const following = log.follow('s1', 0, r.push, r.flow);
    await expect.poll(() => r.got.length).toBe(1);
    for (let seq = 11; seq <= 1015; seq++) log.push('s1', update(seq)); // 1005 live: 5 past what it holds
    r.release();
    const stop = await following;
    for (let seq = 1016; seq <= 1020; seq++) log.push('s1', update(seq));
    expect(r.got).toEqual(Array.from({ length: 1020 }, (_, i) => i + 1));
    stop();
  });

  it("live updates past a page's bytes are not held for a reader that waits: they reach it from the log, none missed, none twice", async () => {
    // held by their count only (1000), twenty updates of 16 KiB each were all kept in memory for a reader that read
    // nothing: a thousand large ones held far more than the bytes its stream may hold
    const store = await openStore({ kind: 'sqlite', path: join(tmp, `f${Math.random()}.db`) });
    stores.push(store);
    /** every seq a read of the log returned */
    const fromLog: number[] = [];
    const reads = wrapStore(store, {
      readEvents: async (...args: Parameters<SessionStore['readEvents']>) => {
        const page = await store.readEvents(...args);
        fromLog.push(...page.events.map((e) => e.seq));
        return page;
      },
    });
    const pageBytes = 64 * 1024;
    const log = new UpdateLog(reads, memoryLogger().logger, undefined, pageBytes);
    for (let seq = 1; seq <= 10; seq++) log.push('s1', update(seq));
    await log.flushAll();
    const r = gatedReader();
    const following = log.follow('s1', 0, r.push, r.flow);
    await expect.poll(() => r.got.length).toBe(1);
    const big = (seq: number) => ({ ...update(seq), delta: 'x'.repeat(16 * 1024) });
    for (let seq = 11; seq <= 30; seq++) log.push('s1', big(seq)); // 320 KiB live, while the replay waits
    r.release();
    const stop = await following;
    expect(r.got).toEqual(Array.from({ length: 30 }, (_, i) => i + 1));
    // what was held fits in a page (three of them: the fourth would pass 64 KiB); the other 17 were read from the log
    const held = r.got.filter((seq) => seq > 10 && !fromLog.includes(seq));
    expect(held).toEqual([11, 12, 13]);
    stop();
  });

  it('a reader that leaves ends the replay; nothing more is pushed to it', async () => {
    const log = await logWith(10);
    const r = gatedReader();
    const following = log.follow('s1', 0, r.push, r.flow);
    await expect.poll(() => r.got.length).toBe(1);
    r.leave();
    const stop = await following;
    expect(r.got).toEqual([1]);
    stop();
    log.push('s1', update(11));
    expect(r.got).toEqual([1]);
  });
});
