/**
 * Regression (issue 10 item 8): after SIGKILL mid-turn and a restart, the next message of that session waited
 * out the dead process's own store lease (26 s with the default ttl). The restarted gateway owns the leases of
 * its previous life: at once on SQLite (one process per store), and on Redis when the instance keeps its
 * `store.instanceId`. Real processes, a real redis-server.
 */
import { describe, expect, it } from 'vitest';
import { spawnGateway, type GatewayProcess, acpRpc } from '../helpers/env.js';
import { adminGet, startProcess, waitFor } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';
import { startRedis } from '../sessions/fixtures/redis-server.js';

const ACP = 'restart-lease-token-5';
const LEASE_MS = 20_000; // a wait for the dead lease would show as ≥ 20 s
// the redis-server is stopped after the gateways that use it
const { procs, track } = stopAfterAll();

const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);

async function killMidTurnThenMessage(store: Record<string, unknown>): Promise<void> {
  const cfg = {
    gateway: { id: 'gw_restart' },
    channels: [
      { name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 300 } },
      { name: 'fast', provider: 'mock', models: ['fast-1'] },
    ],
    acp: { tokens: [ACP], turnLeaseMs: LEASE_MS, gateways: [{ id: 'slow', label: 'Slow', kind: 'channels', model: 'slow-1' }] },
    store,
  };
  const first = await startProcess(cfg);
  procs.push(first);
  const sessionId = `restart-${Math.random().toString(36).slice(2, 8)}`;
  const long = 'please write a long answer with many many words so that the turn is still running when it is killed';
  void rpc(first, 'session.start', { sessionId, taskPrompt: long, requestedExecutionTarget: 'gateway', gatewayProviderId: 'slow' }).catch(() => undefined);
  await waitFor(async () => (await adminGet(first.url, `/admin/sessions/${sessionId}`)).session?.history?.[0]?.status === 'running', 'the turn is running');
  // and its first updates are in the store: the update log writes in batches (every 25 ms), and a kill before a
  // batch is written loses it, so the check below that the killed turn's updates survived needs one written first
  await waitFor(
    async () => ((await rpc(first, 'xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result?.updates as unknown[] | undefined)?.length,
    "the running turn's first updates in the update log",
  );
  first.kill('SIGKILL');
  await waitFor(() => first.proc.exitCode !== null || first.proc.signalCode !== null, 'the first process is gone');

  const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
  procs.push(second);
  const logged = (await rpc(second, 'xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result.updates as any[];
  expect(logged.length).toBeGreaterThan(0); // the killed turn's updates reached the update log
  const t0 = Date.now();
  const msg = await rpc(second, 'session.message', { sessionId, taskPrompt: 'short one' });
  const elapsed = Date.now() - t0;
  expect(msg.error).toBeUndefined();
  expect(msg.result).toMatchObject({ success: true, status: 'completed' });
  expect(elapsed).toBeLessThan(LEASE_MS / 2);
  const rec = (await adminGet(second.url, `/admin/sessions/${sessionId}`)).session;
  expect(rec.history.map((t: any) => t.status)).toEqual(['failed', 'completed']);
  expect(rec.history[0].error).toMatch(/interrupted/);
  // the new turn numbers its updates above the killed turn's: the log keeps both, nothing overwritten
  const all = (await rpc(second, 'xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result.updates as any[];
  expect(all.slice(0, logged.length)).toEqual(logged);
  const last = logged.at(-1).seq as number;
  expect(all.slice(logged.length).length).toBeGreaterThan(0);
  for (const u of all.slice(logged.length)) expect(u.seq).toBeGreaterThan(last);
  await second.stop();
}

describe('a restarted gateway does not wait out its own dead lease', () => {
  it('SQLite: SIGKILL mid-turn, restart, the next message runs at once', async () => {
    await killMidTurnThenMessage({ kind: 'sqlite', path: './data/switchyard.db' });
  });

  it('Redis with store.instanceId: the same', async () => {
    const redis = await startRedis();
    track({ close: () => redis.stop() });
    await killMidTurnThenMessage({ kind: 'redis', url: redis.url, prefix: `restart-${Date.now()}:`, instanceId: 'node-1' });
  });
});
