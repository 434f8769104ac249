/**
 * Regression: two gateway instances sharing one Redis session store (one gateway id), the fake ACP agent run with
 * preset `hermes` + `llm`. A session's agent runs on instance 1 with its per-session token and sits idle there; the
 * next turn of the session reaches instance 2 (a load balancer in front of both), which runs it on an agent of its
 * own. Instance 1's agent and token belong to a session that went on without them: instance 2's turn tells
 * instance 1 (the store's pub/sub, as a close or move elsewhere does), which stops its agent and revokes its token at
 * once. On the old code instance 1 noticed only at its next message of the session (TurnRunner.overtaken): until
 * then its idle agent process lived on, and its token went on working.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { processAlive, waitFor } from '../helpers/env.js';
import { agentPids, agentRouting, rpc } from './acp-rpc.js';
import { chatWith, twoInstancesOnRedis } from './hermes-instances.js';

const ACP = 'acp-overtaken-elsewhere-7d41a9';
const s = twoInstancesOnRedis('gw_overtaken_elsewhere', ACP);

describe('a session whose next turn runs on another instance sharing the store', () => {
  it('ends the idle live session it left on this instance: its agent process stops and its token is refused, without a further message here', async () => {
    const sid = 'overtaken-elsewhere-1';
    const started = await rpc(
      s.g1.url,
      ACP,
      'session.start',
      { sessionId: sid, taskPrompt: 'envfile OPENAI_API_KEY', routing: agentRouting('hermes') },
      30_000,
    );
    expect(started.result).toMatchObject({ success: true, output: 'written' });
    const token = readFileSync(path.join(s.g1.dir, 'workspaces', sid, '.env-OPENAI_API_KEY'), 'utf8');
    expect((await chatWith(s.g1, token)).status).toBe(200);
    const [pid] = agentPids(s.g1.logs());
    expect(pid).toBeTypeOf('number');
    expect(processAlive(pid!)).toBe(true);

    // the next turn reaches instance 2: it runs there, on the record instance 1 shares
    const next = await rpc(s.g2.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'there' }, 30_000);
    expect(next.result).toMatchObject({ success: true, output: 'echo: there' });
    expect(agentPids(s.g2.logs())).toHaveLength(1);

    // instance 1 hears of it through the store's pub/sub: polled, bounded
    await waitFor(() => !processAlive(pid!) || undefined, "instance 1's idle agent process gone", 10_000);
    await waitFor(async () => (await chatWith(s.g1, token)).status === 401 || undefined, "the session's token refused on instance 1", 10_000);

    // the session goes on: back on instance 1 (a new agent there, numbering on from instance 2's updates)
    const back = await rpc(s.g1.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'again' }, 30_000);
    expect(back.result).toMatchObject({ success: true, output: 'echo: again' });
    expect(agentPids(s.g1.logs())).toHaveLength(2);
  });
});
