/**
 * Regression: `switchyard config reload` made its own HTTP call and its own messages, unlike every other admin
 * command: a rejected admin token read `switchyard: invalid admin token` (not `admin token rejected by <url>: …`,
 * as docs/operations.md says every admin command puts it), and a server that is not a gateway (a web page where
 * the gateway was expected) read `switchyard: HTTP 200`. It now goes through the same admin call as the others.
 *
 * The real binary against a real gateway process with an admin token, and a real HTTP server that is no gateway.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'config-reload-errors-token-6f0a';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
let web: Server;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_reload_errors', admin: { token: ADMIN } } });
  procs.push(gw);
  web = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<html><body>welcome</body></html>');
  });
  await new Promise<void>((resolve) => web.listen(0, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  await new Promise((resolve) => web?.close(resolve));
});

describe('switchyard config reload: failures said as every admin command says them', () => {
  it('a rejected admin token names the gateway', async () => {
    const r = await runCli(['config', 'reload', '--url', gw.url, '--token', 'not-the-token']);
    expect(r.stderr).toBe(
      `switchyard: ${gw.url} answered HTTP 401 (unauthorized): invalid admin token; admin token rejected: give the gateway's gateway.admin.token with --token or $SWITCHYARD_ADMIN_TOKEN\n`,
    );
    expect(r.code).toBe(1);
    // as the other admin commands say it
    expect((await runCli(['status', '--url', gw.url, '--token', 'not-the-token'])).stderr).toBe(r.stderr);
  });

  it('a server that is no gateway: "is this a Switchyard gateway?", not "HTTP 200"', async () => {
    const url = `http://127.0.0.1:${(web.address() as AddressInfo).port}`;
    const r = await runCli(['config', 'reload', '--url', url, '--token', ADMIN]);
    expect(r.stderr).toBe(`switchyard: unexpected reply from ${url}/admin/config/reload (HTTP 200); is this a Switchyard gateway?\n`);
    expect(r.code).toBe(1);
  });

  it('the right token: reloaded', async () => {
    const r = await runCli(['config', 'reload', '--url', gw.url, '--token', ADMIN]);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('reloaded\n  nothing changed live\n');
    expect(r.code).toBe(0);
  });
});
