/**
 * A transfer that timed out while the link stayed up (the receiver was stalled past the sender's timeout, then
 * stored the offer and answered too late): the sender keeps the session, and the receiver holds a provisional copy
 * that nothing settles while the link lasts. Offering the session again must work: the sender owns it (it offers
 * it again), so the receiver's stale copy gives way to the new offer, instead of the new offer being refused as if
 * it tried to overwrite a session the receiver owns.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import { newSession, newTurn, appendTurn, updateTurn } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { adminGet, startProcess, tmpDir, waitFor, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const TOKEN = 'transfer-retry-token-2718';
const { trackGateway: track } = stopAfterAll();
const stores: SessionStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

const transfer = (url: string, id: string, to: string) =>
  fetch(`${url}/admin/sessions/${id}/transfer`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ to }) });

describe('a session offered again after a transfer timed out on a live link', () => {
  it('moves: the stale provisional copy on the receiver gives way; one owner', async () => {
    // heartbeats far apart: the link outlives the stall (the sender's transfer timeout is 30 s)
    const limits = { heartbeatIntervalMs: 25_000, deadPeerMisses: 3 };
    const bDir = tmpDir();
    const b = track(
      await startProcess(
        {
          gateway: { id: 'gw_rt_b', name: 'receiver', bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true, limits } },
          channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
        },
        {},
        bDir,
      ),
    );
    const aDir = tmpDir();
    const a = track(
      await startProcess(
        {
          gateway: { id: 'gw_rt_a', name: 'sender', bridge: { limits }, bridges: [{ name: 'receiver', url: wsUrl(b.url), token: TOKEN }] },
          channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
        },
        {},
        aDir,
      ),
    );
    await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
    const aStore = await openStore({ kind: 'sqlite', path: join(aDir, 'data', 'switchyard.db') });
    const bStore = await openStore({ kind: 'sqlite', path: join(bDir, 'data', 'switchyard.db') });
    stores.push(aStore, bStore);
    let s = newSession({
      id: 's-retry',
      kind: 'chat',
      ownerGatewayId: 'gw_rt_a',
      target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
    });
    const t = newTurn('q', [{ role: 'user', content: 'q' }]);
    s = updateTurn(appendTurn(s, t), t.turnId, { status: 'completed', output: 'a', endedAt: Date.now() });
    await aStore.create(s);

    b.kill('SIGSTOP');
    let first: Response;
    try {
      first = await transfer(a.url, 's-retry', 'receiver');
    } finally {
      b.kill('SIGCONT');
    }
    expect(first.status, await first.clone().text()).not.toBe(200);
    expect(await first.text()).toMatch(/did not acknowledge/);
    expect(await aStore.get('s-retry')).toMatchObject({ status: 'active', ownerGatewayId: 'gw_rt_a' });
    // B takes the offer it had waiting and keeps a provisional copy; its late ok is nobody's
    await waitFor(async () => (await bStore.get('s-retry'))?.metadata.transfer, 'the provisional copy on B');
    expect((await adminGet(a.url, '/admin/bridges')).peers[0]?.state).toBe('open');

    const again = await transfer(a.url, 's-retry', 'receiver');
    expect(again.status, await again.clone().text()).toBe(200);
    expect(await aStore.get('s-retry')).toMatchObject({ status: 'moved', movedTo: 'gw_rt_b' });
    const onB = await waitFor(async () => {
      const copy = await bStore.get('s-retry');
      return copy && !copy.metadata.transfer ? copy : undefined;
    }, 'B to hold the confirmed session');
    expect(onB).toMatchObject({ ownerGatewayId: 'gw_rt_b', status: 'active' });
    expect(onB.history.map((x) => x.prompt)).toEqual(['q']);
  }, 90_000);
});
