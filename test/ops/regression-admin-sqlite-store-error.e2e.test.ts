/**
 * Regression (the SQLite side of test/cli/regression-admin-store-unavailable): a SQLite store that fails (here: its
 * database closed under the gateway) made `/admin/keys*`, `/admin/usage` and `/admin/sessions*` answer `500
 * internal`. They now answer `503 key_store_unavailable` / `503 session_store_unavailable` with Retry-After, naming
 * nothing of the store (not its path, not SQLite's error), `/admin/overview` still answers with the sessions part
 * marked unreadable, and the real CLI prints the message and exits 1. A session transfer whose store read fails got
 * `500 internal` too, and one whose store failed while it read the session's update log answered `500 internal` with the
 * store's error text in its message; both are now `503 session_store_unavailable`, the text only in the log.
 *
 * A gateway in this process (to close its databases), the real CLI binary against it.
 */
import { afterAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { newSession } from '../../src/sessions/model.js';
import { call, cleanupDirs, memoryLogger, startBridgedPair, startGw, startInProcess, waitForBridgeOpen, wsUrl } from '../helpers/env.js';
import { runCli } from './cli-run.js';

let gw: Gateway | undefined;
const pair: Gateway[] = [];
afterAll(async () => {
  await gw?.close();
  for (const g of pair) await g.close();
  cleanupDirs();
});

function expectNothingOfTheStore(text: string): void {
  expect(text.toLowerCase()).not.toMatch(/sqlite|switchyard\.db|database|not open|internal error/);
}

describe('the admin API while the SQLite store fails', () => {
  it("answers 503 with the store's code and Retry-After, never 500; the CLI says so and exits 1", async () => {
    const log = memoryLogger();
    gw = await startInProcess({ channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }] }, log.logger);
    const g = gw;
    expect((await call(g, '/admin/keys', { body: { name: 'before' } })).status).toBe(201);
    // both stores are one SQLite file, each with its own connection: close both (the key store's is the service's own)
    await g.store.close();
    await (g.keys as unknown as { o: { store: { close(): Promise<void> } } }).o.store.close();

    const keyCalls: Array<[string, unknown?]> = [
      ['/admin/keys'],
      ['/admin/keys', { name: 'while-down' }],
      ['/admin/keys/before'],
      ['/admin/keys/before/rotate', {}],
      ['/admin/usage'],
    ];
    for (const [path, body] of keyCalls) {
      const r = await call(g, path, body === undefined ? { method: 'GET' } : { body });
      expect([path, r.status, r.headers.get('retry-after'), r.json.error?.code]).toEqual([path, 503, '1', 'key_store_unavailable']);
      expectNothingOfTheStore(r.text);
    }
    for (const path of ['/admin/sessions', '/admin/sessions/s1']) {
      const r = await call(g, path, { method: 'GET' });
      expect([path, r.status, r.headers.get('retry-after'), r.json.error?.code]).toEqual([path, 503, '1', 'session_store_unavailable']);
      expect(r.json.error.message).toBe('the session store cannot be reached now: retry shortly');
      expectNothingOfTheStore(r.text);
    }
    const overview = await call(g, '/admin/overview', { method: 'GET' });
    expect(overview.status).toBe(200);
    expect(overview.json.sessions.storeReadable).toBe(false);

    const list = await runCli(['keys', 'list', '--url', g.url]);
    expect([list.code, list.stdout, list.stderr]).toEqual([
      1,
      '',
      `switchyard: ${g.url} answered HTTP 503 (key_store_unavailable): the key store cannot be reached now: retry shortly\n`,
    ]);
    const sessions = await runCli(['sessions', 'list', '--url', g.url]);
    expect([sessions.code, sessions.stdout, sessions.stderr]).toEqual([
      1,
      '',
      `switchyard: ${g.url} answered HTTP 503 (session_store_unavailable): the session store cannot be reached now: retry shortly\n`,
    ]);
    expect(log.lines.some((l) => l.includes('admin: the key store failed'))).toBe(true);
  }, 30_000);

  it('a session transfer is answered 503 session_store_unavailable, not 500 internal; `sessions transfer` says so and exits 1', async () => {
    const { a, b } = await startBridgedPair('xferdown', { provider: 'mock', models: ['mock-1'] }, { token: 'xfer-bridge-token-4d1', admin: 'xfer-admin-4d1' });
    pair.push(a, b);
    await a.store.close();
    const r = await call(a, '/admin/sessions/s1/transfer', { body: { to: 'b' }, headers: { authorization: 'Bearer xfer-admin-4d1' } });
    expect([r.status, r.headers.get('retry-after'), r.json.error?.code]).toEqual([503, '1', 'session_store_unavailable']);
    expect(r.json.error.message).toBe('the session store cannot be reached now, so the change may not have been made: check, and retry shortly');
    expectNothingOfTheStore(r.text);
    const cli = await runCli(['sessions', 'transfer', 's1', '--to', 'b', '--url', a.url, '--token', 'xfer-admin-4d1']);
    expect([cli.code, cli.stdout, cli.stderr]).toEqual([
      1,
      '',
      `switchyard: ${a.url} answered HTTP 503 (session_store_unavailable): the session store cannot be reached now, so the change may not have been made: check, and retry shortly\n`,
    ]);
  }, 30_000);

  it("a store that fails while a transfer reads the session's update log: 503 session_store_unavailable, its error text logged, never sent", async () => {
    const b = await startGw({
      gateway: { id: 'gw_logfail_b', name: 'logfail-b', bridge: { enabled: true, allowedTokens: ['logfail-bridge-9a2'], acceptSessions: true } },
      channels: [],
    });
    pair.push(b);
    const a = await startGw({
      gateway: {
        id: 'gw_logfail_a',
        name: 'logfail-a',
        admin: { token: 'logfail-admin-9a2' },
        bridges: [{ name: 'b', url: wsUrl(b.url), token: 'logfail-bridge-9a2', reconnectInterval: 100 }],
      },
      channels: [],
    });
    pair.push(a);
    await waitForBridgeOpen(a.url, 'logfail-admin-9a2');
    await a.store.create(
      newSession({
        id: 's-log',
        kind: 'chat',
        ownerGatewayId: a.id,
        target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'x', model: 'm' },
      }),
    );
    // the store fails after the transfer marked the session (an I/O error reading its log): the one call that fails
    a.store.readNewestEvents = () => Promise.reject(new Error('SQLITE_IOERR: disk I/O error reading /var/lib/switchyard/secret-dir/switchyard.db'));
    const r = await call(a, '/admin/sessions/s-log/transfer', { body: { to: 'b' }, headers: { authorization: 'Bearer logfail-admin-9a2' } });
    expect([r.status, r.headers.get('retry-after'), r.json.error?.code]).toEqual([503, '1', 'session_store_unavailable']);
    expect(r.json.error.message).toBe('session s-log stays on this gateway: the session store cannot be reached now: retry shortly');
    expect(r.text).not.toMatch(/IOERR|secret-dir|disk/);
    expect(a.logs.some((l) => l.includes('session transfer: the session store failed') && l.includes('SQLITE_IOERR'))).toBe(true);
    // it stays here, unmarked: a retry can move it
    expect((await call(a, '/admin/sessions/s-log', { headers: { authorization: 'Bearer logfail-admin-9a2' } })).json.session).toMatchObject({
      status: 'active',
      ownerGatewayId: a.id,
    });
  }, 30_000);
});
