/**
 * Regression: an admin command whose gateway accepted the connection and then said nothing within the 10 s bound
 * read `cannot reach the gateway at <url> (UND_ERR_HEADERS_TIMEOUT); is it running?`, wrong on both counts (it
 * was reached, and it runs); a reply whose body stalled or was cut short escaped as undici's bare message
 * (`Body Timeout Error`, `other side closed`). Each now says what happened, in one line, exit 1.
 *
 * A real gateway process stopped with SIGSTOP (the kernel still accepts its connections; nothing answers), and
 * a real HTTP server that sends a reply's headers and the start of its body, then stalls or closes.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'admin-silent-token-2a7c';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
let half: Server;

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_admin_silent', admin: { token: ADMIN } } });
  procs.push(gw);
  half = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': '200' });
    // the stalled one stops there; the cut one closes its connection 190 bytes short
    res.write('{"peers":[', () => {
      if (req.url === '/cut/admin/bridges') req.socket.destroy();
    });
  });
  await new Promise<void>((resolve) => half.listen(0, '127.0.0.1', resolve));
}, 60_000);

afterAll(async () => {
  half?.closeAllConnections();
  await new Promise((resolve) => half?.close(resolve));
});

describe('an admin command whose gateway goes quiet', () => {
  it('connected, no answer within 10 s: said so, not "is it running?"', async () => {
    gw.kill('SIGSTOP');
    try {
      const r = await runCli(['status', '--url', gw.url, '--token', ADMIN]);
      expect(r.stderr).toBe(`switchyard: ${gw.url} accepted the connection but did not answer within 10 s\n`);
      expect(r.code).toBe(1);
    } finally {
      gw.kill('SIGCONT');
    }
    // and it answers again once it runs
    expect((await runCli(['status', '--url', gw.url, '--token', ADMIN])).code).toBe(0);
  }, 30_000);

  it('a reply that stalls after its headers, or is cut short: one line each', async () => {
    const base = `http://127.0.0.1:${(half.address() as AddressInfo).port}`;
    const [stalled, cut] = await Promise.all([
      runCli(['bridge', 'list', '--url', base, '--token', ADMIN]),
      runCli(['bridge', 'list', '--url', `${base}/cut`, '--token', ADMIN]),
    ]);
    expect(stalled.stderr).toBe(`switchyard: ${base} stopped sending its reply (HTTP 200) for 10 s\n`);
    expect(stalled.code).toBe(1);
    expect(cut.stderr).toMatch(new RegExp(`^switchyard: the reply from ${base}/cut was cut short \\(HTTP 200, [A-Z_]+\\)\\n$`));
    expect(cut.code).toBe(1);
  }, 30_000);
});
