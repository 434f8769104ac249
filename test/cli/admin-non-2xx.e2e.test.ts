/**
 * Regression: only a 403 or a 500 answer from the admin API was said with who answered, the status and the code; a
 * 401 had its own wording, and 404, 409, 429, 502, 503 and 504 printed the API's message alone (`switchyard: no key
 * with id or name "k"`), a non-JSON error page (a proxy's 502) as `unexpected reply … is this a Switchyard gateway?`.
 * Every non-2xx answer now takes one line: `<url> answered HTTP <status> (<code>): <message>`, then what the status
 * means for the operator where it adds something (an admin route an older gateway lacks, a conflict, a rate limit,
 * the gateway or its store unreachable). No secret (the admin token, a key's secret) is ever in it.
 *
 * A real gateway process for the statuses it answers (401, 404, 409); a real HTTP server on port 0 for those a gateway
 * cannot be made to answer here (429, 502, 504, an older gateway's 404 for an admin route, a proxy's HTML page). The
 * real CLI (dist).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { createKey } from '../keys/helpers.js';
import { runCli } from '../ops/cli-run.js';

const ADMIN = 'non-2xx-admin-token-8d3f5a17c2';
const { procs } = stopAfterAll();
let gw: GatewayProcess;
let keySecret: string;
let server: Server;
let base: string;

/** path prefix → [status, headers, body] of the test server */
const REPLIES: Record<string, [number, Record<string, string>, string]> = {
  limited: [429, { 'retry-after': '7' }, JSON.stringify({ error: { message: 'too many admin calls', code: 'rate_limited' } })],
  gatewaydown: [502, {}, JSON.stringify({ error: { message: `upstream refused Authorization: Bearer ${ADMIN}`, code: 'bad_gateway' } })],
  html: [502, { 'content-type': 'text/html' }, `<html><body>502 Bad Gateway (you sent Bearer ${ADMIN})</body></html>`],
  slow: [504, {}, JSON.stringify({ error: { message: 'the gateway did not answer in time', code: `timeout ${ADMIN}` } })],
  older: [404, {}, JSON.stringify({ error: { message: 'no admin route GET /admin/keys', code: 'not_found' } })],
  busy: [503, {}, JSON.stringify({ error: { message: 'service unavailable' } })],
};

beforeAll(async () => {
  gw = await startProcess({ gateway: { id: 'gw_non_2xx', admin: { token: ADMIN } } });
  procs.push(gw);
  keySecret = (await createKey(gw.url, { name: 'taken' }, ADMIN)).secret;
  server = createServer((req, res) => {
    const [status, headers, body] = REPLIES[req.url!.split('/')[1]!]!;
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

function expectNoSecret(r: { stdout: string; stderr: string }): void {
  for (const s of [ADMIN, keySecret]) {
    expect(r.stdout + r.stderr).not.toContain(s);
    expect(r.stdout + r.stderr).not.toContain(s.slice(-16));
  }
}

describe('a real gateway: every non-2xx answer said by one rule', () => {
  it('404: an unknown key', async () => {
    const r = await runCli(['keys', 'show', 'nobody', '--url', gw.url, '--token', ADMIN]);
    expect(r.stderr).toBe(`switchyard: ${gw.url} answered HTTP 404 (not_found): no key with id or name "nobody"\n`);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expectNoSecret(r);
  });

  it('409: a key name already taken, with what a conflict means', async () => {
    const r = await runCli(['keys', 'create', '--name', 'taken', '--url', gw.url, '--token', ADMIN]);
    expect(r.stderr).toBe(
      `switchyard: ${gw.url} answered HTTP 409 (invalid_request): a key named "taken" already exists; ` +
        'it conflicts with what the gateway holds now (a name already taken, a session already moved): nothing was changed\n',
    );
    expect([r.code, r.stdout]).toEqual([1, '']);
    expectNoSecret(r);
  });

  it("401: a key's secret given as the admin token is never printed", async () => {
    const r = await runCli(['keys', 'list', '--url', gw.url, '--token', keySecret]);
    expect(r.stderr).toBe(
      `switchyard: ${gw.url} answered HTTP 401 (unauthorized): invalid admin token; admin token rejected: give the gateway's gateway.admin.token with --token or $SWITCHYARD_ADMIN_TOKEN\n`,
    );
    expect(r.code).toBe(1);
    expectNoSecret(r);
  });
});

describe('statuses a gateway cannot be made to answer here (a test server)', () => {
  const run = (prefix: string, args: string[]) => runCli([...args, '--url', `${base}/${prefix}`, '--token', ADMIN]);

  it.each([
    ['limited', ['keys', 'list'], '429 (rate_limited): too many admin calls; too many requests: retry in 7 s'],
    [
      'gatewaydown',
      ['status'],
      '502 (bad_gateway): upstream refused Authorization: Bearer [REDACTED]; the gateway, or a proxy in front of it, could not reach what answers (the gateway, its store, a peer): retry shortly, and check that they run',
    ],
    [
      'html',
      ['bridge', 'list'],
      '502, not a JSON reply (a proxy?); the gateway, or a proxy in front of it, could not reach what answers (the gateway, its store, a peer): retry shortly, and check that they run',
    ],
    [
      'slow',
      ['usage'],
      '504: the gateway did not answer in time; the gateway, or a proxy in front of it, could not reach what answers (the gateway, its store, a peer): retry shortly, and check that they run',
    ],
    [
      'older',
      ['keys', 'list'],
      '404 (not_found): no admin route GET /admin/keys; the gateway has no such admin route: is it older than this CLI (switchyard --version)? or is the URL a prefix that leads elsewhere?',
    ],
    ['busy', ['sessions', 'list'], '503: service unavailable; the gateway or its store is unavailable now: retry shortly'],
  ])('%s: %j', async (prefix, args, said) => {
    const r = await run(prefix, args);
    expect(r.stderr).toBe(`switchyard: ${base}/${prefix} answered HTTP ${said}\n`);
    expect([r.code, r.stdout]).toEqual([1, '']);
    expectNoSecret(r);
  });
});
