/**
 * Regression: on Redis, a retried transfer's duplicate import answered the stored record through a second read
 * (`get`) after the IMPORT script, not with it: a change between the two was answered instead (a deletion: the
 * retry failed with "transfer … was already used for another session"), in two round trips at least. Now the
 * script sends the record as it stored it, in the same call.
 *
 * A real redis-server. The change between the two is made on another connection right after the IMPORT script
 * answers (the store's connection is wrapped to do it before the store can send anything else).
 */
import { Redis } from 'ioredis';
import { describe, expect, it, vi } from 'vitest';
import { newSession, newTurn, type Session, type Turn } from '../../src/sessions/model.js';
import { openStore } from '../../src/sessions/open-store.js';
import { IMPORT } from '../../src/sessions/redis-scripts.js';
import { TransferConflictError, type SessionStore } from '../../src/sessions/store.js';
import { redisForFile } from './fixtures/redis-server.js';

const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };

function doneTurn(output: string): Turn {
  return { ...newTurn(`prompt of ${output}`, [{ role: 'user', content: `prompt of ${output}` }]), status: 'completed', output, endedAt: Date.now() };
}

function session(id: string, history: Turn[]): Session {
  return { ...newSession({ id, kind: 'chat', ownerGatewayId: 'gw_a', target }), history };
}

const redis = redisForFile();

async function open(prefix: string): Promise<SessionStore> {
  const store = await openStore({ kind: 'redis', url: redis.server.url, prefix });
  redis.stores.push(store);
  return store;
}

describe('a retried transfer (a duplicate import) on Redis', () => {
  it('answers the record the IMPORT script found, in that one call: a change right after it is not seen', async () => {
    const store = await open('dup-a:');
    const offered = { ...session('moving', [doneTurn('carried')]), version: 4 };
    const first = await store.importTransferred('tr_dup', offered);
    expect(first.duplicate).toBe(false);

    // the session is deleted here as soon as an IMPORT script has answered, before the store sends anything else
    const conn = (store as unknown as { redis: Redis }).redis;
    const real = conn.eval.bind(conn) as (...args: unknown[]) => Promise<unknown>;
    const calls: string[] = [];
    const spy = vi.spyOn(conn, 'eval').mockImplementation(async (...args: unknown[]) => {
      calls.push(args[0] === IMPORT ? 'IMPORT' : 'another script');
      const r = await real(...args);
      if (args[0] === IMPORT) await redis.raw.del('dup-a:session:moving');
      return r;
    });
    try {
      const retry = await store.importTransferred('tr_dup', { ...offered, metadata: { retried: true } });
      expect(retry).toEqual({ session: first.session, duplicate: true });
      expect(calls).toEqual(['IMPORT']);
    } finally {
      spy.mockRestore();
    }
    // a retry after the deletion finds no session for the transfer id
    await expect(store.importTransferred('tr_dup', offered)).rejects.toBeInstanceOf(TransferConflictError);
  });

  it('answers the stored turns from the script’s reply when this process has not cached them', async () => {
    const store = await open('dup-b:');
    const offered = { ...session('moving2', [doneTurn('one'), doneTurn('two')]), version: 2 };
    const first = await store.importTransferred('tr_dup2', offered);
    // the counter's key gone, the next write names a new epoch: what this process cached is of the old one
    await redis.raw.del('dup-b:turnrev');
    await store.create(session('unrelated', [doneTurn('x')]));
    const retry = await store.importTransferred('tr_dup2', { ...offered, history: [doneTurn('not stored')] });
    expect(retry).toEqual({ session: first.session, duplicate: true });
    expect(retry.session.history.map((t) => t.output)).toEqual(['one', 'two']);
  });
});
