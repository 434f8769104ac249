/**
 * Regression: a transferred agent session's process kept running on the sender (its turn runner never let go of
 * the live session), holding an `acp.maxAgentProcesses` slot until the idle timeout, for good with
 * `agentIdleTimeoutMs: 0`. And a session that came back (A→B→A) reused that stale live session: its updates were
 * numbered from the old seq again, and the log, one update per seq, lost the earlier ones. Real processes, the
 * fake ACP agent (`spawn-child` answers with the pid of a child in the agent's process group, which ends with it).
 *
 *   A (office, acceptSessions) ──dials──▶ B (datacenter, acceptSessions)
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { acpRpc, adminGet, cleanupDirs, processAlive, startProcess, transferSession, waitFor, wsUrl } from '../helpers/env.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const BRIDGE = 'live-transfer-bridge-token-4471';
const ACP = 'live-transfer-acp-token-2718';
let a: GatewayProcess;
let b: GatewayProcess;

const acp = {
  tokens: [ACP],
  agentIdleTimeoutMs: 0,
  agents: [{ id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' }],
};
const mock = [{ name: 'm', provider: 'mock', models: ['mock-1'] }];
const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);

/** the pid of the child a `spawn-child` turn started in its agent's process group */
const childOf = (result: { output?: string }): number => Number(/^child (\d+)$/.exec(result.output ?? '')?.[1]);

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_live_b', name: 'datacenter', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: [], acceptSessions: true } },
    channels: mock,
    acp,
  });
  a = await startProcess({
    gateway: {
      id: 'gw_live_a',
      name: 'office',
      bridge: { acceptSessions: true },
      bridges: [{ name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
    },
    channels: mock,
    acp,
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers.some((p: any) => p.state === 'open'), 'the A→B link');
  await waitFor(async () => (await adminGet(b.url, '/admin/bridges')).peers.some((p: any) => p.state === 'open'), 'the link, seen from B');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

describe('a transferred session lets go of its agent on the sender', () => {
  it('A→B→A: each sender stops its agent process; back on A, the updates go on numbering, none overwritten', async () => {
    const sessionId = `live-rt-${Math.random().toString(36).slice(2, 8)}`;
    const first = await rpc(a, 'session.start', {
      sessionId,
      taskPrompt: 'spawn-child',
      routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: 'fake' },
    });
    expect(first.result).toMatchObject({ success: true });
    const onA = childOf(first.result);
    expect(processAlive(onA)).toBe(true);

    await transferSession(a.url, sessionId, 'datacenter');
    await waitFor(() => !processAlive(onA), "A's agent process (for a session it no longer owns) to end");

    const second = await rpc(a, 'session.message', { sessionId, taskPrompt: 'spawn-child' }); // served by B
    expect(second.result).toMatchObject({ success: true });
    const onB = childOf(second.result);
    expect(processAlive(onB)).toBe(true);

    await transferSession(b.url, sessionId, 'office');
    await waitFor(() => !processAlive(onB), "B's agent process to end");

    const third = await rpc(a, 'session.message', { sessionId, taskPrompt: 'back home' });
    expect(third.result).toMatchObject({ success: true, output: 'echo: back home' });

    const updates = (await rpc(a, 'xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result.updates as Array<{
      seq: number;
      turnId: string;
      type: string;
      event: string;
    }>;
    const seqs = updates.map((u) => u.seq);
    expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
    expect(new Set(seqs).size).toBe(seqs.length);
    // every turn's updates are all there, through its final status
    const ended = updates.filter((u) => u.type === 'status' && u.event === 'completed').map((u) => u.turnId);
    expect(ended).toEqual([first.result.turnId, second.result.turnId, third.result.turnId]);
  });
});
