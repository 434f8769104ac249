/**
 * Regression: `xworkmate.tasks.get` answered from the store lost a failed turn's code once the session had moved
 * on. The turn record kept only the error's text, and the code was read back from the turn's `task.failed` event,
 * which the session keeps among its last 100 task events only: some 50 later turns (two events each) pushed it
 * out, and the app got `status: "failed"` with no `code`. Now the record keeps the code beside the text
 * (`errorCode`), read first. Real gateway processes on a real SQLite file and a real redis-server, restarted so the
 * answer comes from the store. A store an older version wrote (turns without `errorCode`) still opens and answers
 * as before: from the turn's event while the session keeps it, else from the error's text.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { acpRpc, adminGet, spawnGateway, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startRedis } from '../sessions/fixtures/redis-server.js';
import { writeSchema5File } from '../sessions/fixtures/sqlite-schema-5.js';
import { TASK_EVENTS_KEEP, taskEventFields } from '../../src/acp/task-events.js';
import { INTERRUPTED_ERROR } from '../../src/acp/turn-failures.js';
import { appendTurn, newSession, newTurn, updateTurn, type Session } from '../../src/sessions/model.js';

const ACP = 'failure-code-kept-token-71c3';
// the redis-server is stopped after the gateways that use it
const { procs, track } = stopAfterAll();
type Json = any;

/** each completed turn adds two task events (task.started, task.completed): these push the failed turn's out */
const LATER_TURNS = TASK_EVENTS_KEEP / 2 + 1;

const CONFIG = {
  gateway: { id: 'gw_code_kept' },
  // a process's first request fails with a 400 (UPSTREAM_CLIENT_ERROR: a code no error text tells), every later one answers
  channels: [{ name: 'flaky', provider: 'mock', models: ['flaky-1'], options: { failFirst: 1, failStatus: 400 } }],
  acp: { tokens: [ACP], gateways: [{ id: 'flakygw', label: 'Flaky', kind: 'channels', model: 'flaky-1' }] },
};

const rpc = async (gw: GatewayProcess, method: string, params: Record<string, unknown>) => (await acpRpc(gw.url, ACP, method, params)).result;

async function failThenManyTurns(store: Record<string, unknown>): Promise<void> {
  const first = await startProcess({ ...CONFIG, store });
  procs.push(first);
  const sessionId = `code-kept-${Math.random().toString(36).slice(2, 8)}`;
  const failed = await rpc(first, 'session.start', { sessionId, taskPrompt: 'first', executionTarget: 'gateway', gatewayProviderId: 'flakygw' });
  expect(failed).toMatchObject({ status: 'failed', code: 'UPSTREAM_CLIENT_ERROR' });
  for (let i = 0; i < LATER_TURNS; i++)
    expect(await rpc(first, 'session.message', { sessionId, taskPrompt: `later ${i}` })).toMatchObject({ status: 'completed' });
  await first.stop();

  const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
  procs.push(second);
  const stored = await rpc(second, 'xworkmate.tasks.get', { runId: failed.runId });
  expect(stored.result).toBeUndefined(); // the store's answer, not a snapshot in memory
  expect(stored).toMatchObject({ status: 'failed', turnId: failed.turnId, error: failed.error, code: 'UPSTREAM_CLIENT_ERROR' });
  expect(await rpc(second, 'xworkmate.tasks.get', { sessionId, runId: failed.runId })).toMatchObject({ turnId: failed.turnId, code: 'UPSTREAM_CLIENT_ERROR' });

  // what the answer had to do without: the session's task events no longer hold the failed turn's
  const rec = (await adminGet(second.url, `/admin/sessions/${sessionId}`)).session;
  expect(rec.metadata.taskEvents).toHaveLength(TASK_EVENTS_KEEP);
  expect(rec.metadata.taskEvents.filter((e: Json) => e.turnId === failed.turnId)).toEqual([]);
  expect(rec.history).toHaveLength(1 + LATER_TURNS);
  expect(rec.history[0]).toMatchObject({ turnId: failed.turnId, status: 'failed', error: failed.error, errorCode: 'UPSTREAM_CLIENT_ERROR' });
  expect(rec.history.slice(1).every((t: Json) => t.status === 'completed' && t.errorCode === undefined)).toBe(true);
  await second.stop();
}

describe("a failed turn's code outlives the session's last 100 task events", () => {
  it('SQLite: tasks.get of the turn from the store, after 51 later turns and a restart', async () => {
    await failThenManyTurns({ kind: 'sqlite', path: './data/switchyard.db' });
  }, 60_000);

  it('Redis: the same', async () => {
    const redis = await startRedis();
    track({ close: () => redis.stop() });
    await failThenManyTurns({ kind: 'redis', url: redis.url, prefix: `code-kept-${Date.now()}:` });
  }, 60_000);
});

/** A failed turn as a version before `errorCode` stored it (its error's text only), with its `task.failed` event if `code`. */
function oldFailedSession(id: string, error: string, code?: string): { session: Session; turnId: string; runId: string } {
  const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'flakygw', model: '' };
  const turn = newTurn('old prompt', [], 1_000);
  const ids = { sessionId: id, threadId: id, turnId: turn.turnId };
  const events = code ? [{ ...ids, runId: turn.runId, seq: 2, ...taskEventFields('failed', ids, {}, { status: 'failed', code, error }) }] : [];
  const s = newSession({ id, kind: 'chat', ownerGatewayId: 'gw_code_kept', target, metadata: { source: 'acp', seq: 3, taskEvents: events } }, 1_000);
  const session = { ...updateTurn(appendTurn(s, turn, 1_000), turn.turnId, { status: 'failed', error }, 2_000), version: 2 };
  return { session, turnId: turn.turnId, runId: turn.runId };
}

/**
 * Three failed turns as an older version left them, and a gateway started on that store: each old failure is
 * answered as before (from its event, from its text, or without a code when neither tells), and the next failure of
 * an old session is stored with its code beside the old turn, which stays as it was.
 */
async function openOldStore(store: Record<string, unknown>, writeOld: (sessions: Session[]) => Promise<void>, dir = tmpDir('sy-code-kept-')): Promise<void> {
  const withEvent = oldFailedSession('old-event', 'upstream said no', 'UPSTREAM_SERVER_ERROR');
  const interrupted = oldFailedSession('old-interrupted', INTERRUPTED_ERROR);
  const eventGone = oldFailedSession('old-event-gone', 'upstream said no');
  await writeOld([withEvent.session, interrupted.session, eventGone.session]);

  const gw = await startProcess({ ...CONFIG, store }, {}, dir);
  procs.push(gw);
  const get = (params: Record<string, unknown>) => rpc(gw, 'xworkmate.tasks.get', params);
  expect(await get({ sessionId: 'old-event' })).toMatchObject({ status: 'failed', turnId: withEvent.turnId, code: 'UPSTREAM_SERVER_ERROR' });
  expect(await get({ sessionId: 'old-interrupted' })).toMatchObject({ status: 'failed', turnId: interrupted.turnId, code: 'TURN_INTERRUPTED' });
  const gone = await get({ sessionId: 'old-event-gone' });
  expect(gone).toMatchObject({ status: 'failed', turnId: eventGone.turnId, error: 'upstream said no' });
  expect(gone.code).toBeUndefined(); // nothing left to tell it, as before

  const next = await rpc(gw, 'session.message', { sessionId: 'old-event', taskPrompt: 'again' });
  expect(next).toMatchObject({ status: 'failed', code: 'UPSTREAM_CLIENT_ERROR' });
  const rec = (await adminGet(gw.url, '/admin/sessions/old-event')).session;
  expect(rec.history).toHaveLength(2);
  expect(rec.history[0]).toEqual(withEvent.session.history[0]);
  expect(rec.history[1]).toMatchObject({ turnId: next.turnId, status: 'failed', error: next.error, errorCode: 'UPSTREAM_CLIENT_ERROR' });
  expect(await get({ sessionId: 'old-event', runId: withEvent.runId })).toMatchObject({ turnId: withEvent.turnId, code: 'UPSTREAM_SERVER_ERROR' });
  await gw.stop();
}

describe('a store an older version wrote', () => {
  it('SQLite (schema 5: the turns inside the row) opens and migrates; old failures answer as before, the next one keeps its code', async () => {
    const dir = tmpDir('sy-code-kept-');
    const path = join(dir, 'old.db');
    await openOldStore({ kind: 'sqlite', path }, async (sessions) => writeSchema5File(path, sessions), dir);
    const db = new Database(path, { readonly: true });
    try {
      expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').all()).toEqual([1, 2, 3, 4, 5, 6, 7, 8].map((version) => ({ version })));
      expect(db.prepare("SELECT history FROM sessions WHERE id = 'old-event'").get()).toEqual({ history: '[]' });
    } finally {
      db.close();
    }
  }, 30_000);

  it('Redis (key schema 1: the turns inside the record): the same', async () => {
    const redis = await startRedis();
    track({ close: () => redis.stop() });
    const prefix = `code-kept-old-${Date.now()}:`;
    const raw = new Redis(redis.url);
    try {
      await openOldStore({ kind: 'redis', url: redis.url, prefix }, async (sessions) => {
        await raw.hset(`${prefix}meta`, '_schema', '1');
        for (const s of sessions) {
          await raw.hset(`${prefix}session:${s.id}`, 'v', String(s.version), 'st', s.status, 'doc', JSON.stringify(s));
          await raw.zadd(`${prefix}sessions`, s.updatedAt, s.id);
        }
      });
      expect(await raw.hget(`${prefix}meta`, '_schema')).toBe('3');
      expect(await raw.hlen(`${prefix}turns:old-event`)).toBe(2);
    } finally {
      raw.disconnect();
    }
  }, 30_000);
});
