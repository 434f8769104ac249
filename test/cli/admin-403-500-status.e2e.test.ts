/**
 * Regression: an admin call answered 403 or 500 was printed as the reply's message alone (`switchyard: internal
 * error`, `switchyard: admin API disabled: …`), with neither the status nor the API's error code nor who answered,
 * and one without an error object as a bare `switchyard: HTTP 403`. The line now names the URL, the status and the code, then the message, as the 401's line
 * names its URL; a reply that echoes the token (a proxy's page quoting the request) still never prints it. Every
 * other non-2xx status is said by the same rule (test/cli/admin-non-2xx.e2e.test.ts).
 *
 * A real HTTP server on port 0 answers in the gateway's error shape, with the status its path names; the real CLI.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const TOKEN = 'status-403-500-admin-token-7e2a';
let server: Server;
let base: string;

/** path prefix → [status, body] */
const REPLIES: Record<string, [number, unknown]> = {
  forbidden: [
    403,
    {
      error: {
        message: 'admin API disabled: set gateway.admin.token to use it on a non-loopback bind',
        type: 'permission_error',
        code: 'forbidden',
        param: null,
      },
    },
  ],
  internal: [500, { error: { message: 'internal error', type: 'server_error', code: 'internal_error', param: null } }],
  // a proxy in front that quotes the request's Authorization header in its answer
  echo: [500, { error: { message: `upstream failed for Bearer ${TOKEN}`, code: 'proxy_error' } }],
  bare: [403, { message: 'Forbidden' }],
  missing: [404, { error: { message: 'no key with id or name "k"', type: 'invalid_request_error', code: 'not_found', param: null } }],
};

beforeAll(async () => {
  server = createServer((req, res) => {
    const [status, body] = REPLIES[req.url!.split('/')[1]!]!;
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

const run = (prefix: string, args: string[]) => runCli([...args, '--url', `${base}/${prefix}`, '--token', TOKEN]);

describe('an admin reply of 403 or 500 is reported with its status and code', () => {
  it.each([[['status']], [['keys', 'list', '--json']], [['sessions', 'drain', '--to', 'p']]])(
    '%j: 403 names the URL, the status and the code, then the message',
    async (args) => {
      const r = await run('forbidden', args);
      expect(r.stderr).toBe(
        `switchyard: ${base}/forbidden answered HTTP 403 (forbidden): admin API disabled: set gateway.admin.token to use it on a non-loopback bind\n`,
      );
      expect(r.stdout).toBe('');
      expect(r.code).toBe(1);
    },
    30_000,
  );

  it('500: the status and the code beside "internal error"', async () => {
    const r = await run('internal', ['keys', 'show', 'k']);
    expect(r.stderr).toBe(`switchyard: ${base}/internal answered HTTP 500 (internal_error): internal error\n`);
    expect(r.code).toBe(1);
  });

  it('a 500 that quotes the token: the status and code, the token scrubbed', async () => {
    const r = await run('echo', ['bridge', 'list']);
    expect(r.stderr).toBe(`switchyard: ${base}/echo answered HTTP 500 (proxy_error): upstream failed for Bearer [REDACTED]\n`);
    expect(r.stderr + r.stdout).not.toContain(TOKEN);
    expect(r.code).toBe(1);
  });

  it('a 403 whose JSON has no error object: the status alone, said once', async () => {
    const r = await run('bare', ['usage']);
    expect(r.stderr).toBe(`switchyard: ${base}/bare answered HTTP 403\n`);
    expect(r.code).toBe(1);
  });

  it('another status is said by the same rule', async () => {
    const r = await run('missing', ['keys', 'show', 'k']);
    expect(r.stderr).toBe(`switchyard: ${base}/missing answered HTTP 404 (not_found): no key with id or name "k"\n`);
    expect(r.code).toBe(1);
  });
});
