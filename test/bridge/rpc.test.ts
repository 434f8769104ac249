/**
 * Agent tasks over the bridge at the transport level: shared agents announced in the handshake, bridge-rpc
 * calls relayed with their session.update events in order, results and JSON-RPC errors passed through
 * unchanged, the serving side's share list enforced, cancel crossing the link, and link loss failing calls.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { GatewayError } from '../../src/wire/errors.js';
import { cleanupDirs, startInProcess, waitFor, wsUrl } from '../helpers/env.js';

const TOKEN = 'rpc-bridge-token-abcdef';
let a: Gateway;
let b: Gateway;
let cancelled = 0;

beforeAll(async () => {
  b = await startInProcess({
    gateway: { id: 'gw_rpc_b', name: 'agents-box', bridge: { enabled: true, allowedTokens: [TOKEN], shareAgents: ['codex'] } },
    channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
    acp: {
      agents: [
        { id: 'codex', label: 'Codex', command: 'codex-acp' },
        { id: 'gemini', label: 'Gemini', command: 'gemini', args: ['--acp'] },
      ],
    },
  });
  // The serving-side handler the ACP layer installs; this one echoes and enforces the share list.
  b.mesh.rpcHandler = async ({ method, params, sharedAgents, emit, signal }) => {
    const provider = String(params.provider ?? '');
    if (!sharedAgents.has(provider)) throw new GatewayError('CHANNEL_NOT_SHARED', `runtime "${provider}" is not shared with you`);
    if (method !== 'session.start') return { error: { code: -32002, message: 'no such session', data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } } };
    for (let seq = 1; seq <= 3; seq++) emit('session.update', { sessionId: params.sessionId, seq, type: 'delta', delta: `part${seq} ` });
    if (params.taskPrompt === 'slow') {
      await new Promise<void>((resolve) => signal.addEventListener('abort', () => (cancelled++, resolve()), { once: true }));
      return { result: { status: 'cancelled' } };
    }
    return { result: { success: true, status: 'completed', output: 'part1 part2 part3' } };
  };
  a = await startInProcess({
    gateway: { id: 'gw_rpc_a', name: 'app-side', bridges: [{ name: 'agents', url: wsUrl(b.url), token: TOKEN, shareChannels: false }] },
    channels: [{ name: 'l', provider: 'mock', models: ['local-1'] }],
  });
  await waitFor(() => a.mesh.peerAgents().length > 0, 'shared agents announced to A');
});

afterAll(async () => {
  await a?.close();
  await b?.close();
  cleanupDirs();
});

describe('bridge-rpc', () => {
  it('announces only the whitelisted agents, with label and kind', () => {
    expect(a.mesh.peerAgents()).toEqual([{ peerId: 'gw_rpc_b', peerName: 'agents', agent: { id: 'codex', label: 'Codex', kind: 'agent' } }]);
  });

  it('relays events in order, then the result', async () => {
    const events: any[] = [];
    const out = await a.mesh.rpc(
      'gw_rpc_b',
      'session.start',
      { sessionId: 's1', provider: 'codex', taskPrompt: 'hi' },
      { onEvent: (m, p) => events.push({ m, ...p }) },
    );
    expect(events.map((e) => [e.m, e.seq])).toEqual([
      ['session.update', 1],
      ['session.update', 2],
      ['session.update', 3],
    ]);
    expect(out).toEqual({ result: { success: true, status: 'completed', output: 'part1 part2 part3' } });
  });

  it('passes a JSON-RPC error through unchanged', async () => {
    const out = await a.mesh.rpc('gw_rpc_b', 'session.message', { sessionId: 'nope', provider: 'codex', taskPrompt: 'x' }, { onEvent: () => undefined });
    expect(out).toEqual({ error: { code: -32002, message: 'no such session', data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } } });
  });

  it('the serving side refuses a runtime it does not share (AGENT_NOT_SHARED), even one it has', async () => {
    const err = await a.mesh
      .rpc('gw_rpc_b', 'session.start', { sessionId: 's2', provider: 'gemini', taskPrompt: 'x' }, { onEvent: () => undefined })
      .catch((e) => e);
    expect(err).toBeInstanceOf(GatewayError);
    expect(err.details).toMatchObject({ bridgeCode: 'AGENT_NOT_SHARED' });
    expect(err.message).toMatch(/not shared/);
  });

  it('aborting the call sends bridge-cancel and the serving side sees it', async () => {
    const ac = new AbortController();
    const events: unknown[] = [];
    const pending = a.mesh.rpc(
      'gw_rpc_b',
      'session.start',
      { sessionId: 's3', provider: 'codex', taskPrompt: 'slow' },
      { onEvent: (_m, p) => events.push(p), signal: ac.signal },
    );
    await waitFor(() => events.length === 3, 'events before cancel');
    ac.abort();
    await expect(pending).rejects.toMatchObject({ code: 'CANCELLED' });
    await waitFor(() => cancelled === 1, 'serving side to see the cancel');
  });

  it('a peer that is not connected fails fast with PEER_UNAVAILABLE', async () => {
    await expect(a.mesh.rpc('gw_unknown', 'session.start', {}, { onEvent: () => undefined })).rejects.toMatchObject({ code: 'PEER_UNAVAILABLE' });
  });

  it('a gateway sharing no agents answers AGENT_NOT_SHARED', async () => {
    const err = await b.mesh.rpc('gw_rpc_a', 'session.start', { provider: 'x' }, { onEvent: () => undefined }).catch((e) => e);
    expect(err.details).toMatchObject({ bridgeCode: 'AGENT_NOT_SHARED' });
  });
});
