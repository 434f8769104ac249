/**
 * Two gateway instances sharing one Redis session store (one gateway id), the fake ACP agent run with preset `hermes`
 * + `llm`, and a peer gateway P that takes sessions. The session's agent runs on instance 1 with its per-session
 * token; the session ends through instance 2 (a load balancer in front of both): the client's `session.close`, or an
 * operator's move of the session to P (instance 2's bridge reaches P). Either ends the session on every instance:
 * instance 1 stops its agent and revokes its token at once (docs/acp-agents.md, Presets). On the old code instance 1
 * never heard of it: the agent's token went on working there, for any length of time, on a session closed or living
 * on P.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';
import { chatWith, hermesAcp, type Gw } from './hermes-instances.js';

const ACP = 'acp-move-elsewhere-91c3d2';
const ADMIN = 'admin-move-elsewhere-5b7e';
const BRIDGE = 'bridge-move-elsewhere-token-2f8a';

let redis: RedisServer;
let p: Gw;
let g1: Gw;
let g2: Gw;

const acp = hermesAcp(ACP);

beforeAll(async () => {
  redis = await startRedis();
  p = await startProcess({
    gateway: { id: 'gw_move_peer', admin: { token: ADMIN }, bridge: { enabled: true, allowedTokens: [BRIDGE], acceptSessions: true } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp,
  });
  const instance = (bridges: unknown[]) => ({
    gateway: { id: 'gw_move_elsewhere', admin: { token: ADMIN }, bridges },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: redis.url },
    acp,
  });
  // only instance 2 dials P: two instances of one gateway id dialling one peer would replace each other's link
  [g1, g2] = await Promise.all([
    startProcess(instance([])),
    startProcess(instance([{ name: 'peer', url: wsUrl(p.url), token: BRIDGE, reconnectInterval: 100 }])),
  ]);
  await waitFor(async () => (await adminGet(g2.url, '/admin/bridges', ADMIN)).peers[0]?.state === 'open', 'instance 2 → P link');
}, 60_000);

afterAll(async () => {
  await Promise.all([g1?.stop(10_000), g2?.stop(10_000), p?.stop(10_000)]);
  await redis?.stop();
  cleanupDirs();
});

/** Starts `sid` on instance 1 (its agent writes its token to a file in its folder) and returns the working token. */
async function startOnInstance1(sid: string): Promise<string> {
  const started = await rpc(g1.url, ACP, 'session.start', { sessionId: sid, taskPrompt: 'envfile OPENAI_API_KEY', routing: agentRouting('hermes') }, 30_000);
  expect(started.result).toMatchObject({ success: true, output: 'written' });
  const token = readFileSync(path.join(g1.dir, 'workspaces', sid, '.env-OPENAI_API_KEY'), 'utf8');
  expect((await chatWith(g1, token)).status).toBe(200);
  return token;
}

/** The end reaches instance 1 through the store's pub/sub: polled, bounded. */
async function endedOnInstance1(token: string): Promise<void> {
  await waitFor(async () => (await chatWith(g1, token)).status === 401 || undefined, 'the token refused on instance 1', 10_000);
  await waitFor(() => g1.logs().includes('agent session closed') || undefined, 'the agent on instance 1 stopped', 10_000);
}

describe('a session ended by another instance sharing the store', () => {
  it('session.close there: revokes the token of the agent the session runs on this instance, and stops that agent', async () => {
    const token = await startOnInstance1('close-elsewhere-1');
    expect((await rpc(g2.url, ACP, 'session.close', { sessionId: 'close-elsewhere-1' })).result).toMatchObject({ closed: true });
    await endedOnInstance1(token);
  });

  it('a move to a peer there: revokes the token of the agent the session ran on this instance, and stops that agent', async () => {
    const sid = 'move-elsewhere-1';
    const token = await startOnInstance1(sid);

    const moved = await fetch(`${g2.url}/admin/sessions/${sid}/transfer`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({ to: 'peer' }),
    });
    expect(moved.status, await moved.clone().text()).toBe(200);
    await endedOnInstance1(token);
    // the session lives on P: a turn there runs (its own agent, its own token)
    expect((await rpc(p.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'llm there' }, 30_000)).result).toMatchObject({ success: true });
  });
});
