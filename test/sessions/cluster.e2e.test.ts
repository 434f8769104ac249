/**
 * Several gateway instances behind one address, sharing one real redis-server: a session started on one
 * instance is continued on the other; turns of one session still run one at a time across instances; a
 * cancel sent to one instance reaches the turn running on the other; a crashed instance's lease expires.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from './fixtures/redis-server.js';
import { adminGet, cleanupDirs, startProcess, waitForRunningTurn, type GatewayProcess, acpRpc } from '../helpers/env.js';

const ACP = 'cluster-acp-token-161803';
let redis: RedisServer;
let g1: GatewayProcess;
let g2: GatewayProcess;

const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);

const cfg = () => ({
  gateway: { id: 'gw_cluster' },
  // ~2 s per turn: 20 words, 100 ms apart
  channels: [
    {
      name: 'slow',
      provider: 'mock',
      models: ['mock-1'],
      options: {
        chunkDelayMs: 100,
        reply: 'one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty',
      },
    },
  ],
  acp: { tokens: [ACP], turnLeaseMs: 1500, gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }] },
  store: { kind: 'redis', url: redis.url },
});

beforeAll(async () => {
  redis = await startRedis();
  g1 = await startProcess(cfg());
  g2 = await startProcess(cfg());
});

afterAll(async () => {
  await Promise.all([g1?.stop(), g2?.stop()]);
  await redis?.stop();
  cleanupDirs();
});

const start = (gw: GatewayProcess, sessionId: string, prompt = 'go') =>
  rpc(gw, 'session.start', { sessionId, taskPrompt: prompt, gatewayProviderId: 'switchyard', requestedExecutionTarget: 'gateway' });

describe('two instances on one Redis', () => {
  it('a session started on one instance is continued on the other; turns never overlap', async () => {
    const first = start(g1, 'c1', 'first');
    await waitForRunningTurn(g1.url, 'c1');
    const second = rpc(g2, 'session.message', { sessionId: 'c1', taskPrompt: 'second' });
    const [a, b] = await Promise.all([first, second]);
    expect(a.result).toMatchObject({ success: true, status: 'completed' });
    expect(b.result).toMatchObject({ success: true, status: 'completed' });
    const s = (await adminGet(g2.url, '/admin/sessions/c1')).session;
    expect(s.history.map((t: any) => [t.prompt, t.status])).toEqual([
      ['first', 'completed'],
      ['second', 'completed'],
    ]);
    // one at a time: the second turn started after the first ended
    expect(s.history[1].startedAt).toBeGreaterThanOrEqual(s.history[0].endedAt);
  });

  it('a cancel sent to the other instance reaches the running turn', async () => {
    const running = start(g1, 'c2', 'long one');
    await waitForRunningTurn(g1.url, 'c2');
    const cancel = await rpc(g2, 'session.cancel', { sessionId: 'c2' });
    expect(cancel.result).toEqual({ accepted: true, cancelled: true, runCancelled: true });
    const r = await running;
    expect(r.result).toMatchObject({ status: 'cancelled' });
    // nothing running anywhere: a second cancel says so
    expect((await rpc(g2, 'session.cancel', { sessionId: 'c2' })).result).toEqual({ accepted: true, cancelled: false, runCancelled: false });
  });

  it("a crashed instance's lease expires: the other instance continues the session", async () => {
    void start(g1, 'c3', 'interrupted').catch(() => undefined);
    await waitForRunningTurn(g1.url, 'c3');
    g1.kill('SIGKILL');
    const t0 = Date.now();
    const next = await rpc(g2, 'session.message', { sessionId: 'c3', taskPrompt: 'after the crash' });
    expect(next.result).toMatchObject({ success: true, status: 'completed' });
    expect(Date.now() - t0).toBeLessThan(20_000);
    const s = (await adminGet(g2.url, '/admin/sessions/c3')).session;
    expect(s.history.map((t: any) => [t.prompt, t.status])).toEqual([
      ['interrupted', 'failed'],
      ['after the crash', 'completed'],
    ]);
  });
});
