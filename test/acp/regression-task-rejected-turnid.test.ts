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
    // nothing ran: no run; and no session to number it in (none is created): no seq
    expect(ev.runId).toBeUndefined();
    expect(ev.seq).toBeUndefined();

    // each refused turn is a task of its own, also a second one of the same session
    const two = await refused('rej-1');
    expect(two.updates[0]!.turnId).toMatch(/^turn_/);
    expect(two.updates[0]!.turnId).not.toBe(ev.turnId);
  });
});

/**
 * Regression: the `task.rejected` of a refused turn of an open session carried no `seq`, while acp-rpc.md has every
 * `session.update` carry the session's increasing `seq` and the addendum (§4) adds it to task events. It is numbered
 * in the session's seq, logged (a resume after the last seq seen finds it) and the next turn numbers above it.
 */
describe('task.rejected of an open session', () => {
  const code = { xworkmateProductCapability: { schemaVersion: 1, mode: 'code' } };
  it("is numbered in the session's seq, in its update log, and the next turn numbers above it", async () => {
    const sid = 'rej-open';
    const started = await acpRpc(
      gw.url,
      ACP,
      'session.start',
      { sessionId: sid, taskPrompt: 'hello', workingDirectory: 'demo', routing: { role: 'engineer', roleMode: 'auto' }, metadata: code },
      true,
    );
    expect(started.result).toMatchObject({ success: true, status: 'completed' });
    const last = Math.max(...started.updates.map((u) => u.seq as number));

    // a turn in a product mode the role does not allow: refused, nothing runs
    const refusedMsg = await acpRpc(
      gw.url,
      ACP,
      'session.message',
      { sessionId: sid, taskPrompt: 'again', metadata: { xworkmateProductCapability: { schemaVersion: 1, mode: 'work' } } },
      true,
    );
    expect(refusedMsg.result).toMatchObject({ status: 'unavailable', roleSelection: { code: 'role_not_allowed_for_mode' } });
    expect(refusedMsg.updates).toHaveLength(1);
    const ev = refusedMsg.updates[0]!;
    expect(ev).toMatchObject({ event: 'task.rejected', sessionId: sid, turnId: refusedMsg.result.turnId, seq: last + 1 });
    expect(ev.runId).toBeUndefined();

    // a refused session.start of the open session is numbered too (and the session stays as it was)
    const refusedStart = await refused(sid);
    expect(refusedStart.updates[0]).toMatchObject({ event: 'task.rejected', seq: last + 2 });

    // in the log: a resume after the last seq seen finds them
    const replay = await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId: sid, afterSeq: last });
    expect(replay.result.updates.map((u: { event: string; seq: number }) => [u.event, u.seq])).toEqual([
      ['task.rejected', last + 1],
      ['task.rejected', last + 2],
    ]);
    expect(replay.result.lastSeq).toBe(last + 2);

    // the next turn numbers above them
    const next = await acpRpc(gw.url, ACP, 'session.message', { sessionId: sid, taskPrompt: 'and again', metadata: code }, true);
    expect(next.result).toMatchObject({ success: true, status: 'completed' });
    expect(Math.min(...next.updates.map((u) => u.seq as number))).toBe(last + 3);
  });
});
