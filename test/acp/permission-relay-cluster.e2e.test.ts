/**
 * The permission relay across instances sharing one Redis (issue 12 item 4): a prompt raised by the agent
 * running on instance 1 is listed by instance 2 (it is in the store) and an answer sent to instance 2 reaches
 * the turn on instance 1 (store pub/sub). An option not offered is refused on instance 2 as well, and a second
 * answer gets PERMISSION_ALREADY_DECIDED on both (the record keeps the session's decided ids).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import type { GatewayProcess } from '../helpers/env.js';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, startProcess, waitFor, acpRpc } from '../helpers/env.js';

const ACP = 'perm-cluster-token-4';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
let redis: RedisServer;
let g1: GatewayProcess;
let g2: GatewayProcess;

const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);

const cfg = () => ({
  gateway: { id: 'gw_perm_cluster' },
  acp: { tokens: [ACP], agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE_AGENT] }] },
  store: { kind: 'redis', url: redis.url, prefix: 'permcluster:' },
});

beforeAll(async () => {
  redis = await startRedis();
  [g1, g2] = await Promise.all([startProcess(cfg()), startProcess(cfg())]);
});
afterAll(async () => {
  await Promise.all([g1?.stop(), g2?.stop()]);
  await redis?.stop();
  cleanupDirs();
});

describe('permission relay on two instances', () => {
  it('raised on instance 1, listed and answered on instance 2', async () => {
    const turn = rpc(g1, 'session.start', { sessionId: 'pc-1', taskPrompt: 'permission', provider: 'fake', requestedExecutionTarget: 'agent' });
    const prompt = await waitFor(
      async () => (await rpc(g2, 'xworkmate.permissions.list', { sessionId: 'pc-1' })).result?.items?.[0],
      'the prompt, seen from instance 2',
    );
    const bogus = await rpc(g2, 'xworkmate.permissions.respond', { sessionId: 'pc-1', requestId: prompt.requestId, optionId: 'opt-nope' });
    expect(bogus.error).toMatchObject({ code: -32602, data: { code: 'PERMISSION_OPTION_NOT_OFFERED' } });
    expect((await rpc(g2, 'xworkmate.permissions.respond', { sessionId: 'pc-1', requestId: prompt.requestId, optionId: 'opt-always' })).result).toEqual({
      accepted: true,
      requestId: prompt.requestId,
    });
    const r = await turn;
    expect(r.result).toMatchObject({ status: 'completed', output: 'permission: opt-always' });
    const t = (await rpc(g2, 'xworkmate.tasks.get', { sessionId: 'pc-1' })).result;
    expect(t.pendingPermissions).toEqual([]);
    expect(t.taskEvents.find((e: any) => e.event === 'task.permission_resolved').task.detail).toMatchObject({
      outcome: { outcome: 'selected', optionId: 'opt-always' },
      reason: 'user',
    });
    // a second answer, on either instance: the record says the prompt was decided (instance 1 also remembers it)
    for (const gw of [g2, g1]) {
      const again = await rpc(gw, 'xworkmate.permissions.respond', { sessionId: 'pc-1', requestId: prompt.requestId, optionId: 'opt-allow' });
      expect(again.error).toMatchObject({ code: -32602, message: 'PERMISSION_ALREADY_DECIDED', data: { code: 'PERMISSION_ALREADY_DECIDED' } });
    }
    // an id the session never had is still not found
    const unknown = await rpc(g2, 'xworkmate.permissions.respond', { sessionId: 'pc-1', requestId: `perm-${'0'.repeat(32)}`, optionId: 'opt-allow' });
    expect(unknown.error).toMatchObject({ code: -32602, data: { code: 'PERMISSION_REQUEST_NOT_FOUND' } });
  });
});
