/**
 * An `llm` agent's model call in flight when the peer serving it goes away, on real processes: gateway A runs the
 * fake ACP agent (preset `hermes`) on `fo-model`, which peers B and C both serve (fake OpenAI upstreams of this
 * process). The peer that got the call is SIGKILLed while its upstream holds the answer:
 *  - with another candidate (the other peer), A fails over and the agent gets its answer (200);
 *  - with none left, the agent gets a clean error status (no hang), and either way the turn ends and the session
 *    takes its next turn;
 *  - a streamed call whose first chunk reached the agent cannot fail over: its stream ends with an error event.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startOpenAiUpstream, type OpenAiFake } from '../fakes/openai-upstream.js';
import { adminGet, channelOf, cleanupDirs, startProcess, waitFor, wsUrl } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';
import { hermesAcp } from './hermes-instances.js';

const ACP = 'acp-peer-loss-token-1f9e';
/** the fake agent as Hermes, on the model the peers serve (fo-model), for the gateway that runs the agent */
const HERMES = hermesAcp(ACP, 'fo-model');
const BRIDGE = 'bridge-peer-loss-token-83c0';
type Gw = Awaited<ReturnType<typeof startProcess>>;

const procs: Gw[] = [];
const ups: OpenAiFake[] = [];

afterAll(async () => {
  for (const p of procs) await p.stop(10_000).catch(() => undefined);
  for (const u of ups) await u.close();
  cleanupDirs();
});

async function peer(id: string, up: OpenAiFake): Promise<Gw> {
  const g = await startProcess({
    gateway: { id, name: id, bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: [`${id}-ch`] } },
    channels: [channelOf(up, `${id}-ch`, ['fo-model'])],
  });
  procs.push(g);
  return g;
}

describe('the peer serving an agent’s model call goes away mid-call', () => {
  it('fails over to the other peer; with none left the agent gets a clean error; the turn ends either way', async () => {
    const upB = await startOpenAiUpstream({ reply: 'from B', delayMs: 60_000 });
    const upC = await startOpenAiUpstream({ reply: 'from C', delayMs: 60_000 });
    ups.push(upB, upC);
    const b = await peer('gw_loss_b', upB);
    const c = await peer('gw_loss_c', upC);
    const a = await startProcess({
      gateway: {
        id: 'gw_loss_a',
        name: 'laptop',
        bridges: [
          { name: 'gw_loss_b', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 },
          { name: 'gw_loss_c', url: wsUrl(c.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 },
        ],
      },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: HERMES,
    });
    procs.push(a);
    await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers.filter((p: any) => p.state === 'open').length === 2, 'A→B and A→C links');

    // 1. the call lands on one peer, which dies: A fails over to the other, which answers at once
    const sid = 'loss-1';
    const first = rpc(a.url, ACP, 'session.start', { sessionId: sid, taskPrompt: 'llm who serves', routing: agentRouting('hermes') }, 30_000);
    const landed = await waitFor(() => (upB.requests.length > 0 ? 'b' : upC.requests.length > 0 ? 'c' : undefined), 'the agent’s call at a peer’s upstream');
    const [dead, alive, aliveUp, aliveName] = landed === 'b' ? [b, c, upC, 'C'] : [c, b, upB, 'B'];
    aliveUp.setScenario({ reply: `from ${aliveName}` });
    dead.kill('SIGKILL');
    const r1 = (await first).result;
    expect(r1, a.logs().slice(-3000)).toMatchObject({ success: true });
    expect(r1.output).toBe(`llm 200 fo-model: from ${aliveName}`);

    // 2. the last peer dies under the next call: a clean error to the agent, the turn ends
    aliveUp.setScenario({ reply: 'never', delayMs: 60_000 });
    const before = aliveUp.requests.length;
    const second = rpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'llm anyone' }, 30_000);
    await waitFor(() => aliveUp.requests.length > before || undefined, 'the second call at the last peer’s upstream');
    alive.kill('SIGKILL');
    const r2 = (await second).result;
    expect(r2, a.logs().slice(-3000)).toMatchObject({ success: true });
    expect(r2.output).toMatch(/^llm (502|503) -: /);
    expect(r2.output).not.toContain('sy-agent-');

    // 3. the session is not hung: it takes its next turn
    const r3 = (await rpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'hello again' }, 30_000)).result;
    expect(r3).toMatchObject({ success: true });
  }, 60_000);

  it('a streamed call cut after its first chunk ends with an error event; the turn ends, the session goes on', async () => {
    const up = await startOpenAiUpstream({ reply: 'one two three four', chunkDelayMs: 10, stallAfterChunks: 1 });
    ups.push(up);
    const b = await peer('gw_loss_s', up);
    const a = await startProcess({
      gateway: {
        id: 'gw_loss_sa',
        name: 'laptop-s',
        bridges: [{ name: 'gw_loss_s', url: wsUrl(b.url), token: BRIDGE, shareChannels: false, reconnectInterval: 100 }],
      },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: HERMES,
    });
    procs.push(a);
    await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
    const sid = 'loss-stream-1';
    const turn = rpc(a.url, ACP, 'session.start', { sessionId: sid, taskPrompt: 'llmstream tell me', routing: agentRouting('hermes') }, 30_000);
    await waitFor(() => existsSync(path.join(a.dir, 'workspaces', sid, '.stream-started')) || undefined, 'the first chunk at the agent');
    b.kill('SIGKILL');
    const r = (await turn).result;
    expect(r, a.logs().slice(-3000)).toMatchObject({ success: true });
    expect(r.output).toMatch(/^llmstream 200 one \| error /);
    expect(r.output).not.toContain('sy-agent-');
    expect((await rpc(a.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'hello again' }, 30_000)).result).toMatchObject({ success: true });
  }, 60_000);
});
