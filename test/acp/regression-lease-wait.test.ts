/**
 * Regression: a turn waited a fixed 30 s for its session's lease, whatever `acp.turnLeaseMs` was. With a ttl above
 * 30 s, a turn of a session whose holder had crashed failed with OVERLOADED before that holder's lease could
 * expire: it could never take the session over while the lease ran out. Now the wait is the ttl and 5 s more (at
 * least 30 s), or `acp.turnLeaseWaitMs`.
 *
 * The default wait: `SessionLease.acquire` on a real SQLite file, a dead holder's 40 s lease, the clock advanced by
 * vitest's fake timers (the lease's expiry and the wait are both read from it). The config key: a real gateway in
 * this process, a session whose lease another holder keeps.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { defaultLeaseWaitMs, SessionLease } from '../../src/acp/lease.js';
import type { Gateway } from '../../src/gateway.js';
import { openStore } from '../../src/sessions/open-store.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { GatewayError } from '../../src/wire/errors.js';
import { acpRpc, cleanupDirs, startInProcess } from '../helpers/env.js';

const tmp = mkdtempSync(join(tmpdir(), 'sy-lease-wait-'));
const stores: SessionStore[] = [];
let gw: Gateway | undefined;

afterEach(() => {
  vi.useRealTimers();
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  await gw?.close();
  cleanupDirs();
  rmSync(tmp, { recursive: true, force: true });
});

describe('the wait for a session lease held by another instance', () => {
  it('by default outlasts the ttl: a crashed holder’s 40 s lease is taken when it expires, not refused at 30 s', async () => {
    const store = await openStore({ kind: 'sqlite', path: join(tmp, 'lease.db') });
    stores.push(store);
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    const TTL = 40_000;
    // the crashed instance renewed its lease just before it died
    expect(await store.acquireLease('s-dead', 'gw_dead/instance-a', TTL)).toMatch(/^gw_dead\/instance-a#/);

    let outcome: SessionLease | GatewayError | undefined;
    void SessionLease.acquire(store, 's-dead', 'gw_live/instance-b', new AbortController().signal, { ttlMs: TTL }).then(
      (l) => (outcome = l),
      (e: GatewayError) => (outcome = e),
    );
    // past the old fixed 30 s wait, the dead holder's lease still runs: the turn is still waiting for it
    await vi.advanceTimersByTimeAsync(35_000);
    expect(outcome).toBeUndefined();
    // once it has expired, the waiting turn takes the session
    await vi.advanceTimersByTimeAsync(5_200);
    expect(outcome).toBeInstanceOf(SessionLease);
    expect((await store.getLease('s-dead'))?.holderId).toBe('gw_live/instance-b');
    await (outcome as SessionLease).release();
    expect(defaultLeaseWaitMs(TTL)).toBe(45_000);
    expect(defaultLeaseWaitMs(500)).toBe(30_000);
  });

  it('ends with OVERLOADED after the default wait (the ttl and 5 s) when the holder keeps it', async () => {
    const store = await openStore({ kind: 'sqlite', path: join(tmp, 'lease-held.db') });
    stores.push(store);
    vi.useFakeTimers({ toFake: ['Date', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval'] });
    expect(await store.acquireLease('s-busy', 'gw_other/instance-a', 120_000)).toMatch(/^gw_other\/instance-a#/);
    let outcome: SessionLease | GatewayError | undefined;
    void SessionLease.acquire(store, 's-busy', 'gw_live/instance-b', new AbortController().signal, { ttlMs: 60_000 }).then(
      (l) => (outcome = l),
      (e: GatewayError) => (outcome = e),
    );
    await vi.advanceTimersByTimeAsync(64_000);
    expect(outcome).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1_200);
    expect(outcome).toBeInstanceOf(GatewayError);
    expect((outcome as GatewayError).code).toBe('OVERLOADED');
  });

  it('is acp.turnLeaseWaitMs when it is set: a turn of a busy session is refused with OVERLOADED after it', async () => {
    const ACP = 'lease-wait-acp-token-5150';
    gw = await startInProcess({
      gateway: { id: 'gw_lease_wait' },
      acp: {
        tokens: [ACP],
        turnLeaseMs: 60_000,
        turnLeaseWaitMs: 300,
        gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
      },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    });
    const sessionId = `lease-wait-${Math.random().toString(36).slice(2, 8)}`;
    // another instance runs a turn of this session (its lease is live for a minute)
    expect(await gw.store.acquireLease(sessionId, 'gw_lease_wait/instance-b', 60_000)).toMatch(/^gw_lease_wait\/instance-b#/);
    // with the default (65 s) this would outlast the test's timeout
    const r = await acpRpc(gw.url, ACP, 'session.start', {
      sessionId,
      taskPrompt: 'hello',
      requestedExecutionTarget: 'gateway',
      gatewayProviderId: 'switchyard',
    });
    expect(r.result).toMatchObject({ success: false, status: 'failed', errorCode: 'OVERLOADED' });
    expect(String(r.result.error)).toMatch(/busy on another gateway instance/);
  }, 15_000);
});
