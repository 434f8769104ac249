/**
 * Regression: `--url http://<another host>` sent the admin token (from --token, the environment, or the local
 * config's gateway.admin.token) in clear text without a word. The CLI now warns once on stderr, naming the
 * host and never the token, whenever a token goes over plain http:// to a host that is not loopback; loopback
 * and https:// stay quiet. The command itself still runs (a trusted LAN may be the operator's choice).
 *
 * A real HTTP server standing in for the gateway, on this machine's first non-loopback IPv4 address and on
 * 127.0.0.1, records the Authorization header it gets.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../ops/cli-run.js';

const TOKEN = 'cleartext-admin-token-4a9f';
const seen: Array<string | undefined> = [];
let lan: Server;
let loop: Server;
let lanIp: string;

function listen(host: string): Promise<Server> {
  const s = createServer((req, res) => {
    seen.push(req.headers.authorization);
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"peers":[]}');
  });
  return new Promise((resolve) => s.listen(0, host, () => resolve(s)));
}
const port = (s: Server) => (s.address() as AddressInfo).port;

beforeAll(async () => {
  const ip = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;
  if (!ip) throw new Error('this test needs a non-loopback IPv4 address on this machine (none found)');
  lanIp = ip;
  lan = await listen(lanIp);
  loop = await listen('127.0.0.1');
});

afterAll(async () => {
  await Promise.all([lan, loop].map((s) => s && new Promise((r) => s.close(r))));
});

describe('the admin token over plain http', () => {
  it('to a host that is not loopback: a warning naming the host, not the token; the call still goes', async () => {
    seen.length = 0;
    const r = await runCli(['bridge', 'list', '--url', `http://${lanIp}:${port(lan)}`, '--token', TOKEN]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('no bridges\n');
    expect(r.stderr).toBe(
      `switchyard: warning: sending the admin token in clear text to ${lanIp} (http://, not this machine); use https:// (gateway.tls) or reach the gateway through a tunnel\n`,
    );
    expect(seen).toEqual([`Bearer ${TOKEN}`]);
  });

  it('the same token from the environment: the same warning', async () => {
    const r = await runCli(['bridge', 'list', '--url', `http://${lanIp}:${port(lan)}`], { SWITCHYARD_ADMIN_TOKEN: TOKEN });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/^switchyard: warning: sending the admin token in clear text to /);
    expect(r.stderr).not.toContain(TOKEN);
  });

  it('to loopback, or with no token: no warning', async () => {
    const quiet = await runCli(['bridge', 'list', '--url', `http://127.0.0.1:${port(loop)}`, '--token', TOKEN]);
    expect(quiet.code).toBe(0);
    expect(quiet.stderr).toBe('');
    // no token anywhere (no flag, no variable, built-in defaults: no config file here): nothing to warn about
    seen.length = 0;
    const none = await runCli(['bridge', 'list', '--url', `http://${lanIp}:${port(lan)}`], { SWITCHYARD_CONFIG: '' });
    expect(none.code).toBe(0);
    expect(none.stderr).toBe('');
    expect(seen).toEqual([undefined]);
  });
});
