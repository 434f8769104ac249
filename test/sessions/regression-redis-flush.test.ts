/**
 * Regression: a Redis flushed (FLUSHALL, FLUSHDB) under a running gateway restarted the store-wide `turnrev`
 * counter, while the process's turn cache, keyed by (store id, session, index, revision), kept the store id the
 * store was opened with. A session id used again after the flush got the revisions (and turn-list stamp) its
 * turns had before it, and a read here answered the turns cached before the flush; a write here of turns read
 * before the flush took them for the ones stored at their index and did not write them. The same when only the
 * counter's key went (an eviction, a deletion). Now a write that finds the counter gone names a new store epoch
 * (redis-scripts.ts STORE_EPOCH), every script answers with the epoch, and the cache is keyed by it.
 *
 * A real redis-server; the other instance is another process (fixtures/session-creator.mjs), so its writes do
 * not pass through this process's cache.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { newSession, newTurn, type Session, type Turn } from '../../src/sessions/model.js';
import { openStore, type StoreConfig } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { redisForFile } from './fixtures/redis-server.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };

function doneTurn(output: string): Turn {
  return { ...newTurn(`prompt of ${output}`, [{ role: 'user', content: `prompt of ${output}` }]), status: 'completed', output, endedAt: Date.now() };
}

function session(id: string, history: Turn[]): Session {
  return { ...newSession({ id, kind: 'chat', ownerGatewayId: 'gw_a', target }), history };
}

/** Another instance (a process of its own) creates session `id` with one turn whose output is `output`. */
function createFromAnotherProcess(cfg: StoreConfig, id: string, output: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', join(fixtures, 'ts-register.mjs'), join(fixtures, 'session-creator.mjs'), JSON.stringify(cfg), id, output],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => (code === 0 && out.includes('done ') ? resolve() : reject(new Error(`session-creator exited ${code}: ${out}`))));
  });
}

const redis = redisForFile();

async function open(prefix: string): Promise<{ store: SessionStore; cfg: StoreConfig }> {
  const cfg: StoreConfig = { kind: 'redis', url: redis.server.url, prefix };
  const store = await openStore(cfg);
  redis.stores.push(store);
  return { store, cfg };
}

describe('a Redis flushed under a running gateway (the turn-revision counter starts again)', () => {
  it('a session id used again after a FLUSHALL reads the turns written after it, not those cached before it', async () => {
    const { store, cfg } = await open('flush-a:');
    await store.create(session('reused', [doneTurn('before the flush')]));
    expect((await store.get('reused'))!.history[0]!.output).toBe('before the flush');

    await redis.raw.flushall();
    // another instance creates a session of the same id: its turn gets the revision the old one had
    await createFromAnotherProcess(cfg, 'reused', 'after the flush');

    const got = (await store.get('reused'))!;
    expect(got.history.map((t) => t.output)).toEqual(['after the flush']);
    expect(got.ownerGatewayId).toBe('gw_b');
  });

  it('a write here after the flush, of turns read before it, stores those turns, not the ones at their index', async () => {
    const { store, cfg } = await open('flush-b:');
    await store.create(session('kept', [doneTurn('ours')]));
    const ours = (await store.get('kept'))!;

    await redis.raw.flushall();
    await createFromAnotherProcess(cfg, 'kept', 'theirs');
    // this instance's write (at the version the new record has too) keeps its turn 0 as it read it: it is written
    const written = await store.update({ ...ours, history: [...ours.history, doneTurn('next')] }, ours.version);
    expect(written.history.map((t) => t.output)).toEqual(['ours', 'next']);
    const stored = JSON.parse((await redis.raw.hget('flush-b:turns:kept', '0'))!) as Turn;
    expect(stored.output).toBe('ours');
    expect((await store.get('kept'))!.history.map((t) => t.output)).toEqual(['ours', 'next']);
  });

  it('the counter’s key alone gone (evicted, deleted) is a new epoch too', async () => {
    const { store, cfg } = await open('flush-c:');
    await store.create(session('again', [doneTurn('first life')]));
    expect((await store.get('again'))!.history[0]!.output).toBe('first life');
    expect(await store.delete('again')).toBe(true);

    await redis.raw.del('flush-c:turnrev');
    await createFromAnotherProcess(cfg, 'again', 'second life');
    expect((await store.get('again'))!.history.map((t) => t.output)).toEqual(['second life']);
  });
});
