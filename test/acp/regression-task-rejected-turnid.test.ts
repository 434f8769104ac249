/**
 * Regression: the `task.rejected` event of a refused role turn (addendum 2026-10 §4) carried `turnId: ""` and
 * `task.taskId: ""`. Every task event carries its turn's id as both (the addendum's event shape; acp-rpc.md:
 * every `session.update` carries a `turnId`), and an app that keys tasks by `taskId` saw every refusal as one
 * task. The refused turn gets an id of its own, which the refusal result names too. Through a real gateway's
 * /acp/rpc (SSE).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Gateway } from '../../src/gateway.js';
import { acpRpc, cleanupDirs, startInProcess } from '../helpers/env.js';

const ACP = 'rejected-acp-token-5772';
let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess({
    channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
    acp: {
      tokens: [ACP],
      gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
      roles: {
        policyVersion: 'p-1',
        roles: [{ role: 'engineer', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'], productModes: ['code'] }],
      },
    },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

const refused = (sessionId: string) =>
  acpRpc(
    gw.url,
    ACP,
    'session.start',
    {
      sessionId,
      taskPrompt: 'fix the test',
      workingDirectory: 'demo',
      routing: { role: 'engineer', roleMode: 'manual', roleModel: 'nope' },
      metadata: { xworkmateProductCapability: { schemaVersion: 1, mode: 'code' } },
    },
    true,
  );

describe('task.rejected', () => {
  it("carries the refused turn's own id as turnId and task.taskId, which the result names too", async () => {
    const one = await refused('rej-1');
    expect(one.result).toMatchObject({ status: 'unavailable', unavailableCode: 'ROLE_SELECTION_REJECTED', roleSelection: { code: 'model_unknown' } });
    expect(one.updates).toHaveLength(1);
    const ev = one.updates[0]!;
    expect(ev).toMatchObject({
      type: 'task',
      event: 'task.rejected',
      sessionId: 'rej-1',
      threadId: 'rej-1',
      pending: false,
      error: true,
      task: { sessionId: 'rej-1', threadId: 'rej-1', phase: 'rejected', role: 'engineer', roleMode: 'manual', detail: { code: 'model_unknown' } },
    });
    expect(ev.turnId).toMatch(/^turn_[A-Za-z0-9_-]+$/);
    expect(ev.task.taskId).toBe(ev.turnId);
    expect(one.result.turnId).toBe(ev.turnId);
    // nothing ran: no run, no seq
    expect(ev.runId).toBeUndefined();
    expect(ev.seq).toBeUndefined();

    // each refused turn is a task of its own, also a second one of the same session
    const two = await refused('rej-1');
    expect(two.updates[0]!.turnId).toMatch(/^turn_/);
    expect(two.updates[0]!.turnId).not.toBe(ev.turnId);
  });
});
