/**
 * Regression: an admin session transfer (`POST /admin/sessions/<id>/transfer`, so `switchyard sessions transfer` and
 * `sessions drain`) was not bounded: only the graceful stop's own use of a transfer was. Its store reads and writes do
 * not follow its timeout, so against a session store that stopped answering (a Redis stopped) the request was held
 * for as long as the store was away, and the CLI gave up after its 10 s saying only that the gateway did not answer
 * (a drain then went on to the next session, and the next). Now the transfer is answered within its own 30 s and one
 * store read's 5 s past it: `503 session_store_unavailable` in the admin API's format (the change may or may not have
 * been made: check), and `sessions drain` stops there, prints what it did, says why on stderr and exits 1.
 *
 * Real gateway processes (A on a real redis-server stopped with SIGSTOP, B its peer) and the real CLI binary.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acpRpc, freePort, startProcess, waitFor, waitForBridgeOpen, within, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { redisOnPort } from '../keys/redis-on-port.js';
import { runCli } from './cli-run.js';

const BRIDGE = 'transfer-frozen-bridge-1c7a';
const ACP = 'transfer-frozen-acp-93be';
const { procs } = stopAfterAll();
const cleanup: Array<() => Promise<void> | void> = [];
afterAll(async () => {
  for (const c of cleanup.reverse()) await c();
});

const channels = [
  { name: 'm', provider: 'mock', models: ['mock-1'] },
  { name: 'slower', provider: 'mock', models: ['slower-1'], options: { delayMs: 8000 } },
];
const acp = {
  tokens: [ACP],
  gateways: [
    { id: 'fast', label: 'Fast', kind: 'channels', model: 'mock-1' },
    { id: 'slowergw', label: 'Slower', kind: 'channels', model: 'slower-1' },
  ],
};

/** session.start of `sessionId` on the gateway runtime `gatewayProviderId` (SSE), to its end; never rejects */
const start = (url: string, sessionId: string, gatewayProviderId: string) =>
  acpRpc(url, ACP, 'session.start', { sessionId, taskPrompt: 'hello', executionTarget: 'gateway', gatewayProviderId }, true).catch(() => undefined);

describe('an admin session transfer against a session store that stopped answering', () => {
  it('is answered 503 session_store_unavailable within its bound; sessions drain stops, says so and exits 1', { timeout: 120_000 }, async () => {
    const b = await startProcess({
      gateway: { id: 'gw_xfer_peer', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], acceptSessions: true } },
      channels,
      acp,
    });
    procs.push(b);
    const dir = mkdtempSync(join(tmpdir(), 'switchyard-transfer-frozen-'));
    cleanup.push(() => rmSync(dir, { recursive: true, force: true }));
    const port = await freePort();
    const redis = await redisOnPort(port, dir);
    cleanup.push(() => redis.stop());
    const a = await startProcess({
      gateway: {
        id: 'gw_xfer_a',
        name: 'office',
        bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 200 }],
      },
      store: { kind: 'redis', url: `redis://127.0.0.1:${port}` },
      channels,
      acp,
    });
    procs.push(a);
    await waitForBridgeOpen(a.url);
    // one idle session (its turn done), one with an 8 s turn running
    await start(a.url, 'idle-1', 'fast');
    void start(a.url, 'busy-1', 'slowergw');
    await waitFor(
      async () =>
        ((await (await fetch(`${a.url}/admin/sessions/busy-1`)).json()) as { session?: { history: Array<{ status: string }> } }).session?.history.some(
          (t) => t.status === 'running',
        ),
      'the turn running',
    );

    // the drain moves the idle session, then waits for the running turn, reading the session from the store ...
    const drain = runCli(['sessions', 'drain', '--to', 'datacenter', '--url', a.url]);
    await waitFor(() => a.logs().includes('session transfer waits for the running turn to end'), 'the drain waiting for the turn', 20_000);
    // ... when the store stops answering
    cleanup.push(redis.freeze());

    // a transfer asked for now: answered at its bound (30 s + 5 s), in the admin API's format; before, never
    const asked = Date.now();
    const r = await within(
      fetch(`${a.url}/admin/sessions/other-1/transfer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"to":"datacenter"}' }),
      45_000,
      'the transfer answered',
    );
    expect(Date.now() - asked).toBeGreaterThan(30_000);
    expect([r.status, r.headers.get('retry-after')]).toEqual([503, '1']);
    expect(((await r.json()) as { error: unknown }).error).toEqual({
      code: 'session_store_unavailable',
      type: 'server_error',
      param: null,
      message: 'the session store cannot be reached now, so the change may not have been made: check, and retry shortly',
    });

    // the drain: what it did, then why it stopped, exit 1 (before: "did not answer within 10 s" for each session)
    const d = await within(drain, 30_000, 'the drain ended');
    expect(d.code).toBe(1);
    expect(d.stdout).toBe(
      '[1] idle-1 → datacenter: moved\n' +
        '[2] busy-1: stayed here (the session store cannot be reached now, so the change may not have been made: check, and retry shortly)\n',
    );
    expect(d.stderr).toBe(
      'switchyard: the session store cannot be reached now: drain stopped after 1 moved, 1 stayed; ' +
        'check with `switchyard sessions list` once it answers, and run the drain again\n',
    );
    expect(a.logs()).toContain('admin: the session store failed');
  });
});
