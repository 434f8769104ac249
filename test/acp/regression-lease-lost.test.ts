/**
 * Regression: a turn went on after its session's store lease was lost. An instance held up past the lease's ttl
 * (a pause, a partition) lets the lease lapse; another instance sharing the store then takes the session (it
 * marks the turn interrupted and runs its own). The lease's renewal found that out and ignored it, so the first
 * instance's turn ran on beside the other's and stored its result over the record. Now a renewal that finds the
 * lease held by another holder stops the turn at once: it fails with SESSION_NOT_OWNED_HERE.
 *
 * A real gateway in this process on a real SQLite store, a streaming channel turn; the other instance's take-over
 * is played on the same store (the lease released as a lapse would leave it, then taken by another holder id).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { acpRpc, cleanupDirs, startInProcess, waitForRunningTurn } from '../helpers/env.js';

const ACP = 'lease-lost-acp-token-2718';
const GW = 'gw_lease_lost';
let gw: Gateway;

beforeAll(async () => {
  gw = await startInProcess({
    gateway: { id: GW },
    channels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 200 } }],
    acp: { tokens: [ACP], turnLeaseMs: 600, gateways: [{ id: 'slow', label: 'Slow', kind: 'channels', model: 'slow-1' }] },
  });
});

afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

describe('a turn whose session lease another instance took', () => {
  it('is stopped at the next renewal and fails with SESSION_NOT_OWNED_HERE, not run on to the end', async () => {
    const sessionId = `lease-lost-${Math.random().toString(36).slice(2, 8)}`;
    const long = 'please write a long answer with many many words so that the turn is still running when its lease is taken';
    const turn = acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: long, requestedExecutionTarget: 'gateway', gatewayProviderId: 'slow' });
    await waitForRunningTurn(gw.url, sessionId);
    const lease = await gw.store.getLease(sessionId);
    expect(lease?.holderId).toBe(`${GW}/sqlite`);

    // the lease lapses (released as its expiry would leave it) and another instance takes it
    expect(await gw.store.releaseLease(sessionId, lease!.token)).toBe(true);
    expect(await gw.store.acquireLease(sessionId, 'gw_other/instance-b', 60_000)).toMatch(/^gw_other\/instance-b#/);

    const r = (await turn).result;
    expect(r).toMatchObject({ success: false, status: 'failed', errorCode: 'SESSION_NOT_OWNED_HERE' });
    expect(r.error).toMatch(/taken over by another gateway instance/);
    // stopped, not run to its end: the mock answers the prompt's 20 words 200 ms apart
    expect(r.output.split(/\s+/).length).toBeLessThan(long.split(/\s+/).length);
    // the other holder's lease stands
    expect((await gw.store.getLease(sessionId))?.holderId).toBe('gw_other/instance-b');
  });
});
