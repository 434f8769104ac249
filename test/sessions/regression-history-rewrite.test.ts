/**
 * Regression: a long session's record was read and written whole at every change. The turns were part of the
 * one JSON document a store kept per session, so each of the several writes and reads of a turn (and of every
 * task event and permission prompt) copied the whole history: at turn 400 of a chat session, 6.5 MB a write.
 * Now each turn is an entry of its own: a change writes the turns it changed, a read parses (or fetches) only
 * the turns the process's cache does not hold. Measured on a real SQLite file (the WAL's growth, the JSON
 * parsed) and a real redis-server (its byte counters), never by timing.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { appendTurn, newSession, newTurn, updateTurn, type Session, type Turn } from '../../src/sessions/model.js';
import { openStore, type StoreConfig } from '../../src/sessions/open-store.js';
import { mutateSession, VersionConflictError, type SessionStore } from '../../src/sessions/store.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';
import { SQLITE_SCHEMA_5 } from './fixtures/sqlite-schema-5.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };

/** a finished chat turn of ~33 KB of JSON (16 KiB of output, and the same again in its messages) */
function bigTurn(i: number, tag = 't'): Turn {
  const text = `${tag}${i} `.padEnd(16 * 1024, 'abcdefgh');
  const t = newTurn(
    `prompt ${i}`,
    [
      { role: 'user', content: `prompt ${i}` },
      { role: 'assistant', content: text },
    ],
    1000 + i,
  );
  return { ...t, status: 'completed', output: text, endedAt: 2000 + i };
}
const TURN_BYTES = JSON.stringify(bigTurn(0)).length;
const HISTORY = 300; // ~10 MB of turns

function session(id: string, history: Turn[]): Session {
  return { ...newSession({ id, kind: 'chat', ownerGatewayId: 'gw_a', target }), history };
}

/** Runs fixtures/turn-writer.mjs: another process replaces the output of the session's last turn. */
function writeFromAnotherProcess(cfg: StoreConfig, id: string, output: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', join(fixtures, 'ts-register.mjs'), join(fixtures, 'turn-writer.mjs'), JSON.stringify(cfg), id, output], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.once('exit', (code) => (code === 0 && out.includes('done ') ? resolve() : reject(new Error(`turn-writer exited ${code}: ${out}`))));
  });
}

/** Bytes of JSON text parsed while `op` runs (what a read of SQLite costs besides the page reads). */
async function parsedBytes(op: () => Promise<unknown>): Promise<number> {
  const real = JSON.parse;
  let n = 0;
  const spy = vi.spyOn(JSON, 'parse').mockImplementation((text: string, reviver?: Parameters<typeof JSON.parse>[1]) => {
    n += typeof text === 'string' ? text.length : 0;
    return real(text, reviver) as unknown;
  });
  try {
    await op();
  } finally {
    spy.mockRestore();
  }
  return n;
}

interface Backend {
  name: 'sqlite' | 'redis';
  cfg: () => StoreConfig;
  /** bytes the store wrote for `op`: SQLite, the WAL's growth from empty; Redis, the bytes it received */
  written: (op: () => Promise<unknown>) => Promise<number>;
  /** bytes a read brought into the process: SQLite, the JSON parsed; Redis, the bytes Redis sent */
  read: (op: () => Promise<unknown>) => Promise<number>;
}

const tmp = mkdtempSync(join(tmpdir(), 'sy-history-'));
let redis: RedisServer;
let raw: Redis;
const opened: SessionStore[] = [];
beforeAll(async () => {
  redis = await startRedis();
  raw = new Redis(redis.url);
});
afterAll(async () => {
  await Promise.all(opened.map((s) => s.close()));
  raw?.disconnect();
  await redis?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

async function netBytes(field: 'total_net_input_bytes' | 'total_net_output_bytes'): Promise<number> {
  const info = await raw.info('stats');
  return Number(new RegExp(`${field}:(\\d+)`).exec(info)![1]);
}

function sqliteBackend(): Backend {
  const path = join(tmp, `s${Math.random()}.db`);
  return {
    name: 'sqlite',
    cfg: () => ({ kind: 'sqlite', path }),
    written: async (op) => {
      const db = new Database(path);
      try {
        expect(db.pragma('wal_checkpoint(TRUNCATE)', { simple: true })).toBe(0); // not busy: the WAL is empty now
        expect(statSync(`${path}-wal`).size).toBe(0);
        await op();
        return statSync(`${path}-wal`).size;
      } finally {
        db.close();
      }
    },
    read: parsedBytes,
  };
}

function redisBackend(): Backend {
  const prefix = `h${Math.random()}:`;
  const delta = (field: 'total_net_input_bytes' | 'total_net_output_bytes') => async (op: () => Promise<unknown>) => {
    const before = await netBytes(field);
    await op();
    return (await netBytes(field)) - before;
  };
  return {
    name: 'redis',
    cfg: () => ({ kind: 'redis', url: redis.url, prefix }),
    written: delta('total_net_input_bytes'),
    read: delta('total_net_output_bytes'),
  };
}

async function open(cfg: StoreConfig): Promise<SessionStore> {
  const s = await openStore(cfg);
  opened.push(s);
  return s;
}

describe.each([{ make: sqliteBackend }, { make: redisBackend }])('$make.name', ({ make }) => {
  it(`a change of one turn of a ${HISTORY}-turn session writes that turn, not the history; a read after another process's change reads that turn`, async () => {
    const b = make();
    const store = await open(b.cfg());
    const history = Array.from({ length: HISTORY }, (_, i) => bigTurn(i));
    await store.create(session('long', history));
    const cur = (await store.get('long'))!;
    expect(cur.history).toHaveLength(HISTORY);

    // the last turn changes (what a turn's end, a task event or a permission prompt does)
    const changed = updateTurn(cur, cur.history[HISTORY - 1]!.turnId, { output: 'changed' });
    const wroteChange = await b.written(() => store.update(changed, cur.version));
    // a turn appended (a turn's start)
    const wroteAppend = await b.written(() => mutateSession(store, 'long', (s) => appendTurn(s, bigTurn(HISTORY))));
    // the old layout wrote the whole ~10 MB record each time
    expect(wroteChange).toBeLessThan(4 * TURN_BYTES);
    expect(wroteAppend).toBeLessThan(4 * TURN_BYTES);
    expect(wroteAppend).toBeGreaterThan(TURN_BYTES / 2); // the appended turn itself was written

    // another process (its own store, its own cache) changes the last turn; this one reads the session again
    await writeFromAnotherProcess(b.cfg(), 'long', 'changed elsewhere');
    let got: Session | undefined;
    const read = await b.read(async () => (got = await store.get('long')));
    expect(read).toBeLessThan(3 * TURN_BYTES);
    expect(got!.history).toHaveLength(HISTORY + 1);
    expect(got!.history[HISTORY]!.output).toBe('changed elsewhere');
    expect(got!.history[HISTORY - 1]!.output).toBe('changed');
    expect(got!.history.slice(0, HISTORY - 1)).toEqual(history.slice(0, HISTORY - 1));
    // and a store opened afresh on the same data reads all of it back
    const fresh = await open(b.cfg());
    expect(await fresh.get('long')).toEqual(got);
  }, 120_000);

  it('two instances on the same data: the compare-and-set has one winner and both read the winner’s turns afterwards', async () => {
    const b = make();
    const A = await open(b.cfg());
    const B = await open(b.cfg());
    await A.create(session('race', [bigTurn(0), bigTurn(1)]));
    const a = (await A.get('race'))!;
    const bRead = (await B.get('race'))!;
    const nextA = updateTurn(a, a.history[1]!.turnId, { output: 'by A' });
    const nextB = appendTurn(updateTurn(bRead, bRead.history[1]!.turnId, { output: 'by B' }), bigTurn(2, 'b'));
    const results = await Promise.allSettled([A.update(nextA, a.version), B.update(nextB, bRead.version)]);
    const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(lost[0]!.reason).toBeInstanceOf(VersionConflictError);
    const winner = won[0]!.value;
    expect((await A.get('race'))!.history).toEqual(winner.history);
    expect((await B.get('race'))!.history).toEqual(winner.history);

    // the loser retries on what is stored now; both see its change on top of the winner's
    const final = await mutateSession(B, 'race', (s) => updateTurn(s, s.history[0]!.turnId, { output: 'then B' }));
    expect(final.history[0]!.output).toBe('then B');
    expect((await A.get('race'))!.history).toEqual(final.history);
    expect((await B.get('race'))!.history).toEqual(final.history);
  }, 60_000);

  it('a session deleted and created again at the same version by another instance: a write from an older read stores all of its turns', async () => {
    const b = make();
    const A = await open(b.cfg());
    const B = await open(b.cfg());
    await A.create(session('again', [bigTurn(0, 'a'), bigTurn(1, 'a')]));
    const a = (await A.get('again'))!;
    await B.delete('again');
    await B.create(session('again', [bigTurn(0, 'b'), bigTurn(1, 'b')])); // version 1 again, other turns
    const mine = appendTurn(a, bigTurn(2, 'a'));
    await A.update(mine, a.version); // the version matches: the write goes through, and it is the whole of `mine`
    for (const s of [A, B]) expect((await s.get('again'))!.history.map((t) => t.turnId)).toEqual(mine.history.map((t) => t.turnId));
    expect((await B.get('again'))!.history[0]!.output).toBe(a.history[0]!.output);
  }, 60_000);

  it('a history cut short by another process (no turn written) reads back cut short here', async () => {
    const b = make();
    const store = await open(b.cfg());
    await store.create(session('cut', [bigTurn(0), bigTurn(1), bigTurn(2)]));
    expect((await store.get('cut'))!.history).toHaveLength(3);
    await writeFromAnotherProcess(b.cfg(), 'cut', 'cut');
    expect((await store.get('cut'))!.history.map((t) => t.output)).toEqual([bigTurn(0).output, bigTurn(1).output]);
    const next = await mutateSession(store, 'cut', (s) => appendTurn(s, bigTurn(3)));
    expect((await (await open(b.cfg())).get('cut'))!.history).toEqual(next.history);
  }, 60_000);

  it('turns handed out are frozen: a caller that mutates one gets a TypeError, and no other reader sees a change', async () => {
    const b = make();
    const store = await open(b.cfg());
    await store.create(session('frozen', [bigTurn(0)]));
    const s = (await store.get('frozen'))!;
    const t = s.history[0]!;
    expect(() => ((t as { output: string }).output = 'x')).toThrow(TypeError);
    expect(() => t.messages.push({ role: 'user', content: 'x' })).toThrow(TypeError);
    expect(() => ((t.messages[1] as { content: string }).content = 'x')).toThrow(TypeError);
    const again = (await store.get('frozen'))!.history[0]!;
    expect(again.output).toBe(t.output);
    expect(again.messages).toHaveLength(2);
    expect((again.messages[1] as { content: string }).content).toBe(t.output);
  });
});

describe('a record stored with its history embedded (before the turns moved out)', () => {
  const old = { ...session('old', [bigTurn(0), bigTurn(1), bigTurn(2)]), version: 3, metadata: { cwd: '/w' }, affinity: 'c1' };

  it('sqlite: a file written by migrations 1–5 opens with the turns moved out, reads back whole, and stays whole after an update', async () => {
    const path = join(tmp, 'schema5.db');
    const db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.exec('CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)');
    SQLITE_SCHEMA_5.forEach((sql, i) => {
      db.exec(sql);
      db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, 0)').run(i + 1, `m${i + 1}`);
    });
    db.prepare(
      `INSERT INTO sessions (id, kind, owner_gateway_id, status, moved_to, target, thread_id, history, affinity, metadata, created_at, updated_at, version)
       VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      old.id,
      old.kind,
      old.ownerGatewayId,
      old.status,
      JSON.stringify(old.target),
      old.threadId,
      JSON.stringify(old.history),
      old.affinity,
      JSON.stringify(old.metadata),
      old.createdAt,
      old.updatedAt,
      old.version,
    );
    db.close();

    const store = await open({ kind: 'sqlite', path });
    expect(await store.get('old')).toEqual(old);
    const check = new Database(path, { readonly: true });
    expect(check.prepare('SELECT history FROM sessions WHERE id = ?').get('old')).toEqual({ history: '[]' });
    expect(check.prepare('SELECT idx FROM session_turns WHERE session_id = ? ORDER BY idx').all('old')).toEqual([{ idx: 0 }, { idx: 1 }, { idx: 2 }]);

    const next = await mutateSession(store, 'old', (s) => appendTurn(s, bigTurn(3)));
    expect(next.history).toHaveLength(4);
    expect(await (await open({ kind: 'sqlite', path })).get('old')).toEqual(next);
    expect(check.prepare('SELECT count(*) AS n FROM session_turns WHERE session_id = ?').get('old')).toEqual({ n: 4 });
    check.close();
  });

  it('redis: a schema-1 record reads back whole, and is stored split (and still whole) after its next write', async () => {
    const prefix = `old${Math.random()}:`;
    await raw.hset(`${prefix}meta`, '_schema', '1');
    await raw.hset(`${prefix}session:old`, 'v', String(old.version), 'st', old.status, 'doc', JSON.stringify(old));
    await raw.zadd(`${prefix}sessions`, old.updatedAt, 'old');

    const store = await open({ kind: 'redis', url: redis.url, prefix });
    expect(await store.get('old')).toEqual(old);
    expect(await store.list()).toEqual([old]);
    expect(await raw.hget(`${prefix}meta`, '_schema')).toBe('3'); // an older Switchyard no longer starts on these keys
    // its open built the status and mark indexes from it (key schema 3)
    expect(await raw.zrange(`${prefix}sessions:st:${old.status}`, '0', '-1')).toEqual(['old']);

    const next = await mutateSession(store, 'old', (s) => appendTurn(s, bigTurn(3)));
    expect(next.history).toHaveLength(4);
    const doc = JSON.parse((await raw.hget(`${prefix}session:old`, 'doc'))!) as Record<string, unknown>;
    expect(doc.history).toBeUndefined();
    expect(await raw.hlen(`${prefix}turns:old`)).toBe(4);
    expect(await store.get('old')).toEqual(next);
    expect(await (await open({ kind: 'redis', url: redis.url, prefix })).get('old')).toEqual(next);
  });
});
