/**
 * Regression: an admin command took any 2xx JSON reply as the gateway's. Something else answering on the port
 * (another service, a proxy's `{}`, a `null`, a list) made `--json` print `undefined` on stdout with exit 0 —
 * not JSON, and success — and the text form either failed with a TypeError's words (`Cannot read properties of
 * undefined (reading 'length')`) or printed `disconnected undefined` with exit 0. Each command now checks that
 * the reply holds the fields it prints: one line on stderr, nothing on stdout, exit 1.
 *
 * A real HTTP server on port 0 answers every request with the body its path prefix names; the real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const TOKEN = 'reply-shape-admin-token-51c9';
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    const body = req.url!.startsWith('/null/') ? 'null' : req.url!.startsWith('/list/') ? '[1,2]' : '{"ok":true}';
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

/** every admin command, with the path it calls first and the field that path's reply must hold */
const COMMANDS: Array<[string[], string, string]> = [
  [['bridge', 'list'], '/admin/bridges', 'no "peers" array'],
  [['bridge', 'connect', '--peer-url', 'ws://127.0.0.1:9/bridge', '--peer-token', 'peer-secret-7d1'], '/admin/bridges', 'no "peer" object'],
  [['bridge', 'disconnect', 'b1'], '/admin/bridges/b1', 'no "disconnected" string'],
  [['bridge', 'channels'], '/admin/bridges/channels', 'no "peers" array'],
  [['channels', 'list'], '/admin/channels', 'no "channels" array'],
  [['status'], '/admin/overview', 'no "gateway" object'],
  [['sessions', 'list'], '/admin/sessions', 'no "sessions" array'],
  [['sessions', 'show', 's1'], '/admin/sessions/s1', 'no "session" object'],
  [['sessions', 'transfer', 's1', '--to', 'p'], '/admin/sessions/s1/transfer', 'no "to" object'],
  [['sessions', 'drain', '--to', 'p'], '/admin/status', 'no "id" string'],
  [['keys', 'create', '--name', 'k'], '/admin/keys', 'no "key" object'],
  [['keys', 'list'], '/admin/keys', 'no "keys" array'],
  [['keys', 'show', 'k'], '/admin/keys/k', 'no "key" object'],
  [['keys', 'disable', 'k'], '/admin/keys/k/disable', 'no "key" object'],
  [['keys', 'enable', 'k'], '/admin/keys/k/enable', 'no "key" object'],
  [['keys', 'rotate', 'k'], '/admin/keys/k/rotate', 'no "key" object'],
  [['usage'], '/admin/usage?by=model', 'no "rows" array'],
];

describe('an admin command answered by something that is not a Switchyard gateway', () => {
  it.each(COMMANDS)(
    '%j: a JSON object without its fields is refused, --json and text alike',
    async (args, path, missing) => {
      const [json, text] = await Promise.all([
        runCli([...args, '--url', base, '--token', TOKEN, '--json']),
        runCli([...args, '--url', base, '--token', TOKEN]),
      ]);
      for (const r of [json, text]) {
        expect(r.stderr).toBe(`switchyard: unexpected reply from ${base}${path} (HTTP 200, ${missing}); is this a Switchyard gateway?\n`);
        expect(r.stdout).toBe('');
        expect(r.code).toBe(1);
      }
    },
    30_000,
  );

  it.each([
    ['null', 'a JSON null'],
    ['list', 'a JSON array'],
  ])(
    'a reply that is %s, not an object: refused by name',
    async (prefix, what) => {
      const r = await runCli(['keys', 'list', '--url', `${base}/${prefix}`, '--token', TOKEN, '--json']);
      expect(r.stderr).toBe(`switchyard: unexpected reply from ${base}/${prefix}/admin/keys (HTTP 200, ${what}); is this a Switchyard gateway?\n`);
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    },
    30_000,
  );
});
