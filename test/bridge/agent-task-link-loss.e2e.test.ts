/**
 * An agent task a peer runs here over the bridge (bridge-rpc) outlives the link, as a task outlives its local
 * client's disconnect: the link's end does not cancel the turn (only bridge-cancel, the requester giving up, or
 * session.cancel does). The requesting side's client is told the owner cannot be reached and to retry later, and
 * once the link is back it reads the finished task through its own gateway.
 */
import { describe, expect, it } from 'vitest';
import { acpRpc, adminGet, startProcess, waitFor, waitForRunningTurn, wsUrl } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const BRIDGE = 'task-link-loss-bridge-token-6021';
const ACP = 'task-link-loss-acp-token-1729';
const { trackGateway: track } = stopAfterAll();
const provider = (id: string) => ({ id, label: id, kind: 'channels', model: 'mock-1' });
const linkOpen = async (url: string) => (await adminGet(url, '/admin/bridges')).peers[0]?.state === 'open';

describe('an agent task running on a peer when the link drops', () => {
  it('goes on to the end there; the client is told to retry and then reads the finished task through its gateway', async () => {
    const b = track(
      await startProcess({
        gateway: { id: 'gw_tl_b', name: 'runner', bridge: { enabled: true, allowedTokens: [BRIDGE], shareAgents: ['b-chat'] } },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'], options: { chunkDelayMs: 50 } }],
        acp: { tokens: [ACP], gateways: [provider('b-chat'), provider('switchyard')] },
      }),
    );
    const a = track(
      await startProcess({
        gateway: {
          id: 'gw_tl_a',
          name: 'office',
          bridges: [{ name: 'runner', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
        },
        channels: [{ name: 'm', provider: 'mock', models: ['mock-1'] }],
        acp: { tokens: [ACP], gateways: [provider('switchyard')] },
      }),
    );
    await waitFor(() => linkOpen(a.url), 'A→B link');
    const words = Array.from({ length: 40 }, (_, i) => `w${i}`).join(' ');
    const start = acpRpc(a.url, ACP, 'session.start', {
      sessionId: 'tl-1',
      taskPrompt: words,
      routing: { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'b-chat' },
    });
    await waitForRunningTurn(b.url, 'tl-1');
    expect((await fetch(`${b.url}/admin/bridges/gw_tl_a`, { method: 'DELETE' })).status).toBe(200);

    const answer = await start;
    expect(answer.error).toMatchObject({ code: -32002, data: { code: 'SESSION_OWNER_UNREACHABLE', owner: 'gw_tl_b', retryable: true } });
    const onB = await waitFor(async () => {
      const s = (await adminGet(b.url, '/admin/sessions/tl-1')).session;
      return s.history.every((t: { status: string }) => t.status !== 'running') ? s : undefined;
    }, 'the turn on B to end');
    expect(onB.history.map((t: { status: string }) => t.status)).toEqual(['completed']);

    await waitFor(() => linkOpen(a.url), 'the link back');
    const task = await acpRpc(a.url, ACP, 'xworkmate.tasks.get', { sessionId: 'tl-1' });
    expect(task.result).toMatchObject({ sessionId: 'tl-1', status: 'completed' });
    expect(task.result.output).toContain('w39');
  });
});
