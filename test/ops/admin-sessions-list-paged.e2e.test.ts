/**
 * `GET /admin/sessions` pages on: with `more` it answers `next`, the cursor of the next page (`after`), as
 * `GET /admin/keys` does. Before, it answered the first `limit` sessions and `more`, and no way to the others: a gateway
 * holding more sessions than the limit (1000 at most) could not list them all, through the API or the CLI. A real
 * gateway process on each store (SQLite, and a real redis-server), seeded by the test with sessions that share their
 * update time in fours; the real CLI (`switchyard sessions list --after`, `--all`).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { openStore, type StoreConfig } from '../../src/sessions/open-store.js';
import { newSession, type Session } from '../../src/sessions/model.js';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { inListOrder } from '../sessions/fixtures/list-order.js';
import { runCli } from './cli-run.js';
import { adminGetJson } from './admin-paged-list.js';

const ADMIN = 'sessions-paged-admin-token-3f8';
const T0 = Date.parse('2026-02-01T00:00:00Z');
const SEEDED = 230;
/** created out of order; in fours that share their update time; every fifth closed */
const SPECS = Array.from({ length: SEEDED }, (_, i): { id: string; updatedAt: number; status: Session['status'] } => {
  const k = (i * 7) % SEEDED;
  return { id: `p-${k}`, updatedAt: T0 + Math.floor(k / 4) * 1000, status: k % 5 === 0 ? 'closed' : 'active' };
});
const ALL = inListOrder(SPECS);
const CLOSED = inListOrder(SPECS.filter((s) => s.status === 'closed'));
const cursorOf = (text: string) => Buffer.from(text, 'utf8').toString('base64url');

/**
 * `after` values no page gave: not base64url, padded, a stray character, bytes that are no UTF-8; then base64url of
 * text that is no cursor: not JSON, JSON of the wrong shape, a pair of the wrong types, a time no Date holds.
 */
const BAD_CURSORS = [
  'abc!',
  'YQ==',
  'YQa',
  '____',
  cursorOf('not json'),
  cursorOf('{"updatedAt":1,"id":"p-1"}'),
  cursorOf('null'),
  cursorOf('[]'),
  cursorOf('[1]'),
  cursorOf('[1,"p-1",2]'),
  cursorOf('["1","p-1"]'),
  cursorOf('[1.5,"p-1"]'),
  cursorOf('[-1,"p-1"]'),
  cursorOf('[1e300,"p-1"]'),
  cursorOf('[9007199254740993,"p-1"]'),
  cursorOf('[1,""]'),
  cursorOf('[1,7]'),
  cursorOf('[1,null]'),
];

interface Backend {
  name: 'sqlite' | 'redis';
  /** the store's config, once the gateway's dir (and Redis) exist */
  store: (dir: string) => StoreConfig;
}

let redis: RedisServer | undefined;
const backends: Backend[] = [
  { name: 'sqlite', store: (dir) => ({ kind: 'sqlite', path: join(dir, 'data', 'switchyard.db') }) },
  { name: 'redis', store: () => ({ kind: 'redis', url: redis!.url }) },
];

beforeAll(async () => {
  redis = await startRedis();
});
afterAll(async () => {
  await redis?.stop();
  cleanupDirs();
});

describe.each(backends)('GET /admin/sessions pages on: $name', (b) => {
  let gw: GatewayProcess;
  let dir: string;
  const list = (query = '') => adminGetJson(gw.url, `/admin/sessions${query}`, ADMIN);
  const cli = (args: string[], url = gw.url) => runCli([...args, '--url', url, '--token', ADMIN]);

  /** every page from the first, `query` on each; the pages' answers and the ids they listed */
  async function readAll(query: string): Promise<{ pages: any[]; ids: string[] }> {
    const pages: any[] = [];
    for (let after: string | undefined; ;) {
      const r = await list(`?${query}${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`);
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      pages.push(r.body);
      if (!r.body.more) return { pages, ids: pages.flatMap((p) => p.sessions.map((s: any) => s.id)) };
      expect(typeof r.body.next).toBe('string');
      expect(r.body.next).not.toBe(after);
      after = r.body.next;
    }
  }

  beforeAll(async () => {
    dir = tmpDir();
    const cfg = b.store(dir);
    const store = await openStore(cfg);
    for (const s of SPECS)
      await store.create({
        ...newSession(
          {
            id: s.id,
            kind: 'chat',
            ownerGatewayId: 'gw_sp',
            target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
          },
          s.updatedAt,
        ),
        status: s.status,
      });
    await store.close();
    gw = await startProcess(
      { gateway: { id: 'gw_sp', admin: { token: ADMIN } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }], store: cfg },
      {},
      dir,
    );
  });
  afterAll(async () => {
    await gw?.stop();
  });

  it('page after page from the cursor each answers, every session exactly once, newest first and ties by id; the last page has no next', async () => {
    const { pages, ids } = await readAll('');
    expect(pages.map((p) => [p.sessions.length, p.more])).toEqual([
      [100, true],
      [100, true],
      [30, false],
    ]);
    expect(pages[2]).not.toHaveProperty('next');
    expect(ids).toEqual(ALL);
    // a page size that ends pages inside a run of sessions updated in the same millisecond
    expect((await readAll('limit=3')).ids).toEqual(ALL);
  });

  it('status combines with the cursor: the pages list that status only, each session of it once', async () => {
    const { pages, ids } = await readAll('status=closed&limit=7');
    expect(ids).toEqual(CLOSED);
    expect(pages).toHaveLength(Math.ceil(CLOSED.length / 7));
    expect(pages.flatMap((p) => p.sessions.map((s: any) => s.status))).toEqual(CLOSED.map(() => 'closed'));
  });

  it.each(BAD_CURSORS)('after=%s (no cursor a page gave) is refused with 400 invalid_request naming after', async (v) => {
    const r = await list(`?after=${encodeURIComponent(v)}`);
    expect(r.status).toBe(400);
    expect(r.body).toEqual({
      error: {
        message: "after: not a cursor this list gave (the previous page's next)",
        type: 'invalid_request_error',
        code: 'invalid_request',
        param: 'after',
      },
    });
  });

  it('switchyard sessions list prints the next cursor; --after reads that page; --all reads every page (table and --json)', async () => {
    const first = await cli(['sessions', 'list', '--limit', '3']);
    expect(first.code).toBe(0);
    const lines = first.stdout.trim().split('\n');
    expect(lines.slice(1, 4).map((l) => l.split(/\s+/)[0])).toEqual(ALL.slice(0, 3));
    const next = /^\(more: the next page with --after (\S+), every page with --all\)$/.exec(lines[lines.length - 1]!)?.[1];
    expect(next, first.stdout).toBeDefined();
    const second = await cli(['sessions', 'list', '--limit', '3', '--after', next!, '--json']);
    expect(second.code).toBe(0);
    expect(JSON.parse(second.stdout).map((s: any) => s.id)).toEqual(ALL.slice(3, 6));
    // stdout stays the array alone; where the next page starts is said on stderr
    expect(second.stderr).toMatch(/^switchyard: more sessions: --after \S+\n$/);

    const json = await cli(['sessions', 'list', '--all', '--json']);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).map((s: any) => s.id)).toEqual(ALL);
    const table = await cli(['sessions', 'list', '--all', '--limit', '40', '--status', 'closed']);
    expect(table.code).toBe(0);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^ID\s+KIND\s+STATUS/);
    expect(rows.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(CLOSED);
    // from a cursor on: the rest
    const rest = await cli(['sessions', 'list', '--all', '--after', next!, '--json']);
    expect(JSON.parse(rest.stdout).map((s: any) => s.id)).toEqual(ALL.slice(3));
  });

  it('a bad --after is refused naming the flag', async () => {
    const bad = await cli(['sessions', 'list', '--after', 'abc!']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toBe(`switchyard: ${gw.url} answered HTTP 400 (invalid_request): --after: not a cursor this list gave (the previous page's next)\n`);
    // an unset shell variable: not the first page again
    expect(await cli(['sessions', 'list', '--after', ''])).toEqual({
      code: 1,
      stdout: '',
      stderr: 'switchyard: --after is empty: give the cursor a list printed\n',
    });
  });

  // the stamp is written into the SQLite file beside the gateway; registered for that store only, never skipped
  if (b.name === 'sqlite')
    it('switchyard sessions list --all lists a session once when an update stamped behind the cursor (a clock behind) lists it again', async () => {
      let moved = false;
      // between the CLI and the gateway: before the second page is answered, the first session of the first page is
      // stamped as a gateway whose clock is far behind would stamp it, which places it on a later page
      const proxy = http.createServer((req, res) => {
        void (async () => {
          if (!moved && req.url?.includes('after=')) {
            moved = true;
            const db = new Database(join(dir, 'data', 'switchyard.db'));
            db.prepare('UPDATE sessions SET updated_at = ? WHERE id = ?').run(T0 - 1, ALL[0]);
            db.close();
          }
          const up = await fetch(gw.url + req.url, { headers: { authorization: req.headers.authorization ?? '' } });
          res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
          res.end(await up.text());
        })().catch((err) => res.destroy(err));
      });
      await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
      try {
        const r = await cli(['sessions', 'list', '--all', '--json'], `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
        expect(moved).toBe(true);
        // the gateway answered it twice (first on page one, last on page three): the CLI shows it once, where it was first
        expect(JSON.parse(r.stdout).map((s: any) => s.id)).toEqual(ALL);
        expect((await readAll('')).ids).toEqual([...ALL.slice(1), ALL[0]]);
      } finally {
        await new Promise((r) => proxy.close(r));
      }
    });
});
