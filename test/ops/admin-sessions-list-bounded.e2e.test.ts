/**
 * `GET /admin/sessions` lists a bounded page: the most recently updated `limit` sessions (default 100, at most
 * 1000) and `more` when the store holds others. Before, it read every record of the store with its history in
 * one go: 20,000 sessions held the event loop for 12.6 s (every /v1 request waited) and took 180 MB. A real
 * gateway process over a SQLite store seeded by the test; `switchyard sessions list` shows the page and says
 * there are more, and where the next page starts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import { newSession } from '../../src/sessions/model.js';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { runCli } from './cli-run.js';
import { adminGetJson, BAD_LIMITS, expectLimitRefused } from './admin-paged-list.js';

const ADMIN = 'sessions-list-admin-token-5e1';
const SEEDED = 130;
let gw: GatewayProcess;
/** s-0's update time; s-i's is i seconds later */
const t0 = Date.now() - 3_600_000;

const cli = (args: string[]) => runCli([...args, '--url', gw.url, '--token', ADMIN]);
const list = (query = '') => adminGetJson(gw.url, `/admin/sessions${query}`, ADMIN);

beforeAll(async () => {
  const dir = tmpDir();
  const store = await openStore({ kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') });
  const target = { executionTarget: 'gateway' as const, providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' };
  // s-0 the oldest, s-129 the newest; every tenth one closed
  for (let i = 0; i < SEEDED; i++) {
    await store.create({
      ...newSession({ id: `s-${i}`, kind: 'chat', ownerGatewayId: 'gw_sl', target }, t0 + i * 1000),
      status: i % 10 === 0 ? 'closed' : 'active',
    });
  }
  await store.close();
  gw = await startProcess({ gateway: { id: 'gw_sl', admin: { token: ADMIN } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] }, {}, dir);
});
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('GET /admin/sessions is bounded', () => {
  it('by default the 100 most recently updated, newest first, and more: true', async () => {
    const r = await list();
    expect(r.status).toBe(200);
    expect(r.body.more).toBe(true);
    expect(r.body.sessions.map((s: any) => s.id)).toEqual(Array.from({ length: 100 }, (_, i) => `s-${SEEDED - 1 - i}`));
  });

  it('limit picks the page size; more is false once the page holds every match; status filters before the limit', async () => {
    expect((await list('?limit=3')).body).toMatchObject({ more: true, sessions: [{ id: 's-129' }, { id: 's-128' }, { id: 's-127' }] });
    const all = await list(`?limit=${SEEDED}`);
    expect(all.body.more).toBe(false);
    expect(all.body.sessions).toHaveLength(SEEDED);
    expect((await list(`?limit=${SEEDED - 1}`)).body.more).toBe(true);
    const closed = await list('?status=closed&limit=13');
    expect(closed.body.more).toBe(false);
    expect(closed.body.sessions.map((s: any) => s.id)).toEqual(Array.from({ length: 13 }, (_, i) => `s-${(12 - i) * 10}`));
    expect((await list('?status=closed&limit=12')).body.more).toBe(true);
  });

  it.each(BAD_LIMITS)('limit=%s is refused with 400 invalid_request naming limit', (v) => expectLimitRefused(gw.url, '/admin/sessions?', ADMIN, v));

  it('switchyard sessions list shows the page and says there are more; --limit; a bad --limit names the flag', async () => {
    const def = await cli(['sessions', 'list']);
    expect(def.code).toBe(0);
    const rows = def.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^ID\s+KIND\s+STATUS/);
    expect(rows.filter((l) => /^s-\d+\s/.test(l))).toHaveLength(100);
    // the next page starts after s-30, the 100th: its cursor (admin-page.ts) is printed
    const next = Buffer.from(JSON.stringify([t0 + 30 * 1000, 's-30'])).toString('base64url');
    expect(rows[rows.length - 1]).toBe(`(more: the next page with --after ${next}, every page with --all)`);
    const three = await cli(['sessions', 'list', '--limit', '3', '--json']);
    expect(JSON.parse(three.stdout).map((s: any) => s.id)).toEqual(['s-129', 's-128', 's-127']);
    const every = await cli(['sessions', 'list', '--limit', String(SEEDED)]);
    expect(every.stdout).not.toContain('(more:');
    const bad = await cli(['sessions', 'list', '--limit', '5000']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`switchyard: ${gw.url} answered HTTP 400 (invalid_request): --limit: an integer from 1 to 1000\n`);
  });
});
