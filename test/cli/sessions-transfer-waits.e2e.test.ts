/**
 * Regression: `sessions transfer` (and `sessions drain`, which moves each session the same way) gave up after the
 * admin calls' 10 s while the gateway was still waiting, as it may for up to 30 s, for the session's running turn
 * to end: the CLI printed `… accepted the connection but did not answer within 10 s` and exited 1 (drain: "stayed
 * here"), and the session moved to the peer a moment later. The CLI now waits as long as a transfer may take.
 *
 * Two real gateway processes (port 0) bridged; the session is written into A's SQLite file with a running turn
 * (WAL lets another process write it), and that turn is ended by the test once the CLI has waited past 10 s.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openStore } from '../../src/sessions/open-store.js';
import { appendTurn, newSession, newTurn, updateTurn } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { adminGet, startProcess, tmpDir, waitFor, wsUrl, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { runCli } from '../ops/cli-run.js';

const BRIDGE = 'transfer-waits-bridge-token-6b2e';
const { procs } = stopAfterAll();
let a: GatewayProcess;
let b: GatewayProcess;
let aStore: SessionStore;
let bStore: SessionStore;

beforeAll(async () => {
  const bDir = tmpDir();
  b = await startProcess(
    {
      gateway: { id: 'gw_tw_b', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], acceptSessions: true } },
      channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    },
    {},
    bDir,
  );
  procs.push(b);
  const aDir = tmpDir();
  a = await startProcess(
    {
      gateway: { id: 'gw_tw_a', name: 'office', bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, reconnectInterval: 100 }] },
      channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    },
    {},
    aDir,
  );
  procs.push(a);
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
  aStore = await openStore({ kind: 'sqlite', path: join(aDir, 'data', 'switchyard.db') });
  bStore = await openStore({ kind: 'sqlite', path: join(bDir, 'data', 'switchyard.db') });
}, 60_000);

afterAll(async () => {
  await aStore?.close();
  await bStore?.close();
});

describe('sessions transfer: a turn that runs past 10 s', () => {
  it('the CLI waits for the gateway, which waits for the turn, and reports the move', async () => {
    const s = await aStore.create(
      newSession({
        id: 's-long-turn',
        kind: 'chat',
        ownerGatewayId: a.id,
        target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
      }),
    );
    await aStore.update(appendTurn(s, newTurn('still running')), s.version);
    const started = Date.now();
    let settled = false;
    const pending = runCli(['sessions', 'transfer', 's-long-turn', '--to', 'datacenter', '--url', a.url]).finally(() => (settled = true));
    await waitFor(
      () =>
        a
          .logs()
          .split('\n')
          .some((l) => l.includes('session transfer waits for the running turn') && l.includes('s-long-turn')),
      'A waiting for the running turn',
    );
    // past the admin calls' 10 s bound (undici's timers are coarse, and the CLI takes a moment to start), the CLI is still
    // waiting: the old one had given up by then
    await waitFor(() => settled || Date.now() - started > 14_000, 'the CLI to settle or 14 s to pass', 20_000);
    expect(settled, 'the CLI still waits after 14 s').toBe(false);
    const cur = (await aStore.get('s-long-turn'))!;
    await aStore.update(updateTurn(cur, cur.history[0]!.turnId, { status: 'completed', output: 'done', endedAt: Date.now() }), cur.version);
    const r = await pending;
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe(`session s-long-turn moved to datacenter (${b.id})\n`);
    expect(r.code).toBe(0);
    expect(await waitFor(() => bStore.get('s-long-turn'), 'the session on B')).toMatchObject({ ownerGatewayId: b.id });
  }, 60_000);
});
