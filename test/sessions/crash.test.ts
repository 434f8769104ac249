/**
 * Crash durability with real processes: a child writes sessions through the store and prints an ack after
 * each resolved write; we SIGKILL it at a random moment, reopen the store, and require every acknowledged
 * write (and its whole history) to be there. Three kill rounds on the same store, so later rounds also write
 * over the remains of a killed one. For Redis, the redis-server itself is then SIGKILLed and restarted from
 * its append-only file, and everything acknowledged must still be there.
 *
 * The child runs src/ directly through fixtures/ts-hooks.mjs (transpile-only), so this test needs no build.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type StoreConfig } from '../../src/sessions/open-store.js';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';

const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url));
const ROUNDS = 3;
const LOOPS = 4;

/** highest acknowledged state per session id */
type Acked = Map<string, { version: number; turns: number }>;

/** Runs the writer until it has acknowledged `killAfter` writes, then SIGKILLs it mid-stride. */
function runAndKill(cfg: StoreConfig, tag: string, killAfter: number, acked: Acked): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', join(fixtures, 'ts-register.mjs'), join(fixtures, 'crash-writer.mjs'), JSON.stringify(cfg), tag, String(LOOPS)],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let count = 0;
    let buf = '';
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    child.stdout.on('data', (b: Buffer) => {
      buf += b.toString();
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const [word, id, version, turns] = buf.slice(0, nl).split(' ');
        buf = buf.slice(nl + 1);
        if (word !== 'ack' || !id) continue;
        const prev = acked.get(id);
        if (!prev || Number(version) > prev.version) acked.set(id, { version: Number(version), turns: Number(turns) });
        if (++count === killAfter) child.kill('SIGKILL');
      }
    });
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(count);
      else reject(new Error(`writer exited on its own (code ${code}) after ${count} acks:\n${stderr}`));
    });
  });
}

/** Every acknowledged write is stored, with a history that is exactly the turns written, in order. */
async function verify(cfg: StoreConfig, acked: Acked): Promise<void> {
  const store = await openStore(cfg);
  try {
    const all = new Map((await store.list()).map((s) => [s.id, s]));
    for (const [id, want] of acked) {
      const s = all.get(id);
      expect(s, `acknowledged session ${id} is missing`).toBeDefined();
      if (!s) continue;
      expect(s.version, `${id}: acknowledged version ${want.version} lost`).toBeGreaterThanOrEqual(want.version);
      expect(s.history.length).toBeGreaterThanOrEqual(want.turns);
      expect(s.version).toBe(s.history.length + 1); // one turn per update: no partial or torn write
      s.history.forEach((t, i) => {
        expect(t.prompt).toBe(`${id}/${i + 1}`);
        expect(t.messages).toEqual([
          { role: 'user', content: t.prompt },
          { role: 'assistant', content: `re ${t.prompt}` },
        ]);
      });
    }
  } finally {
    await store.close();
  }
}

async function crashRounds(cfg: StoreConfig, acked: Acked): Promise<void> {
  for (let round = 1; round <= ROUNDS; round++) {
    const killAfter = 40 + Math.floor(Math.random() * 400);
    const count = await runAndKill(cfg, `r${round}`, killAfter, acked);
    expect(count).toBeGreaterThanOrEqual(killAfter);
    await verify(cfg, acked);
  }
  expect(acked.size).toBeGreaterThan(ROUNDS * LOOPS);
}

describe('crash durability (SIGKILL of the gateway process)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-crash-'));
  let redis: RedisServer | undefined;
  afterAll(async () => {
    await redis?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('sqlite: nothing acknowledged is lost', async () => {
    await crashRounds({ kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') }, new Map());
  }, 120_000);

  it('redis: nothing acknowledged is lost, even when redis-server is SIGKILLed and restarted from its AOF', async () => {
    redis = await startRedis();
    const acked: Acked = new Map();
    await crashRounds({ kind: 'redis', url: redis.url, prefix: 'crash:' }, acked);

    await redis.kill();
    redis = await startRedis(redis.dir);
    await verify({ kind: 'redis', url: redis.url, prefix: 'crash:' }, acked);
  }, 120_000);
});
