/**
 * Issue 10 item 5 (agent processes unbounded): regression tests on real agent processes (the fake ACP agent)
 * behind a real gateway's /acp/rpc.
 *  - agents started past `acp.maxAgentProcesses` are refused with a clear error, and never run past the cap;
 *  - at the cap, an idle agent that supports `session/load` is stopped to make room, and its session carries on
 *    in a new process that loads the conversation;
 *  - agents left idle past `acp.agentIdleTimeoutMs` are stopped (default on), and the next turn starts a new one.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { configSchema } from '../../src/config/schema.js';
import type { Gateway } from '../../src/gateway.js';
import { cleanupDirs, memoryLogger, processAlive, startInProcess, waitFor } from '../helpers/env.js';
import { agentPids, agentRouting, rpc } from './acp-rpc.js';

const FAKE = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const TOKEN = 'acp-limits-token-3f9a';
let gw: Gateway | undefined;

afterEach(async () => {
  await gw?.close();
  gw = undefined;
  cleanupDirs();
});

async function start(acp: Record<string, unknown>) {
  const { logger, lines } = memoryLogger();
  gw = await startInProcess(
    {
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: {
        tokens: [TOKEN],
        agents: [
          { id: 'fake', label: 'Fake', command: process.execPath, args: [FAKE], permissions: 'allow' },
          { id: 'fake-load', label: 'Fake (loadSession)', command: process.execPath, args: [FAKE], env: { FAKE_ACP_LOAD: '1' }, permissions: 'allow' },
        ],
        ...acp,
      },
    },
    logger,
  );
  const call = (method: string, params: Record<string, unknown>) => rpc(gw!.url, TOKEN, method, params, 30_000);
  const startSession = (sessionId: string, agent: string, taskPrompt = 'hello') =>
    call('session.start', { sessionId, taskPrompt, routing: agentRouting(agent) });
  return { lines, call, startSession };
}

describe('agent process limits', () => {
  it('agents started past acp.maxAgentProcesses are refused with a clear error; none runs past the cap', async () => {
    const { lines, call, startSession } = await start({ maxAgentProcesses: 2, agentIdleTimeoutMs: 0 });
    for (const id of ['cap-1', 'cap-2']) expect((await startSession(id, 'fake')).result).toMatchObject({ success: true, output: 'echo: hello' });
    const pids = agentPids(lines);
    expect(pids).toHaveLength(2);

    const third = (await startSession('cap-3', 'fake')).result;
    expect(third).toMatchObject({ success: false, status: 'failed', errorCode: 'OVERLOADED' });
    expect(third.error).toBe(
      'agent "fake" was not started: 2 agent processes are running, the limit (acp.maxAgentProcesses) is 2; close a session or retry later',
    );
    expect(agentPids(lines)).toHaveLength(2); // no third process was spawned
    for (const pid of pids) expect(processAlive(pid)).toBe(true);

    // a closed session gives its slot back
    expect((await call('session.close', { sessionId: 'cap-1' })).result).toMatchObject({ closed: true });
    await waitFor(() => !processAlive(pids[0]!), 'the closed session’s agent to exit', 10_000);
    expect((await call('session.message', { sessionId: 'cap-3', taskPrompt: 'again' })).result).toMatchObject({ success: true, output: 'echo: again' });
    expect(agentPids(lines, 'cap-3')).toHaveLength(1);
  }, 60_000);

  it('at the cap an idle agent with session/load is stopped to make room, and its session resumes in a new process', async () => {
    const { lines, call, startSession } = await start({ maxAgentProcesses: 1, agentIdleTimeoutMs: 0 });
    expect((await startSession('evict-a', 'fake-load', 'first words')).result).toMatchObject({ success: true });
    const [pidA] = agentPids(lines, 'evict-a');

    // B needs the only slot: A is idle and can reload its session, so A's process is stopped
    expect((await startSession('evict-b', 'fake-load')).result).toMatchObject({ success: true, output: 'echo: hello' });
    expect(processAlive(pidA!)).toBe(false);
    expect(lines.some((l) => l.includes('"agent session closed"') && l.includes('"reason":"evicted"'))).toBe(true);

    // A's next turn starts a new process (evicting B in turn), which loads A's conversation
    const again = (await call('session.message', { sessionId: 'evict-a', taskPrompt: 'history' })).result;
    expect(again).toMatchObject({ success: true, output: 'history: first words' });
    const pidsA = agentPids(lines, 'evict-a');
    expect(pidsA).toHaveLength(2);
    expect(pidsA[1]).not.toBe(pidA);
    expect(lines.filter((l) => l.includes('"agent session started"') && l.includes('"loaded":true'))).toHaveLength(1);
  }, 60_000);

  it('agents left idle past acp.agentIdleTimeoutMs are stopped; the session goes on in a new process', async () => {
    const { lines, call, startSession } = await start({ agentIdleTimeoutMs: 300 });
    expect((await startSession('idle-1', 'fake-load', 'before the pause')).result).toMatchObject({ success: true });
    const [pid] = agentPids(lines, 'idle-1');
    // the log line comes once the whole process group is gone, a moment after the agent itself
    await waitFor(() => lines.some((l) => l.includes('"agent session closed"') && l.includes('"reason":"idle"')), 'the idle agent to be stopped', 10_000);
    expect(processAlive(pid!)).toBe(false);

    const next = (await call('session.message', { sessionId: 'idle-1', taskPrompt: 'history' })).result;
    expect(next).toMatchObject({ success: true, output: 'history: before the pause' });
    expect(agentPids(lines, 'idle-1')).toHaveLength(2);
  }, 60_000);

  it('the idle timeout is on by default, and so is the cap', () => {
    const acp = configSchema().parse({}).acp;
    expect(acp.agentIdleTimeoutMs).toBeGreaterThan(0);
    expect(acp.maxAgentProcesses).toBeGreaterThan(0);
  });

  it('close, message and a restart racing on one session leave no agent process behind a closed record', async () => {
    const { lines, call, startSession } = await start({ maxAgentProcesses: 2, agentIdleTimeoutMs: 0 });
    for (let round = 0; round < 6; round++) {
      const id = `race-${round}`;
      expect((await startSession(id, 'fake')).result).toMatchObject({ success: true });
      // all at once, as a client retrying over several connections would
      await Promise.all([
        call('session.close', { sessionId: id }),
        call('session.message', { sessionId: id, taskPrompt: 'late' }),
        startSession(id, 'fake', 'again'),
        call('session.message', { sessionId: id, taskPrompt: 'later' }),
      ]);
      await call('session.close', { sessionId: id });
      // every process of this session is gone once it is closed
      await waitFor(() => agentPids(lines, id).every((pid) => !processAlive(pid)), `no agent of ${id} left`, 10_000);
    }
    // the slots all came back: a fresh session starts
    expect((await startSession('after-the-races', 'fake')).result).toMatchObject({ success: true, output: 'echo: hello' });
  }, 120_000);
});
