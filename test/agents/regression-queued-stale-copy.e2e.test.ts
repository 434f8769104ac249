/**
 * Regression: a turn queued on instance 1 that runs after a turn of instance 2 ran on the agent process instance 1
 * had from before, which never saw instance 2's turn. Two gateway instances share one Redis store (one gateway id);
 * the fake ACP agent as Hermes. Instance 1 runs the session's first turn (its agent and per-session token); its next
 * turn comes while instance 2 holds the session's lease, so it waits, queued; instance 2 runs a turn, and its
 * "this session runs here now" message reaches instance 1 while that turn is queued there, so the live copy is kept
 * (endStaleCopy ends idle copies only). On the old code the queued turn then ran on the old agent process and its
 * old token. Now the turn, once it holds the lease, finds the record went on without its copy: the old agent stops,
 * its token is refused, and the turn runs on a new agent, as a session revived from its record does.
 *
 * The lease is held for instance 2 by writing its holder id into the store's lease key (what instance 2's own take
 * leaves there, re-entrant for it): so instance 2's turn takes the lease before instance 1's queued one, every time.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { processAlive, waitFor } from '../helpers/env.js';
import { agentPids, agentRouting, rpc } from './acp-rpc.js';
import { chatWith, twoInstancesOnRedis } from './hermes-instances.js';

const ACP = 'acp-queued-stale-copy-5e20b7';
const GW = 'gw_queued_stale_copy';
const s = twoInstancesOnRedis(GW, ACP, { instanceIds: ['one', 'two'] });

describe('a turn queued on one instance while another runs a turn of the session', () => {
  it('runs on a new agent process once it holds the lease: the old one, which never saw the other turn, is gone and its token refused', async () => {
    const sid = 'queued-stale-copy-1';
    const tokenFile = path.join(s.g1.dir, 'workspaces', sid, '.env-OPENAI_API_KEY');
    const started = await rpc(
      s.g1.url,
      ACP,
      'session.start',
      { sessionId: sid, taskPrompt: 'envfile OPENAI_API_KEY', routing: agentRouting('hermes') },
      30_000,
    );
    expect(started.result).toMatchObject({ success: true, output: 'written' });
    const oldToken = readFileSync(tokenFile, 'utf8');
    expect((await chatWith(s.g1, oldToken)).status).toBe(200);
    const [oldPid] = agentPids(s.g1.logs());
    expect(processAlive(oldPid!)).toBe(true);

    // instance 2 holds the session's lease (its holder id, as its own take leaves it)
    const redis = new Redis(s.redis.url);
    try {
      expect(await redis.set(`switchyard:lease:${sid}`, `${GW}/two`, 'PX', 30_000, 'NX')).toBe('OK');
      // instance 1's next turn waits for it, queued on the live copy that has the old agent
      const queued = rpc(s.g1.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'envfile OPENAI_API_KEY' }, 60_000);
      await waitFor(
        async () => {
          const t = (await rpc(s.g1.url, ACP, 'xworkmate.tasks.get', { sessionId: sid })).result;
          return (t.runId !== started.result.runId && t.status === 'queued') || undefined;
        },
        "instance 1's turn queued",
        15_000,
      );
      // instance 2 runs a turn meanwhile (its take is re-entrant), then gives the lease back
      const there = await rpc(s.g2.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'there' }, 30_000);
      expect(there.result).toMatchObject({ success: true, output: 'echo: there' });

      const next = await queued;
      expect(next.result).toMatchObject({ success: true, output: 'written' });
    } finally {
      redis.disconnect();
    }
    // a new agent process ran it, with a new token; the old process is gone and its token refused
    const pids = agentPids(s.g1.logs());
    expect(pids).toHaveLength(2);
    expect(pids[1]).not.toBe(oldPid);
    await waitFor(() => !processAlive(oldPid!) || undefined, 'the old agent process gone', 10_000);
    expect((await chatWith(s.g1, oldToken)).status).toBe(401);
    const newToken = readFileSync(tokenFile, 'utf8');
    expect(newToken).not.toBe(oldToken);
    expect((await chatWith(s.g1, newToken)).status).toBe(200);
  }, 90_000);
});
