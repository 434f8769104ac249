/**
 * Regression: the SQLite session store and key store created the folders above their file themselves with a
 * recursive mkdir and then let SQLite open it, so only a gateway start (whose config check looks at `store.path`
 * first, src/gateway-prepare.ts) was covered by the location check. Any other caller that made a store got a
 * recursive mkdir under /proc that never returns (the process hung), a bare ENOTDIR from mkdir under a file, or
 * SQLite's "unable to open database file" for a folder. Now both stores run the start's check themselves before
 * they create anything (readySqlitePath, src/sessions/store-location.ts) and refuse with its reason.
 */
import { spawn } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteKeyStore } from '../../src/keys/sqlite-key-store.js';
import { SqliteStore } from '../../src/sessions/sqlite-store.js';
import { cleanupDirs, tmpDir } from '../helpers/env.js';

afterAll(() => cleanupDirs());

const stores = [
  { name: 'SqliteStore', open: (path: string) => new SqliteStore({ path }), module: 'sessions/sqlite-store.js', make: 'new m.SqliteStore({ path })' },
  { name: 'SqliteKeyStore', open: (path: string) => new SqliteKeyStore(path), module: 'keys/sqlite-key-store.js', make: 'new m.SqliteKeyStore(path)' },
];

/** Opens a store from dist/ in a node process at `path` and prints what it threw; killed when it hangs. */
function openInProcess(module: string, make: string, path: string): Promise<{ code: number | null; out: string }> {
  const url = new URL(`../../dist/${module}`, import.meta.url).href;
  const script = `const m = await import(${JSON.stringify(url)}); const path = ${JSON.stringify(path)};
    try { const s = ${make}; await s.close(); console.log('opened'); } catch (err) { console.log(err.message); }`;
  return new Promise((resolve) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (out += b.toString()));
    // bounded: on the code before the fix the recursive mkdir under /proc never returned
    const kill = setTimeout(() => p.kill('SIGKILL'), 10_000);
    p.once('exit', (code) => {
      clearTimeout(kill);
      resolve({ code, out: out.trim() });
    });
  });
}

describe.each(stores)('$name refuses a path no database can be kept at, as a start does', ({ open, module, make }) => {
  it('a folder', () => {
    const dir = tmpDir();
    expect(() => open(dir)).toThrow(
      `cannot open a SQLite database at ${dir}: ${dir} is a directory; name a database file in it (e.g. ${join(dir, 'switchyard.db')})`,
    );
  });

  it('a path under a file', () => {
    const file = join(tmpDir(), 'plain-file');
    writeFileSync(file, 'not a folder\n');
    const path = join(file, 'data', 'sy.db');
    expect(() => open(path)).toThrow(`cannot open a SQLite database at ${path}: ${file} is not a directory, so ${path} cannot be created`);
  });

  it('a device', () => {
    expect(() => open('/dev/null')).toThrow(
      'cannot open a SQLite database at /dev/null: /dev/null is not a regular file (a device, pipe or socket cannot hold a database)',
    );
  });

  it('a path under /proc: refused at once (the process does not hang in mkdir)', async () => {
    const path = '/proc/switchyard-store-location/data/sy.db';
    expect(await openInProcess(module, make, path)).toEqual({
      code: 0,
      out: `cannot open a SQLite database at ${path}: ${path} is on a proc file system (/proc), where no database can be kept`,
    });
  }, 20_000);

  it('still creates the missing folders above a usable path', async () => {
    const path = join(tmpDir(), 'a', 'b', 'sy.db');
    const store = open(path);
    await store.close();
    expect(existsSync(path)).toBe(true);
  });
});
