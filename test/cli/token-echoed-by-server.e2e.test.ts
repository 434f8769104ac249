/**
 * Regression: the CLI printed whatever the server answered, so a server that echoes the request's credentials (a
 * proxy's error page, a misbehaving or hostile endpoint) put the CLI's own admin or ACP token, or the peer token
 * of `bridge connect`, into its error line or its `--json` output, and from there into terminals, CI logs and
 * pasted bug reports. The tokens the CLI sends are now registered with the secret scrubber: each is printed as
 * `[REDACTED]`, on stderr and on stdout.
 *
 * A real HTTP server on port 0 that quotes the request's Authorization header and body back; the real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'echoed-admin-token-3f9a71';
const ACP = 'echoed-acp-token-b82c40';
const PEER = 'echoed-peer-token-5d17e9';
let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const said = `you sent ${req.headers.authorization} with ${body}`;
      res.writeHead(req.url === '/admin/bridges' && req.method === 'GET' ? 200 : 400, { 'content-type': 'application/json' });
      // a list the CLI prints (stdout), else an error it reports (stderr)
      res.end(
        JSON.stringify(req.method === 'GET' && req.url === '/admin/bridges' ? { peers: [{ name: 'p', lastError: said }] } : { error: { message: said } }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('a server that echoes the credentials it was sent', () => {
  it('admin token in an error line: redacted', async () => {
    const r = await runCli(['keys', 'list', '--url', base, '--token', ADMIN]);
    expect(r.stderr).toBe(`switchyard: ${base} answered HTTP 400: you sent Bearer [REDACTED] with \n`);
    expect(r.code).toBe(1);
  });

  it('admin token in --json output: redacted', async () => {
    const r = await runCli(['bridge', 'list', '--url', base, '--token', ADMIN, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual([{ name: 'p', lastError: 'you sent Bearer [REDACTED] with ' }]);
  });

  it('admin token from $SWITCHYARD_ADMIN_TOKEN: redacted too', async () => {
    const r = await runCli(['keys', 'list', '--url', base], { SWITCHYARD_ADMIN_TOKEN: ADMIN });
    expect(r.stderr).toBe(`switchyard: ${base} answered HTTP 400: you sent Bearer [REDACTED] with \n`);
  });

  it('bridge connect: neither the admin token nor the peer token is printed', async () => {
    const r = await runCli(['bridge', 'connect', '--peer-url', 'ws://127.0.0.1:9/bridge', '--peer-token', PEER, '--url', base, '--token', ADMIN]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`switchyard: ${base} answered HTTP 400: you sent Bearer [REDACTED] with `);
    expect(r.stderr).toContain('"token":"[REDACTED]"');
    expect(r.stderr).not.toContain(PEER);
  });

  it('task: the ACP token in an error line: redacted', async () => {
    const r = await runCli(['task', 'providers', '--local', '--url', base, '--token', ACP]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('Bearer [REDACTED]');
    expect(r.stderr).not.toContain(ACP);
  });
});
