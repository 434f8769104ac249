/**
 * Ended-session retention (`acp.endedSessionRetentionDays`), through a real gateway process over its SQLite
 * store: at startup the closed and moved-away sessions last updated before the retention are deleted (and the
 * deletion logged with its count); open sessions of any age and recently closed ones are kept. Off (the
 * default), nothing is deleted.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/sessions/sqlite-store.js';
import { newSession, type Session } from '../../src/sessions/model.js';
import { call, chatBody, cleanupDirs, startProcess, tmpDir, waitFor } from '../helpers/env.js';

const DAY = 86_400_000;
afterAll(() => cleanupDirs());

const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };
const at = (id: string, status: Session['status'], ageDays: number): Session => ({
  ...newSession({ id, kind: 'chat', ownerGatewayId: 'gw_ret_s', target }),
  status,
  updatedAt: Date.now() - ageDays * DAY,
});

/** A store folder holding 300 sessions closed 40 days ago, one moved away then, one open since then, one closed today. */
async function seeded(): Promise<{ dir: string; db: string }> {
  const dir = tmpDir();
  const db = join(dir, 'data', 'switchyard.db');
  const s = new SqliteStore({ path: db });
  for (let i = 0; i < 300; i++) await s.create(at(`old-${i}`, 'closed', 40));
  await s.create({ ...at('old-moved', 'moved', 40), movedTo: 'gw_elsewhere' });
  await s.create(at('old-open', 'active', 40));
  await s.create(at('new-closed', 'closed', 0));
  await s.close();
  return { dir, db };
}

const logLines = (text: string) =>
  text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);

const config = (acp: Record<string, unknown>) => ({ gateway: { id: 'gw_ret_s' }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }], acp });

describe('ended-session retention', () => {
  it('endedSessionRetentionDays: 30 deletes the sessions that ended before, logs how many, keeps the rest', async () => {
    const { dir, db } = await seeded();
    const g = await startProcess(config({ endedSessionRetentionDays: 30 }), {}, dir);
    const line = await waitFor(() => logLines(g.logs()).find((l) => l.msg === 'ended sessions pruned'), 'the prune log line');
    expect(line).toMatchObject({ deleted: 301, endedSessionRetentionDays: 30 });
    await g.stop();
    const s = new SqliteStore({ path: db });
    expect((await s.list()).map((x) => x.id).sort()).toEqual(['new-closed', 'old-open']);
    await s.close();
  });

  it('off by default: the same store keeps every session', async () => {
    const { dir, db } = await seeded();
    const g = await startProcess(config({}), {}, dir);
    expect((await call(g, '/v1/chat/completions', { body: chatBody('mock-1', 'hi') })).status).toBe(200);
    await g.stop();
    expect(g.logs()).not.toContain('ended sessions pruned');
    const s = new SqliteStore({ path: db });
    expect((await s.countByStatus()).closed).toBe(301);
    await s.close();
  });
});
