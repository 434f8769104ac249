/**
 * A usage record says whether its tokens are Switchyard's estimate (the upstream did not count) or the
 * upstream's count: stored in SQLite (a store file written before the flag existed is migrated on start and
 * keeps working: its keys authenticate, its records count as counted) and in Redis, summed per row by
 * `/admin/usage` (`estimated`: how many of the row's requests) and shown by `switchyard usage` (ESTIMATED).
 * Real gateway processes, the real CLI, a real redis-server.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN, cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { hashSecret, hintOf, newSecret } from '../../src/keys/model.js';
import { writeSchema1Store } from './keys-schema-1.js';
import { admin, ask, chat, createKey } from './helpers.js';

const ADMIN = 'usage-estimated-admin-token-8128';
let up: OpenAiFake;
let redis: RedisServer;

beforeAll(async () => {
  up = await startOpenAiUpstream({ reply: 'one two three' });
  redis = await startRedis();
});

afterAll(async () => {
  await up?.close();
  await redis?.stop();
  cleanupDirs();
});

const channels = () => [
  { name: 'oa', provider: 'openai', baseUrl: up.channel.baseUrl, apiKey: up.channel.apiKey, models: ['gpt-4o-mini'], pricing: { input: 1, output: 2 } },
];

/** one counted answer, one without usage (non-streaming), one stream without its usage chunk: two estimated */
async function threeRequests(url: string, secret: string): Promise<void> {
  up.enqueue({ usage: { input: 7, output: 3 } }, { noUsage: true }, { noUsage: true });
  for (const body of [ask('gpt-4o-mini'), ask('gpt-4o-mini'), ask('gpt-4o-mini', { stream: true })]) {
    const r = await chat(url, secret, body);
    expect(r.status, r.text).toBe(200);
  }
}

describe('the estimated flag of usage records', () => {
  describe('SQLite, on a store file written before the flag existed', () => {
    const dir = tmpDir();
    const secret = newSecret();
    let gw: GatewayProcess;
    const cli = (...args: string[]) => {
      const r = spawnSync(process.execPath, [BIN, ...args, '--url', gw.url, '--token', ADMIN], { encoding: 'utf8', timeout: 20_000 });
      return { code: r.status, out: r.stdout, err: r.stderr };
    };

    beforeAll(async () => {
      const now = Date.now();
      writeSchema1Store(
        join(dir, 'data', 'switchyard.db'),
        [
          {
            id: 'key_00000000000000a1',
            name: 'old-app',
            owner: 'o',
            hash: hashSecret(secret),
            hint: hintOf(secret),
            models: ['*'],
            limits: {},
            disabled: false,
            createdAt: now - 60_000,
            updatedAt: now - 60_000,
          },
        ],
        [{ ts: now - 30_000, key: 'key_00000000000000a1', model: 'gpt-4o-mini', channel: 'oa', inputTokens: 100, outputTokens: 50, cost: 0.0002 }],
      );
      gw = await startProcess({ gateway: { admin: { token: ADMIN }, usage: { flushIntervalMs: 50 } }, channels: channels() }, {}, dir);
    });

    afterAll(async () => {
      await gw?.stop();
    });

    it('the old key still authenticates; /admin/usage counts the estimated requests per row, the old record as counted', async () => {
      await threeRequests(gw.url, secret);
      const u = await admin(gw.url, 'GET', '/admin/usage?key=old-app&by=model', undefined, ADMIN);
      expect(u.status).toBe(200);
      expect(u.json.rows).toEqual([expect.objectContaining({ group: 'gpt-4o-mini', requests: 4, estimated: 2 })]);
      expect(u.json.total).toMatchObject({ requests: 4, estimated: 2 });
      // the file holds the flag per record: the old one 0, the counted one 0, the two estimated 1
      const db = new Database(join(dir, 'data', 'switchyard.db'), { readonly: true });
      try {
        const rows = db.prepare('SELECT input_tokens AS i, estimated AS e FROM usage_records ORDER BY ts').all() as { i: number; e: number }[];
        expect(rows.map((r) => r.e)).toEqual([0, 0, 1, 1]);
        expect(rows.slice(0, 2).map((r) => r.i)).toEqual([100, 7]);
      } finally {
        db.close();
      }
    });

    it('switchyard usage shows an ESTIMATED column, and --json the per-row count', async () => {
      const other = await createKey(gw.url, { name: 'all-counted' }, ADMIN);
      up.enqueue({ usage: { input: 2, output: 1 } });
      expect((await chat(gw.url, other.secret, ask('gpt-4o-mini'))).status).toBe(200);
      const t = cli('usage', '--by', 'key');
      expect(t.code, t.err).toBe(0);
      const lines = t.out.trimEnd().split('\n');
      expect(lines[0]).toMatch(/^KEY\s+REQUESTS\s+INPUT\s+OUTPUT\s+CACHED\s+COST\s+ESTIMATED$/);
      expect(lines).toContainEqual(expect.stringMatching(/^old-app\s+4\s.*\s2$/));
      expect(lines).toContainEqual(expect.stringMatching(/^all-counted\s+1\s+2\s+1\s.*\s0$/));
      expect(lines[lines.length - 1]).toMatch(/^total\s+5\s.*\s2$/);
      const j = JSON.parse(cli('usage', '--key', 'old-app', '--json').out);
      expect(j.total).toMatchObject({ requests: 4, estimated: 2 });
    });
  });

  describe('Redis', () => {
    let gw: GatewayProcess;

    beforeAll(async () => {
      gw = await startProcess({
        gateway: { admin: { token: ADMIN }, usage: { flushIntervalMs: 50 } },
        channels: channels(),
        store: { kind: 'redis', url: redis.url, prefix: 'usage-estimated:' },
      });
    });

    afterAll(async () => {
      await gw?.stop();
    });

    it('records the flag; /admin/usage counts the estimated requests', async () => {
      const k = await createKey(gw.url, { name: 'on-redis' }, ADMIN);
      await threeRequests(gw.url, k.secret);
      const u = await admin(gw.url, 'GET', `/admin/usage?key=${k.id}&by=model`, undefined, ADMIN);
      expect(u.json.total).toMatchObject({ requests: 3, estimated: 2 });
    });
  });
});
