/**
 * `GET /admin/keys` lists a page, by name: `limit` as `GET /admin/sessions` takes it (1-1000, default 100), `more`,
 * and `next`, the cursor of the next page (`after`). Before, it read and answered every key of the store in one call.
 * Since names are unique and never change, a key created, disabled or rotated between two pages neither repeats a key
 * nor hides one (an offset would: a key created before it shifts the next page by one). `switchyard keys list` reads
 * every page. A real gateway process over a SQLite store seeded by the test, and the real CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { hashSecret, hintOf, newSecret } from '../../src/keys/model.js';
import { cleanupDirs, startProcess, tmpDir, type GatewayProcess } from '../helpers/env.js';
import { runCli } from '../ops/cli-run.js';
import { adminGetJson, BAD_LIMITS, expectLimitRefused } from '../ops/admin-paged-list.js';
import { admin, ask, chat, createKey } from './helpers.js';

const ADMIN = 'keys-list-admin-token-7c2';
const SEEDED = 250;
/** k-000 … k-249: name order is the order of the numbers */
const nameOf = (i: number) => `k-${String(i).padStart(3, '0')}`;
const NAMES = Array.from({ length: SEEDED }, (_, i) => nameOf(i));
/** the secret of the last key by name, to spend with it */
const lastSecret = newSecret();
let gw: GatewayProcess;

const list = (query = '') => adminGetJson(gw.url, `/admin/keys${query}`, ADMIN);
const names = (body: any): string[] => body.keys.map((k: any) => k.name);

/** every page from the first, `between(page)` run after each page is read; the pages' names and answers */
async function readAll(limit: number, between: (page: number, next: string) => Promise<void> = async () => {}) {
  const seen: string[] = [];
  const pages: any[] = [];
  for (let after: string | undefined; ;) {
    const r = await list(`?limit=${limit}${after === undefined ? '' : `&after=${encodeURIComponent(after)}`}`);
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    pages.push(r.body);
    seen.push(...names(r.body));
    if (!r.body.more) return { seen, pages };
    await between(pages.length, r.body.next);
    after = r.body.next;
  }
}

beforeAll(async () => {
  const dir = tmpDir();
  const store = new SqliteKeyStore(join(dir, 'data', 'switchyard.db'));
  // written in reverse, so that the store's own order (rowid) is not the names'
  for (let i = SEEDED - 1; i >= 0; i--) {
    const secret = i === SEEDED - 1 ? lastSecret : newSecret();
    await store.create({
      id: `key_${(0x1000 + i).toString(16)}`,
      name: nameOf(i),
      owner: 'seed',
      hash: hashSecret(secret),
      hint: hintOf(secret),
      models: ['*'],
      limits: {},
      disabled: false,
      createdAt: Date.now() - i,
      updatedAt: Date.now() - i,
    });
  }
  await store.close();
  gw = await startProcess(
    { gateway: { id: 'gw_kl', admin: { token: ADMIN }, usage: { flushIntervalMs: 50 } }, channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }] },
    {},
    dir,
  );
});
afterAll(async () => {
  await gw?.stop();
  cleanupDirs();
});

describe('GET /admin/keys is paged', () => {
  it('by default the first 100 by name, more and a next cursor; each page from the last one, until more is false', async () => {
    const first = await list();
    expect(first.status).toBe(200);
    expect(first.body.more).toBe(true);
    expect(typeof first.body.next).toBe('string');
    expect(names(first.body)).toEqual(NAMES.slice(0, 100));
    const { seen, pages } = await readAll(100);
    expect(pages.map((p) => [p.keys.length, p.more])).toEqual([
      [100, true],
      [100, true],
      [50, false],
    ]);
    expect(pages[2]).not.toHaveProperty('next');
    expect(seen).toEqual(NAMES);
  });

  it('limit picks the page size; more is false once the page holds the last key', async () => {
    expect(names((await list('?limit=3')).body)).toEqual(['k-000', 'k-001', 'k-002']);
    const all = await list(`?limit=${SEEDED}`);
    expect(all.body.more).toBe(false);
    expect(names(all.body)).toEqual(NAMES);
    expect((await list(`?limit=${SEEDED - 1}`)).body.more).toBe(true);
    const { seen, pages } = await readAll(7);
    expect(pages).toHaveLength(Math.ceil(SEEDED / 7));
    expect(seen).toEqual(NAMES);
  });

  it.each(BAD_LIMITS)('limit=%s is refused with 400 invalid_request naming limit', (v) => expectLimitRefused(gw.url, '/admin/keys?', ADMIN, v));

  // not base64url; padded; one character past a whole byte; bytes that are no UTF-8 text
  it.each(['abc!', 'a b', 'YQ==', 'YQa', '____'])('after=%s (no cursor a page gave) is refused with 400 invalid_request naming after', async (v) => {
    const r = await list(`?after=${encodeURIComponent(v)}`);
    expect(r.status).toBe(400);
    expect(r.body.error).toMatchObject({ code: 'invalid_request', param: 'after', message: "after: not a cursor this list gave (the previous page's next)" });
  });

  it('/admin/usage?by=key names a key from the last page', async () => {
    expect((await chat(gw.url, lastSecret, ask('mock-1'))).status).toBe(200);
    const r = await admin(gw.url, 'GET', '/admin/usage?by=key', undefined, ADMIN);
    expect(r.status).toBe(200);
    expect(r.json.rows).toEqual([expect.objectContaining({ group: nameOf(SEEDED - 1), requests: 1 })]);
  });

  it('switchyard keys list reads every page: each key once, by name (table and --json)', async () => {
    const json = await runCli(['keys', 'list', '--json', '--url', gw.url, '--token', ADMIN]);
    expect(json.stderr).toBe('');
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout).map((k: any) => k.name)).toEqual(NAMES);
    const table = await runCli(['keys', 'list', '--url', gw.url, '--token', ADMIN]);
    expect(table.code).toBe(0);
    const rows = table.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^ID\s+NAME\s+OWNER/);
    expect(rows.slice(1).map((l) => l.split(/\s+/)[1])).toEqual(NAMES);
  });

  it('keys created, disabled and rotated between two pages repeat no key and hide none', async () => {
    const { seen } = await readAll(100, async (page) => {
      if (page !== 1) return;
      // before the cursor (k-099): an offset would start the next page one key early, listing k-099 again
      await createKey(gw.url, { name: 'k-050a' }, ADMIN);
      await createKey(gw.url, { name: 'k-150a' }, ADMIN);
      expect((await admin(gw.url, 'POST', '/admin/keys/k-120/disable', undefined, ADMIN)).status).toBe(200);
      expect((await admin(gw.url, 'POST', '/admin/keys/k-130/rotate', undefined, ADMIN)).status).toBe(200);
    });
    // k-050a was created behind the cursor, after its part was read; k-150a ahead of it
    expect(seen).toEqual([...NAMES.slice(0, 151), 'k-150a', ...NAMES.slice(151)]);
  });

  it('switchyard keys list with keys created and disabled while it reads: every key once, and it read page after page', async () => {
    const urls: string[] = [];
    let changed = false;
    // between the CLI and the gateway: before the second page is answered, a key is created on each side of the
    // cursor and one is disabled
    const proxy = http.createServer((req, res) => {
      void (async () => {
        urls.push(req.url ?? '');
        if (!changed && req.url?.includes('after=')) {
          changed = true;
          await createKey(gw.url, { name: 'k-000b' }, ADMIN);
          await createKey(gw.url, { name: 'k-249b' }, ADMIN);
          expect((await admin(gw.url, 'POST', '/admin/keys/k-200/disable', undefined, ADMIN)).status).toBe(200);
        }
        const up = await fetch(gw.url + req.url, { headers: { authorization: req.headers.authorization ?? '' } });
        res.writeHead(up.status, { 'content-type': up.headers.get('content-type') ?? 'application/json' });
        res.end(await up.text());
      })().catch((err) => res.destroy(err));
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    try {
      const r = await runCli(['keys', 'list', '--json', '--url', `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`, '--token', ADMIN]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
      const listed = JSON.parse(r.stdout) as any[];
      // the previous test's k-050a and k-150a, and k-249b; not k-000b, created behind the cursor
      expect(listed.map((k) => k.name)).toEqual([...NAMES.slice(0, 51), 'k-050a', ...NAMES.slice(51, 151), 'k-150a', ...NAMES.slice(151), 'k-249b']);
      expect(listed.find((k) => k.name === 'k-200').status).toBe('disabled');
      expect(urls).toEqual(['/admin/keys', expect.stringMatching(/^\/admin\/keys\?after=/), expect.stringMatching(/^\/admin\/keys\?after=/)]);
    } finally {
      await new Promise((r) => proxy.close(r));
    }
  });
});
