/**
 * A session offered to a gateway that is shutting down: the draining gateway refuses it (TRANSFER_REJECTED,
 * "shutting down"), so the session stays with its owner instead of moving to a gateway that is going away
 * (whose own drain of sessions already ran, and which takes no new turn).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { openStore } from '../../src/sessions/open-store.js';
import { newSession, newTurn, appendTurn, updateTurn } from '../../src/sessions/model.js';
import type { SessionStore } from '../../src/sessions/store.js';
import { adminGet, startProcess, tmpDir, waitFor, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const TOKEN = 'draining-transfer-token-31';
const { trackGateway: track } = stopAfterAll();
const stores: SessionStore[] = [];
afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
});

describe('session transfer to a gateway that is shutting down', () => {
  it('is refused by the draining receiver; the session stays with its owner', async () => {
    const bDir = tmpDir();
    const b = track(
      await startProcess(
        {
          gateway: {
            id: 'gw_drain_b',
            name: 'leaving',
            shutdownGraceMs: 30_000,
            bridge: { enabled: true, allowedTokens: [TOKEN], acceptSessions: true },
          },
          channels: [{ name: 'slow', provider: 'mock', models: ['mock-1'], options: { chunkDelayMs: 200 } }],
        },
        {},
        bDir,
      ),
    );
    const aDir = tmpDir();
    const a = track(
      await startProcess(
        {
          gateway: { id: 'gw_drain_a', name: 'staying', bridges: [{ name: 'leaving', url: wsUrl(b.url), token: TOKEN }] },
          channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
        },
        {},
        aDir,
      ),
    );
    await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
    const aStore = await openStore({ kind: 'sqlite', path: join(aDir, 'data', 'switchyard.db') });
    stores.push(aStore);
    let s = newSession({
      id: 's-drain',
      kind: 'chat',
      ownerGatewayId: 'gw_drain_a',
      target: { executionTarget: 'gateway', providerId: '', gatewayProviderId: 'switchyard', model: 'mock-1' },
    });
    const t = newTurn('q', [{ role: 'user', content: 'q' }]);
    s = updateTurn(appendTurn(s, t), t.turnId, { status: 'completed', output: 'a', endedAt: Date.now() });
    await aStore.create(s);

    // a client stream on B keeps B draining (it waits for in-flight work) once it is told to stop
    const ac = new AbortController();
    const words = Array.from({ length: 200 }, (_, i) => `w${i}`).join(' ');
    const res = await fetch(`${b.url}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'mock-1', stream: true, messages: [{ role: 'user', content: words }] }),
      signal: ac.signal,
    });
    expect(res.status).toBe(200);
    b.kill('SIGTERM');
    await waitFor(async () => (await fetch(`${b.url}/readyz`)).status === 503, 'B draining');

    const r = await fetch(`${a.url}/admin/sessions/s-drain/transfer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ to: 'leaving' }),
    });
    const body = await r.text();
    ac.abort();
    expect(r.status, body).not.toBe(200);
    expect(body).toMatch(/shutting down/);
    const after = await aStore.get('s-drain');
    expect(after?.status).toBe('active');
    expect(after?.ownerGatewayId).toBe('gw_drain_a');
    expect(after?.metadata.transfer).toBeUndefined();
    const bStore = await openStore({ kind: 'sqlite', path: join(bDir, 'data', 'switchyard.db') });
    stores.push(bStore);
    expect(await bStore.get('s-drain')).toBeUndefined();
  });
});
