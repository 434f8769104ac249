/**
 * Regression: after a SIGKILL mid-turn and a restart, `xworkmate.tasks.get` (and the REST events route) said the
 * interrupted turn was `running` for as long as nobody sent the session another message. The restarted gateway
 * records it `failed` ("interrupted") at startup, with the turn's final update in the log so a replay ends, and
 * the code TURN_INTERRUPTED in that update, its `task.failed` event and tasks.get (it had no code at all).
 * Real processes (SQLite: the lease of the dead process is the restarted one's own).
 */
import { describe, expect, it } from 'vitest';
import { acpRpc, spawnGateway, startProcess, waitFor, waitForRunningTurn } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ACP = 'interrupted-acp-token-1729';
const { procs } = stopAfterAll();

describe('a turn interrupted by a crash', () => {
  it('is failed at the restart, without a new message, and its replay ends', async () => {
    const first = await startProcess({
      gateway: { id: 'gw_interrupted' },
      channels: [{ name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 300 } }],
      acp: { tokens: [ACP], gateways: [{ id: 'slow', label: 'Slow', kind: 'channels', model: 'slow-1' }] },
    });
    procs.push(first);
    const sessionId = `interrupted-${Math.random().toString(36).slice(2, 8)}`;
    void acpRpc(first.url, ACP, 'session.start', {
      sessionId,
      taskPrompt: 'please write a long answer with many many words so that the turn is still running when it is killed',
      requestedExecutionTarget: 'gateway',
      gatewayProviderId: 'slow',
    }).catch(() => undefined);
    const { turnId } = await waitForRunningTurn(first.url, sessionId);
    first.kill('SIGKILL');
    await waitFor(() => first.proc.exitCode !== null || first.proc.signalCode !== null, 'the first process is gone');

    const second = await spawnGateway(first.configPath, { SWITCHYARD_LOG: 'info' });
    procs.push(second);
    const get = async (params: Record<string, unknown>) => (await acpRpc(second.url, ACP, 'xworkmate.tasks.get', params)).result;
    // observed through the log: the record is failed a moment before the final update is logged
    const { updates, lastSeq } = await waitFor(async () => {
      const r = await get({ sessionId, afterSeq: 0 });
      return r.updates.at(-1)?.status === 'failed' && r;
    }, "the interrupted turn's final update");
    const task = await get({ sessionId });
    // every failure the app sees carries a catalogue code: this one's is TURN_INTERRUPTED (it had none)
    expect(task).toMatchObject({ status: 'failed', turnId, error: expect.stringMatching(/^interrupted/), code: 'TURN_INTERRUPTED', sessionStatus: 'active' });
    expect(await get({ runId: task.runId })).toMatchObject({ status: 'failed', code: 'TURN_INTERRUPTED' });
    expect(updates.at(-1)).toMatchObject({ turnId, runId: task.runId, type: 'status', event: 'failed', status: 'failed', code: 'TURN_INTERRUPTED' });
    expect(updates.at(-2)).toMatchObject({ turnId, type: 'task', event: 'task.failed', task: { detail: { code: 'TURN_INTERRUPTED' } } });
    expect(lastSeq).toBe(updates.at(-1).seq);
  });
});
