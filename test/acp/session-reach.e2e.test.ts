/**
 * Issue 12 items 2 and 3, with real gateway processes: a session transferred to a peer is continued through the
 * old owner whether or not that peer shares any agent runtime; a session moved twice (A→B→C) is reachable from
 * A and from B, `xworkmate.tasks.get` asks the owner, and an owner that is gone is named in the error.
 *
 *   A ──dials──▶ B (shareAgents: ["b-chat"])      A ──dials──▶ C (shareAgents: [])      B ──dials──▶ C
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { adminGet, cleanupDirs, startProcess, transferSession, waitFor, wsUrl, acpRpc } from '../helpers/env.js';

const BRIDGE = 'reach-bridge-token-1618';
const ACP = 'reach-acp-token-1414';
let a: GatewayProcess;
let b: GatewayProcess;
let c: GatewayProcess;

const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>) => acpRpc(gw.url, ACP, method, params);

const channels = (id: string) => ({ id, label: id, kind: 'channels', model: 'mock-1' });
const mock = [{ name: 'm', provider: 'mock', models: ['mock-1'] }];
const open = async (gw: GatewayProcess, n: number, what: string) =>
  waitFor(async () => (await adminGet(gw.url, '/admin/bridges')).peers.filter((p: any) => p.state === 'open').length >= n, what);

beforeAll(async () => {
  c = await startProcess({
    gateway: { id: 'gw_reach_c', name: 'cold', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: [], acceptSessions: true } },
    channels: mock,
    acp: { tokens: [ACP], gateways: [channels('switchyard')] },
  });
  b = await startProcess({
    gateway: {
      id: 'gw_reach_b',
      name: 'datacenter',
      bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: ['b-chat'], acceptSessions: true },
      bridges: [{ name: 'cold', url: wsUrl(c.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
    },
    channels: mock,
    acp: { tokens: [ACP], gateways: [channels('switchyard'), channels('b-chat')] },
  });
  a = await startProcess({
    gateway: {
      id: 'gw_reach_a',
      name: 'office',
      bridges: [
        { name: 'datacenter', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 },
        { name: 'cold', url: wsUrl(c.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 },
      ],
    },
    channels: mock,
    acp: { tokens: [ACP], gateways: [channels('switchyard')] },
  });
  await open(a, 2, 'A→B and A→C links');
  await open(b, 2, 'B↔A and B→C links');
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop(), c?.stop()]);
  cleanupDirs();
});

const start = (gw: GatewayProcess, sessionId: string, prompt: string) =>
  rpc(gw, 'session.start', { sessionId, taskPrompt: prompt, requestedExecutionTarget: 'gateway', gatewayProviderId: 'switchyard' });

describe('a transferred session is continued through the old owner', () => {
  it('to a peer that shares agent runtimes (B)', async () => {
    expect((await start(a, 'tr-shared', 'first on A')).result).toMatchObject({ success: true });
    await transferSession(a.url, 'tr-shared', 'datacenter');
    const msg = await rpc(a, 'session.message', { sessionId: 'tr-shared', taskPrompt: 'continued via A' });
    expect(msg.error).toBeUndefined();
    expect(msg.result).toMatchObject({ success: true, status: 'completed' });
    expect((await adminGet(b.url, '/admin/sessions/tr-shared')).session.history.map((t: any) => t.prompt)).toEqual(['first on A', 'continued via A']);
  });

  it('to a peer that shares no agent runtime at all (C): served all the same', async () => {
    expect((await start(a, 'tr-none', 'first on A')).result).toMatchObject({ success: true });
    await transferSession(a.url, 'tr-none', 'cold');
    const msg = await rpc(a, 'session.message', { sessionId: 'tr-none', taskPrompt: 'continued via A' });
    expect(msg.error).toBeUndefined();
    expect(msg.result).toMatchObject({ success: true, status: 'completed' });
    expect(msg.result.output).toContain('continued via A');
    const onC = (await adminGet(c.url, '/admin/sessions/tr-none')).session;
    expect(onC).toMatchObject({ ownerGatewayId: 'gw_reach_c', status: 'active' });
    expect(onC.history.map((t: any) => t.prompt)).toEqual(['first on A', 'continued via A']);
    // its task events travelled with it: C's record holds A's turn's, then C's
    const turns = onC.history.map((t: any) => t.turnId);
    expect(onC.metadata.taskEvents.map((e: any) => [e.event, e.turnId])).toEqual([
      ['task.started', turns[0]],
      ['task.completed', turns[0]],
      ['task.started', turns[1]],
      ['task.completed', turns[1]],
    ]);
    // and it can still be read and closed from A: tasks.get reports the latest turn, with that turn's task events
    const task = (await rpc(a, 'xworkmate.tasks.get', { sessionId: 'tr-none' })).result;
    expect(task).toMatchObject({ status: 'completed', sessionId: 'tr-none', turnId: turns[1], pendingPermissions: [] });
    expect(task.taskEvents.map((e: any) => [e.event, e.turnId])).toEqual([
      ['task.started', turns[1]],
      ['task.completed', turns[1]],
    ]);
    expect((await rpc(a, 'session.close', { sessionId: 'tr-none' })).result).toEqual({ accepted: true, closed: true });
  });
});

describe('a session moved twice (A→B→C)', () => {
  it('is reachable from A and from B; tasks.get asks the owner; a gone owner is named, never a new session', async () => {
    expect((await start(a, 'twice', 'born on A')).result).toMatchObject({ success: true });
    await transferSession(a.url, 'twice', 'datacenter');
    await transferSession(b.url, 'twice', 'cold');
    expect((await adminGet(b.url, '/admin/sessions/twice')).session).toMatchObject({ status: 'moved', movedTo: 'gw_reach_c' });

    const fromA = await rpc(a, 'session.message', { sessionId: 'twice', taskPrompt: 'hello from A' });
    expect(fromA.error).toBeUndefined();
    expect(fromA.result).toMatchObject({ success: true, status: 'completed' });
    expect(fromA.result.output).toContain('hello from A');
    const fromB = await rpc(b, 'session.message', { sessionId: 'twice', taskPrompt: 'hello from B' });
    expect(fromB.result).toMatchObject({ success: true, status: 'completed' });
    const onC = (await adminGet(c.url, '/admin/sessions/twice')).session;
    expect(onC.history.map((t: any) => t.prompt)).toEqual(['born on A', 'hello from A', 'hello from B']);

    const task = await rpc(a, 'xworkmate.tasks.get', { sessionId: 'twice' });
    expect(task.result).toMatchObject({ sessionId: 'twice', status: 'completed', runId: fromB.result.runId });
    expect(task.result.output).toContain('hello from B');

    await c.stop();
    for (const gw of [a, b]) {
      const down = await rpc(gw, 'session.message', { sessionId: 'twice', taskPrompt: 'anyone?' });
      expect(down.error).toMatchObject({ code: -32002, data: { code: 'SESSION_OWNER_UNREACHABLE', owner: 'gw_reach_c' } });
      const t = await rpc(gw, 'xworkmate.tasks.get', { sessionId: 'twice' });
      expect(t.error).toMatchObject({ code: -32002, data: { code: 'SESSION_OWNER_UNREACHABLE', owner: 'gw_reach_c' } });
    }
    // nothing was started in C's place
    expect((await adminGet(a.url, '/admin/sessions/twice')).session).toMatchObject({ status: 'moved', movedTo: 'gw_reach_b' });
    expect((await adminGet(b.url, '/admin/sessions/twice')).session).toMatchObject({ status: 'moved', movedTo: 'gw_reach_c' });
  });
});
