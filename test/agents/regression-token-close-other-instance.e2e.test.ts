/**
 * Two gateway instances sharing one Redis session store (one config), the fake ACP agent run with preset
 * `hermes` + `llm`. The session's agent runs on instance 1 with its per-session token; the client's
 * `session.close` reaches instance 2 (a load balancer in front of both). The session is closed for both: instance 1
 * stops its agent and revokes the token at once (docs/acp-agents.md, Presets: "revokes it when the session closes").
 * On the old code instance 1 never heard of the close: the agent's token went on working there, for any length of
 * time, on a closed session.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../sessions/fixtures/redis-server.js';
import { cleanupDirs, startProcess, waitFor } from '../helpers/env.js';
import { agentRouting, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const ACP = 'acp-close-elsewhere-4e7b1a';
type Gw = Awaited<ReturnType<typeof startProcess>>;

let redis: RedisServer;
let g1: Gw;
let g2: Gw;

beforeAll(async () => {
  redis = await startRedis();
  const cfg = {
    gateway: { id: 'gw_close_elsewhere', admin: { token: 'admin-close-elsewhere-77aa' } },
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    store: { kind: 'redis', url: redis.url },
    acp: {
      tokens: [ACP],
      agents: [
        { id: 'hermes', label: 'Hermes (fake)', preset: 'hermes', command: process.execPath, args: [FAKE], llm: { model: 'mock-1' }, permissions: 'allow' },
      ],
    },
  };
  [g1, g2] = await Promise.all([startProcess(cfg), startProcess(cfg)]);
}, 60_000);

afterAll(async () => {
  await Promise.all([g1?.stop(10_000), g2?.stop(10_000)]);
  await redis?.stop();
  cleanupDirs();
});

const chat = (gw: Gw, token: string) =>
  fetch(`${gw.url}/v1/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'mock-1', messages: [{ role: 'user', content: 'still here?' }] }),
  });

describe('session.close on another instance sharing the store', () => {
  it('revokes the token of the agent the session runs on this instance, and stops that agent', async () => {
    const sid = 'close-elsewhere-1';
    const started = await rpc(g1.url, ACP, 'session.start', { sessionId: sid, taskPrompt: 'envfile OPENAI_API_KEY', routing: agentRouting('hermes') }, 30_000);
    expect(started.result).toMatchObject({ success: true, output: 'written' });
    const token = readFileSync(path.join(g1.dir, 'workspaces', sid, '.env-OPENAI_API_KEY'), 'utf8');
    expect((await chat(g1, token)).status).toBe(200);

    expect((await rpc(g2.url, ACP, 'session.close', { sessionId: sid })).result).toMatchObject({ closed: true });
    // the close reaches instance 1 through the store's pub/sub: polled, bounded
    await waitFor(async () => (await chat(g1, token)).status === 401 || undefined, 'the token refused on instance 1', 10_000);
    await waitFor(() => g1.logs().includes('agent session closed') || undefined, 'the agent on instance 1 stopped', 10_000);
  });
});
