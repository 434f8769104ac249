/**
 * Regression (issue 10.10, first part): /admin/bridges and /admin/status showed an outbound bridge URL with
 * its query token (and userinfo), and so did the CLI that prints them. URLs are now shown with userinfo and
 * every query value redacted, on every admin and CLI output, for configured and run-time bridges.
 */
import { execFile } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BIN } from '../helpers/env.js';
import { adminGet, cleanupDirs, memoryLogger, startInProcess, waitFor, wsUrl } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const BRIDGE_TOKEN = 'url-test-bridge-token-1';
const QUERY_TOKEN = 'qtok-in-the-url-8f2e61';
const USER_PASS = 'userinfo-pass-3b9d';
const RUNTIME_QUERY = 'runtime-qtok-55c1a7';

let a: Gateway;
let b: Gateway;
const log = memoryLogger();

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, SWITCHYARD_URL: '', SWITCHYARD_ADMIN_TOKEN: '' }, timeout: 20_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

function expectNoToken(surface: string, text: string): void {
  for (const s of [QUERY_TOKEN, USER_PASS, RUNTIME_QUERY, BRIDGE_TOKEN]) expect(text.includes(s), `${surface} shows ${s}:\n${text}`).toBe(false);
}

beforeAll(async () => {
  b = await startInProcess({
    gateway: { id: 'gw_url_b', bridge: { enabled: true, allowedTokens: [BRIDGE_TOKEN], shareChannels: ['m'] } },
    channels: [{ name: 'm', provider: 'mock', models: ['m-1'] }],
  });
  const url = wsUrl(b.url).replace('ws://', `ws://peer:${USER_PASS}@`) + `?token=${QUERY_TOKEN}&region=eu`;
  a = await startInProcess(
    { gateway: { id: 'gw_url_a', bridges: [{ name: 'to-b', url, token: BRIDGE_TOKEN, reconnectInterval: 100 }] }, channels: [] },
    log.logger,
  );
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers.some((p: { state: string }) => p.state === 'open'), 'the bridge to open');
});
afterAll(async () => {
  await Promise.all([a?.close(), b?.close()]);
  cleanupDirs();
});

describe('bridge URLs on admin and CLI outputs', () => {
  it('/admin/bridges and /admin/status redact userinfo and query values, keep the rest', async () => {
    const bridges = await adminGet(a.url, '/admin/bridges');
    const row = bridges.peers.find((p: { name: string }) => p.name === 'to-b');
    const port = new URL(b.url).port;
    expect(row.url).toBe(`ws://[REDACTED]@127.0.0.1:${port}/bridge?token=[REDACTED]&region=[REDACTED]`);
    expectNoToken('/admin/bridges', JSON.stringify(bridges));
    const status = await adminGet(a.url, '/admin/status');
    expect(status.peers.find((p: { name: string }) => p.name === 'to-b').url).toBe(row.url);
    expectNoToken('/admin/status', JSON.stringify(status));
  });

  it('a bridge added at run time: the POST answer, the list and the log line are redacted', async () => {
    const url = `ws://127.0.0.1:9/bridge?access_token=${RUNTIME_QUERY}`;
    const res = await fetch(`${a.url}/admin/bridges`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ url, token: 'runtime-bridge-token-9', name: 'later' }),
    });
    const text = await res.text();
    expect(res.status).toBe(201);
    expect(JSON.parse(text).peer.url).toBe('ws://127.0.0.1:9/bridge?access_token=[REDACTED]');
    expectNoToken('POST /admin/bridges', text);
    expect(text).not.toContain('runtime-bridge-token-9');
    expectNoToken('/admin/bridges', JSON.stringify(await adminGet(a.url, '/admin/bridges')));
    expect(log.lines.some((l) => l.includes('bridge added at run time'))).toBe(true);
    expectNoToken('logs', log.lines.join(''));
    expect(log.lines.join('')).not.toContain('runtime-bridge-token-9');
  });

  it('the CLI (bridge list --json, status --json) prints no URL token', async () => {
    const list = await cli(['bridge', 'list', '--json', '--url', a.url]);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toContain('[REDACTED]');
    expectNoToken('switchyard bridge list --json', list.stdout + list.stderr);
    const status = await cli(['status', '--json', '--url', a.url]);
    expect(status.code, status.stderr).toBe(0);
    expectNoToken('switchyard status --json', status.stdout + status.stderr);
  });
});
