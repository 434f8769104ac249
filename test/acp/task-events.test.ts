/**
 * Task events kept in the session record (src/acp/task-events.ts): the events of one moment go in one write,
 * made after that moment's work (a turn's prompt goes to its agent before), in order, none lost, and shutdown
 * waits for them. On a real SQLite store.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import { newSession } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { TaskEventStore } from '../../src/acp/task-events.js';
import { createLogger } from '../../src/util/log.js';

const tmp = mkdtempSync(join(tmpdir(), 'sy-task-events-'));
const stores: SessionStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  rmSync(tmp, { recursive: true, force: true });
});

/** A real store whose record writes are counted. */
async function countedStore(): Promise<{ store: SessionStore; writes: () => number }> {
  const store = await openStore({ kind: 'sqlite', path: join(tmp, `t${Math.random()}.db`) });
  stores.push(store);
  let n = 0;
  const update = store.update.bind(store);
  store.update = (s, v) => {
    n++;
    return update(s, v);
  };
  return { store, writes: () => n };
}

const session = (id: string) =>
  newSession({
    id,
    kind: 'agent',
    ownerGatewayId: 'gw_t',
    target: { executionTarget: 'agent', providerId: 'a', gatewayProviderId: '', model: '' },
    threadId: `th-${id}`,
  });
const phases = async (store: SessionStore, id: string) =>
  ((await store.get(id))?.metadata.taskEvents as Array<{ event: string }> | undefined)?.map((e) => e.event);

describe('task events in the session record', () => {
  it('writes the events of one moment in one write, after the work that raised them, in order', async () => {
    const { store, writes } = await countedStore();
    await store.create(session('s1'));
    const events = new TaskEventStore(store, createLogger());
    events.record('s1', { event: 'task.selected' });
    events.record('s1', { event: 'task.started' });
    // the work of this moment (the prompt on its way to the agent) runs before the write
    await Promise.resolve();
    await Promise.resolve();
    expect(writes()).toBe(0);
    await events.settled('s1');
    expect(writes()).toBe(1);
    expect(await phases(store, 's1')).toEqual(['task.selected', 'task.started']);

    events.record('s1', { event: 'task.completed' });
    await events.settled('s1');
    expect(writes()).toBe(2);
    expect(await phases(store, 's1')).toEqual(['task.selected', 'task.started', 'task.completed']);
  });

  it('an event recorded while a write is under way goes in the next write, none lost; settledAll waits for every session', async () => {
    const { store } = await countedStore();
    await store.create(session('a'));
    await store.create(session('b'));
    const events = new TaskEventStore(store, createLogger());
    events.record('a', { event: 'task.started' });
    // hold the first write until the next check phase has passed, then record while it is queued
    await new Promise<void>((r) => setImmediate(r));
    events.record('a', { event: 'task.completed' });
    events.record('b', { event: 'task.started' });
    await events.settledAll();
    expect(await phases(store, 'a')).toEqual(['task.started', 'task.completed']);
    expect(await phases(store, 'b')).toEqual(['task.started']);
  });
});
