/**
 * Regression: a command given an empty id or name (`keys show ""`, `sessions transfer "$ID" --to "$PEER"` with a
 * variable unset) sent it as an empty path segment (or an empty `to`), and the operator read the gateway's `no admin
 * route GET /admin/keys/`. Such an argument is now refused by the CLI, naming it, before any request is sent.
 *
 * A real HTTP server on port 0 that records every request it gets; the real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const TOKEN = 'empty-id-admin-token-0c4d';
const seen: string[] = [];
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    seen.push(`${req.method} ${req.url}`);
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ error: { message: `no admin route ${req.method} ${req.url}` } }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('an empty id or name', () => {
  it.each([
    [['sessions', 'show', ''], '<id>'],
    [['sessions', 'transfer', '', '--to', 'peer'], '<id>'],
    [['sessions', 'transfer', 's1', '--to', ''], '--to'],
    [['sessions', 'drain', '--to', ' '], '--to'],
    [['keys', 'show', ''], '<key>'],
    [['keys', 'disable', ''], '<key>'],
    [['keys', 'enable', ' '], '<key>'],
    [['keys', 'rotate', ''], '<key>'],
    [['bridge', 'disconnect', ''], '<name|id>'],
  ])(
    '%j: refused naming %s, nothing sent',
    async (args, what) => {
      seen.length = 0;
      const r = await runCli([...args, '--url', base, '--token', TOKEN]);
      expect(r.stderr).toBe(`switchyard: ${what} is empty: give an id or a name\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
      expect(seen).toEqual([]);
    },
    30_000,
  );
});
