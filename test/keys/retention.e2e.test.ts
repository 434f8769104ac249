/**
 * Usage retention (`gateway.usage.retentionDays`), through a real gateway process over its SQLite store: at
 * startup the records older than the retention are deleted (and the deletion logged with its count), the rest
 * kept, including this month's for budget seeding. Off (the default), nothing is ever deleted.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import type { UsageRecord } from '../../src/usage/record.js';
import { call, chatBody, cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';

const DAY = 86_400_000;
afterAll(() => cleanupDirs());

const rec = (ts: number, key: string): UsageRecord => ({
  ts,
  key,
  model: 'mock-1',
  channel: 'm',
  peer: '',
  direction: 'local',
  inputTokens: 3,
  outputTokens: 4,
  cachedTokens: 0,
  cost: 0,
  stream: false,
  estimated: false,
});

/** A store folder holding 7,000 records from 40 days ago and two from 10 days ago and now. */
async function seeded(): Promise<{ dir: string; db: string; recent: UsageRecord[] }> {
  const dir = tmpDir();
  const db = join(dir, 'data', 'switchyard.db');
  const s = new SqliteKeyStore(db);
  const now = Date.now();
  await s.appendUsage(Array.from({ length: 7000 }, (_, i) => rec(now - 40 * DAY + i, 'key_old')));
  const recent = [rec(now - 10 * DAY, 'key_recent'), rec(now, 'key_recent')];
  await s.appendUsage(recent);
  await s.close();
  return { dir, db, recent };
}

const logLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('usage retention', () => {
  it('retentionDays: 32 deletes the older records at startup, logs how many, keeps the rest', async () => {
    const { dir, db, recent } = await seeded();
    const g = await startProcess(
      { gateway: { id: 'gw_ret', usage: { retentionDays: 32 } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] },
      {},
      dir,
    );
    const line = await waitFor(() => logLines(g.logs()).find((l) => l.msg === 'usage records pruned'), 'the prune log line');
    expect(line).toMatchObject({ deleted: 7000, retentionDays: 32 });
    expect(Date.parse(String(line.before))).toBeLessThan(Date.now() - 32 * DAY + 60_000);
    await g.stop();
    const s = new SqliteKeyStore(db);
    expect(await s.queryUsage({})).toEqual(recent);
    await s.close();
  });

  it('off by default: the same store keeps every record', async () => {
    const { dir, db } = await seeded();
    const g = await startProcess({ gateway: { id: 'gw_keep' }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] }, {}, dir);
    // the gateway is up and has served a request (its store open and in use) before it stops
    expect((await call(g, '/v1/chat/completions', { body: chatBody('mock-1', 'hi') })).status).toBe(200);
    await g.stop();
    expect(g.logs()).not.toContain('usage records pruned');
    const s = new SqliteKeyStore(db);
    expect((await s.queryUsage({ key: 'key_old' })).length).toBe(7000);
    await s.close();
  });
});
