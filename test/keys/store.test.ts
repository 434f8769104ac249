/**
 * The key store contract, run against both implementations (SQLite file, real redis-server): create with a
 * unique name, lookup by hash, rotation moves the hash index, the change counter moves on every change,
 * usage append/query by time and key. Plus the usage arithmetic (tokens, cached tokens, cost).
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { RedisKeyStore } from '../../src/keys/redis-key-store.js';
import type { KeyStore } from '../../src/keys/store.js';
import { hashSecret, hintOf, modelAllowed, newSecret, type VirtualKey } from '../../src/keys/model.js';
import {
  costOf,
  countOf,
  estimatedInputUsage,
  estimatedReplyUsage,
  estimatedUsage,
  estimateTokens,
  isEstimate,
  summarise,
  tokensOf,
  type UsageRecord,
} from '../../src/usage/record.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, memoryLogger, tmpDir, waitFor } from '../helpers/env.js';
import { writeSchema1Store } from './keys-schema-1.js';
import type { Logger } from '../../src/util/log.js';

let redis: RedisServer;
beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
  cleanupDirs();
});

function key(name: string, secret = newSecret()): VirtualKey {
  return {
    id: `key_${name}`,
    name,
    owner: 'o',
    hash: hashSecret(secret),
    hint: hintOf(secret),
    models: ['*'],
    limits: {},
    disabled: false,
    createdAt: 1,
    updatedAt: 1,
  };
}

const rec = (ts: number, k: string, extra: Partial<UsageRecord> = {}): UsageRecord => ({
  ts,
  key: k,
  model: 'm',
  channel: 'c',
  peer: '-',
  direction: 'local',
  inputTokens: 10,
  outputTokens: 2,
  cachedTokens: 1,
  cost: 0.5,
  stream: false,
  estimated: false,
  ...extra,
});

for (const [name, open] of [
  ['sqlite', async (): Promise<KeyStore> => new SqliteKeyStore(join(tmpDir(), 'data', 'switchyard.db'))],
  ['redis', async (): Promise<KeyStore> => RedisKeyStore.open(redis.url, `ks${Math.random().toString(36).slice(2, 8)}:`)],
] as const) {
  describe(`key store: ${name}`, () => {
    it('create, unique names, byHash, rotation and the change counter', async () => {
      const s = await open();
      const v0 = await s.version();
      const secret = newSecret();
      const k = key('alpha', secret);
      await s.create(k);
      expect(await s.version()).toBe(v0 + 1);
      expect(await s.byHash(hashSecret(secret))).toEqual(k);
      await expect(s.create({ ...key('alpha'), id: 'key_other' })).rejects.toMatchObject({ status: 409, details: { reason: 'KEY_EXISTS' } });
      const next = newSecret();
      await s.modify(k.id, (cur) => ({ ...cur, hash: hashSecret(next), disabled: true }));
      expect(await s.version()).toBe(v0 + 2);
      expect(await s.byHash(hashSecret(secret))).toBeUndefined();
      expect((await s.byHash(hashSecret(next)))?.disabled).toBe(true);
      await expect(s.modify(key('ghost').id, (cur) => cur)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await s.create(key('beta'));
      expect((await s.list()).map((x) => x.name)).toEqual(['alpha', 'beta']);
      await s.close();
    });

    it('listPage: by name in byte order (as list), limit records after the cursor, next only while a record follows', async () => {
      const s = await open();
      // byte order: digits, then upper case, then lower case (localeCompare put "a" before "B")
      const names = ['B', 'Z', 'a', 'b-1', 'b-10', 'b-2', '0'];
      for (const n of names) await s.create(key(n));
      const sorted = ['0', 'B', 'Z', 'a', 'b-1', 'b-10', 'b-2'];
      expect((await s.list()).map((k) => k.name)).toEqual(sorted);
      const page = async (after: string | undefined, limit: number) => {
        const p = await s.listPage(after, limit);
        return [p.keys.map((k) => k.name), p.next];
      };
      expect(await page(undefined, 3)).toEqual([['0', 'B', 'Z'], 'Z']);
      expect(await page('Z', 3)).toEqual([['a', 'b-1', 'b-10'], 'b-10']);
      expect(await page('b-10', 3)).toEqual([['b-2'], undefined]);
      expect(await page(undefined, 7)).toEqual([sorted, undefined]);
      expect(await page(undefined, 6)).toEqual([sorted.slice(0, 6), 'b-10']);
      // a cursor need not name a key: the names after it
      expect(await page('A', 2)).toEqual([['B', 'Z'], 'Z']);
      expect(await page('zzz', 2)).toEqual([[], undefined]);
      await s.close();
    });

    it('modify: one change of the stored record, the hash index and the counter following; changes made at once all hold', async () => {
      const s = await open();
      const secret = newSecret();
      const k = key('gamma', secret);
      await s.create(k);
      const v0 = await s.version();
      const next = newSecret();
      const out = await s.modify(k.id, (cur) => ({ ...cur, hash: hashSecret(next), rotatedAt: 2 }));
      expect(out).toMatchObject({ id: k.id, hash: hashSecret(next), rotatedAt: 2, disabled: false });
      expect(await s.version()).toBe(v0 + 1);
      expect(await s.byHash(hashSecret(secret))).toBeUndefined();
      expect(await s.byHash(hashSecret(next))).toEqual(out);
      // several changes of one record at once, each of another field: none is lost
      await Promise.all([
        s.modify(k.id, (cur) => ({ ...cur, disabled: true })),
        s.modify(k.id, (cur) => ({ ...cur, owner: 'someone' })),
        s.modify(k.id, (cur) => ({ ...cur, models: ['m-*'] })),
      ]);
      expect(await s.get(k.id)).toMatchObject({ disabled: true, owner: 'someone', models: ['m-*'], hash: hashSecret(next) });
      await expect(s.modify('key_ghost', (cur) => cur)).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await s.close();
    });

    it('usage: append in batches, query by since and key', async () => {
      const s = await open();
      const t = Date.now();
      await s.appendUsage([rec(t - 5000, 'key_a'), rec(t - 10, 'key_b', { stream: true, direction: 'served-by', peer: 'gw_x' })]);
      await s.appendUsage([rec(t, 'key_a', { cost: 0.25, estimated: true })]);
      expect((await s.queryUsage({})).length).toBe(3);
      expect((await s.queryUsage({ since: t - 100 })).map((r) => r.key).sort()).toEqual(['key_a', 'key_b']);
      const b = await s.queryUsage({ key: 'key_b' });
      expect(b).toEqual([rec(t - 10, 'key_b', { stream: true, direction: 'served-by', peer: 'gw_x' })]);
      await s.close();
    });

    it('usage: a batch larger than one INSERT statement keeps every record, each field in its place', async () => {
      const s = await open();
      const t = Date.now();
      // 123 = two full statements of rows and a remainder (SQLite: 50 rows per INSERT); every field differs by row
      const batch = Array.from({ length: 123 }, (_, i) =>
        rec(t + i, `key_${i % 7}`, {
          model: `model-${i}`,
          channel: `chan-${i % 5}`,
          peer: i % 3 ? '-' : `gw_${i}`,
          direction: i % 2 ? 'local' : 'served-by',
          inputTokens: i * 3,
          outputTokens: i * 2 + 1,
          cachedTokens: i % 4,
          cost: i / 8,
          stream: i % 2 === 0,
          estimated: i % 3 === 1,
        }),
      );
      await s.appendUsage(batch);
      expect(await s.queryUsage({})).toEqual(batch);
      await s.close();
    });

    it('usage retention: prune deletes exactly the records written before a time, across several slices', async () => {
      const s = await open();
      // more than two slices of old records (5,000 per slice), written (and stamped) before `cut`
      const old = Array.from({ length: 12_345 }, (_, i) => rec(Date.now() - 1000 + (i % 500), i % 2 ? 'key_a' : 'key_b'));
      for (let i = 0; i < old.length; i += 2000) await s.appendUsage(old.slice(i, i + 2000));
      await waitFor(() => Date.now() > Math.max(...old.map((r) => r.ts)) + 2 && Date.now(), 'the clock to pass the old records');
      const cut = Date.now();
      await waitFor(() => Date.now() > cut + 2, 'the clock to pass the cut');
      const t = Date.now();
      const kept = [rec(t, 'key_a'), rec(t, 'key_b', { cost: 0.25 })];
      await s.appendUsage(kept);
      expect(await s.pruneUsage(cut - 60_000)).toBe(0); // nothing that old
      expect(await s.pruneUsage(cut)).toBe(old.length);
      expect(await s.queryUsage({})).toEqual(kept);
      expect(await s.pruneUsage(cut)).toBe(0); // idempotent
      await s.close();
    });
  });
}

/** A store, and a way to overwrite a key's stored record behind its back (a hand edit, a damaged store). */
interface Damageable {
  store: KeyStore;
  damage(id: string, doc: string): Promise<void>;
  close(): Promise<void>;
}

for (const [name, open] of [
  [
    'sqlite',
    async (logger: Logger): Promise<Damageable> => {
      const path = join(tmpDir(), 'data', 'switchyard.db');
      const store = new SqliteKeyStore(path, logger);
      return {
        store,
        damage: async (id, doc) => {
          const db = new Database(path);
          try {
            db.pragma('ignore_check_constraints = ON'); // around the column's json_valid check
            db.prepare('UPDATE virtual_keys SET doc = ? WHERE id = ?').run(doc, id);
          } finally {
            db.close();
          }
        },
        close: () => store.close(),
      };
    },
  ],
  [
    'redis',
    async (logger: Logger): Promise<Damageable> => {
      const prefix = `ks${Math.random().toString(36).slice(2, 8)}:`;
      const store = await RedisKeyStore.open(redis.url, prefix, logger);
      const raw = new Redis(redis.url);
      return {
        store,
        damage: async (id, doc) => void (await raw.hset(`${prefix}keys`, id, doc)),
        close: async () => {
          raw.disconnect();
          await store.close();
        },
      };
    },
  ],
] as const) {
  describe(`key store: ${name}, a stored record that is no key`, () => {
    it('is left out of the listing, logged by id without its content, and found by neither its hash nor its id', async () => {
      const { logger, lines } = memoryLogger();
      const { store: s, damage, close } = await open(logger);
      const secrets = { alpha: newSecret(), cut: newSecret(), odd: newSecret() };
      for (const [n, secret] of Object.entries(secrets)) await s.create(key(n, secret));
      // not JSON (cut off, its hash still in the text); JSON, but of another shape
      const cut = JSON.stringify(key('cut', secrets.cut));
      await damage('key_cut', cut.slice(0, cut.indexOf('"models"')));
      await damage('key_odd', '[]');

      expect((await s.list()).map((k) => k.name)).toEqual(['alpha']);
      // in a page, each takes its place and is left out: a page may hold no key and still go on
      expect(await s.listPage(undefined, 1)).toEqual({ keys: [expect.objectContaining({ name: 'alpha' })], next: 'alpha' });
      expect(await s.listPage('alpha', 1)).toEqual({ keys: [], next: 'cut' });
      expect(await s.listPage('cut', 1)).toEqual({ keys: [], next: undefined });
      expect(await s.byHash(hashSecret(secrets.cut))).toBeUndefined();
      expect(await s.byHash(hashSecret(secrets.odd))).toBeUndefined();
      expect(await s.get('key_cut')).toBeUndefined();
      expect(await s.get('key_odd')).toBeUndefined();
      expect((await s.byHash(hashSecret(secrets.alpha)))?.name).toBe('alpha');

      const warned = lines.filter((l) => l.includes('not a readable key'));
      expect(warned.some((l) => l.includes('"keyId":"key_cut"'))).toBe(true);
      expect(warned.some((l) => l.includes('"keyId":"key_odd"'))).toBe(true);
      const all = lines.join('');
      for (const secret of [secrets.cut, secrets.odd]) {
        expect(all).not.toContain(secret);
        expect(all).not.toContain(hashSecret(secret));
      }
      await close();
    });
  });
}

describe('usage written before records said whether they were estimated', () => {
  it('sqlite: a store file of key schema 1 is migrated on open; its records read as counted, new ones keep their flag; opening again changes nothing', async () => {
    const path = join(tmpDir(), 'data', 'switchyard.db');
    const secret = newSecret();
    const t = Date.now();
    writeSchema1Store(
      path,
      [key('old-app', secret)],
      [{ ts: t - 1000, key: 'key_old-app', model: 'm', channel: 'c', inputTokens: 10, outputTokens: 2, cost: 0.5 }],
    );
    const s1 = new SqliteKeyStore(path);
    const old = rec(t - 1000, 'key_old-app', { cachedTokens: 0 });
    expect(await s1.queryUsage({})).toEqual([old]);
    expect((await s1.byHash(hashSecret(secret)))?.name).toBe('old-app');
    const fresh = [rec(t, 'key_old-app', { estimated: true }), rec(t + 1, 'key_old-app')];
    await s1.appendUsage(fresh);
    expect(await s1.queryUsage({ key: 'key_old-app' })).toEqual([old, ...fresh]);
    expect((await s1.spendSince(0)).get('key_old-app')).toEqual({ tokens: 36, cost: 1.5 });
    await s1.close();

    const s2 = new SqliteKeyStore(path);
    expect(await s2.queryUsage({})).toEqual([old, ...fresh]);
    await s2.close();
    const db = new Database(path, { readonly: true });
    try {
      expect((db.prepare('SELECT version FROM keys_schema_migrations ORDER BY version').all() as { version: number }[]).map((r) => r.version)).toEqual([1, 2]);
    } finally {
      db.close();
    }
  });

  it('redis: entries written without the field read as counted', async () => {
    const prefix = `ks${Math.random().toString(36).slice(2, 8)}:`;
    const raw = new Redis(redis.url);
    const t = Date.now();
    // an entry as the store wrote it before the field existed
    await raw.xadd(
      `${prefix}usage`,
      '*',
      'ts',
      t - 10,
      'key',
      'key_a',
      'model',
      'm',
      'channel',
      'c',
      'peer',
      '-',
      'direction',
      'local',
      'in',
      10,
      'out',
      2,
      'cached',
      1,
      'cost',
      0.5,
      'stream',
      0,
    );
    raw.disconnect();
    const s = await RedisKeyStore.open(redis.url, prefix);
    await s.appendUsage([rec(t, 'key_a', { estimated: true })]);
    expect(await s.queryUsage({})).toEqual([rec(t - 10, 'key_a'), rec(t, 'key_a', { estimated: true })]);
    await s.close();
  });
});

describe('usage arithmetic', () => {
  it('tokens from OpenAI and Anthropic-style usage; cached input at the cached price', () => {
    expect(tokensOf({ prompt_tokens: 100, completion_tokens: 20, total_tokens: 120, prompt_tokens_details: { cached_tokens: 40 } })).toEqual({
      input: 100,
      output: 20,
      cached: 40,
    });
    expect(tokensOf({ prompt_tokens: 7, completion_tokens: 3, total_tokens: 10, cache_read_input_tokens: 5 })).toEqual({ input: 7, output: 3, cached: 5 });
    expect(tokensOf(undefined)).toEqual({ input: 0, output: 0, cached: 0 });
    // (60 × 2 + 40 × 0.5 + 20 × 8) / 1e6
    expect(costOf({ input: 2, output: 8, cachedInput: 0.5 }, { input: 100, output: 20, cached: 40 })).toBeCloseTo(300 / 1e6, 15);
    expect(costOf(undefined, { input: 100, output: 20, cached: 0 })).toBe(0);
  });

  it("an uncounted answer's estimate: the request's size in, every choice's text out (content, reasoning, refusal, tool calls)", () => {
    const req = { model: 'm', messages: [{ role: 'user' as const, content: 'x'.repeat(400) }] };
    const answer = (message: Record<string, unknown>, more: Array<Record<string, unknown>> = []) =>
      ({
        id: 'c',
        object: 'chat.completion',
        created: 1,
        model: 'm',
        choices: [message, ...more].map((m, index) => ({ index, message: { role: 'assistant', content: null, ...m }, finish_reason: 'stop' })),
      }) as Parameters<typeof estimatedReplyUsage>[1]['completion'];
    const inTokens = estimateTokens(JSON.stringify(req).length);
    expect(inTokens).toBeGreaterThan(100);
    expect(estimatedReplyUsage(req, { completion: answer({ content: 'y'.repeat(40) }) })).toEqual({
      prompt_tokens: inTokens,
      completion_tokens: 10,
      total_tokens: inTokens + 10,
    });
    const out = (m: Record<string, unknown>, more?: Array<Record<string, unknown>>) =>
      estimatedReplyUsage(req, { completion: answer(m, more) }).completion_tokens;
    // 8 + 12 + 4 + (4 + 16) characters
    expect(
      out({
        content: 'a'.repeat(8),
        reasoning_content: 'b'.repeat(12),
        refusal: 'c'.repeat(4),
        tool_calls: [{ id: 't', type: 'function', function: { name: 'look', arguments: '{"q":"abcdefgh"}' } }],
      }),
    ).toBe(11);
    expect(out({ reasoning: 'r'.repeat(20) })).toBe(5);
    expect(
      out({
        content: [
          { type: 'text', text: 'z'.repeat(16) },
          { type: 'image_url', image_url: { url: 'data:…' } },
        ],
      }),
    ).toBe(4);
    expect(out({ content: 'a'.repeat(8) }, [{ content: 'b'.repeat(8) }])).toBe(4); // every choice
    expect(out({ content: '' })).toBe(1); // never nothing
  });

  it("countOf: a usage is a whole count only with a number in prompt_tokens and completion_tokens; isEstimate: only this module's estimates", () => {
    const none = [
      undefined,
      null,
      {},
      { prompt_tokens: null },
      { total_tokens: 12 },
      { prompt_tokens: -1, completion_tokens: Number.NaN },
      { prompt_tokens: '7' },
    ];
    // one side counted is not a whole count: the other side is estimated (below)
    for (const u of [...none, { prompt_tokens: 5 }, { completion_tokens: 3, prompt_tokens: null }])
      expect(countOf(u as never), JSON.stringify(u)).toBeUndefined();
    for (const u of [
      { prompt_tokens: 0, completion_tokens: 0 },
      { prompt_tokens: 5, completion_tokens: 2 },
    ])
      expect(countOf(u as never)).toBe(u);
    const req = { model: 'm', messages: [{ role: 'user' as const, content: 'hi' }] };
    const inTokens = estimateTokens(JSON.stringify(req).length);
    // a side the upstream counted is kept, the other estimated, and the whole is flagged an estimate
    const partial = [
      [estimatedUsage(req, 3, { completion_tokens: 7 }), { prompt_tokens: inTokens, completion_tokens: 7, total_tokens: inTokens + 7 }],
      [
        estimatedUsage(req, 3, { prompt_tokens: 40, prompt_tokens_details: { cached_tokens: 30 } }),
        { prompt_tokens: 40, completion_tokens: 3, total_tokens: 43, prompt_tokens_details: { cached_tokens: 30 } },
      ],
      [estimatedUsage(req, 3, { prompt_tokens: null } as never), { prompt_tokens: inTokens, completion_tokens: 3, total_tokens: inTokens + 3 }],
    ] as const;
    for (const [got, want] of partial) {
      expect(got).toEqual(want);
      expect(isEstimate(got)).toBe(true);
    }
    // the answer is not read (a relayed body not parsed) when the upstream counted its output
    const unread = {
      get completion(): never {
        throw new Error('read');
      },
    };
    expect(estimatedReplyUsage(req, unread, { completion_tokens: 9 })).toEqual({ prompt_tokens: inTokens, completion_tokens: 9, total_tokens: inTokens + 9 });
    expect(isEstimate(estimatedUsage(req, 3))).toBe(true);
    expect(isEstimate(estimatedInputUsage({ model: 'e', input: 'x' }))).toBe(true);
    // an upstream's usage, whatever it claims, and a copy of an estimate are not
    expect(isEstimate({ prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, estimated: true })).toBe(false);
    expect(isEstimate({ ...estimatedUsage(req, 3) })).toBe(false);
    expect(isEstimate(undefined)).toBe(false);
  });

  it('summaries by peer and day', () => {
    const day = Date.UTC(2026, 10, 29, 12);
    const s = summarise([rec(day, 'a'), rec(day, 'b', { peer: 'gw_b', direction: 'served-by' }), rec(day + 86_400_000, 'a')], 'peer');
    expect(s.rows.map((r) => [r.group, r.requests])).toEqual([
      ['-', 2],
      ['served-by gw_b', 1],
    ]);
    expect(s.total).toMatchObject({ requests: 3, inputTokens: 30, outputTokens: 6, cachedTokens: 3, cost: 1.5, estimated: 0 });
    const flagged = summarise([rec(day, 'a', { estimated: true }), rec(day, 'a'), rec(day, 'b', { estimated: true })], 'key');
    expect(flagged.rows.map((r) => [r.group, r.requests, r.estimated])).toEqual([
      ['a', 2, 1],
      ['b', 1, 1],
    ]);
    expect(flagged.total).toMatchObject({ requests: 3, estimated: 2 });
    expect(summarise([rec(day + 86_400_000, 'a'), rec(day, 'a')], 'day').rows.map((r) => r.group)).toEqual(['2026-11-29', '2026-11-30']);
  });

  it('model globs', () => {
    expect(modelAllowed({ models: ['gpt-4o*', 'claude-?-haiku'] }, 'gpt-4o-mini')).toBe(true);
    expect(modelAllowed({ models: ['gpt-4o*', 'claude-?-haiku'] }, 'claude-3-haiku')).toBe(true);
    expect(modelAllowed({ models: ['gpt-4o*'] }, 'gpt-4')).toBe(false);
    expect(modelAllowed({ models: ['a.b'] }, 'axb')).toBe(false);
  });
});
