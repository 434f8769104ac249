/**
 * Regression guard for `xworkmate.tasks.get`'s one read of the record (turn-runner.ts `task`): it answers both the
 * turn's task events and the session's open prompts. A prompt's removal from the record is written (permissions.ts)
 * before its `task.permission_resolved` event is raised, but in the broker's own queue, which the event's write does
 * not wait for: with that removal slow to be stored, a tasks.get made once the event was sent answered it with the
 * prompt still pending beside its `permission_resolved` event (its second read, for the prompts, did not help: it was
 * made at once too). The one read now waits for this process's prompt writes of the session as well.
 */
import { describe, expect, it } from 'vitest';
import { TurnRunner } from '../../src/acp/turn-runner.js';
import type { Runtime, RuntimeContext } from '../../src/acp/runtime.js';
import { memoryLogger, waitFor } from '../helpers/env.js';
import { wrapStore } from '../helpers/store-wrap.js';
import { runnerStores } from '../helpers/runner-stores.js';
import { echoTarget } from '../helpers/echo-sessions.js';

const { open, runners } = runnerStores('prompt-resolved');

const req = { toolCall: { toolCallId: 'c1', title: 'Edit' }, options: [{ optionId: 'ok', name: 'Allow', kind: 'allow_once' }] };

/** asks the app once, then answers with the outcome */
const asking = (ctx: RuntimeContext): Runtime => ({
  async prompt(_turn, _emit, signal) {
    const outcome = await ctx.permissions!(req, signal);
    return { output: `asked: ${outcome.outcome}`, stopReason: 'end_turn' };
  },
  async close() {},
});

type Update = { type?: string; event?: string; task?: { detail?: { requestId?: string } } };

describe.each(['sqlite', 'redis'] as const)('xworkmate.tasks.get as a prompt is resolved (%s)', (kind) => {
  it('never lists as pending a prompt whose permission_resolved event it answers', async () => {
    const base = await open(kind);
    // the writes that take a resolved prompt out of the record are slow (a loaded store)
    const store = wrapStore(base, {
      update: async (s, version) => {
        const decided = s.metadata.decidedPermissions;
        if (Array.isArray(decided) && decided.length > 0 && s.history.at(-1)?.status === 'running') await new Promise((r) => setTimeout(r, 150));
        return base.update(s, version);
      },
    });
    const runner = new TurnRunner({
      store,
      gatewayId: 'gw_prompt_res',
      logger: memoryLogger().logger,
      runtimeFor: async (ctx) => asking(ctx),
      leaseTtlMs: 3_000,
    });
    runners.push(runner);
    const updates: Update[] = [];
    const turn = runner.start({ sessionId: 'res-1', threadId: 'res-1', prompt: 'go', workingDirectory: undefined, target: echoTarget }, (u) => updates.push(u));
    const asked = await waitFor(() => updates.find((u) => u.event === 'task.permission_requested'), 'the prompt raised');
    const requestId = asked.task!.detail!.requestId!;
    await runner.respondPermission('res-1', requestId, { optionId: 'ok' });
    await waitFor(() => updates.some((u) => u.event === 'task.permission_resolved') || undefined, 'the prompt resolved');
    const snap = (await runner.task({ sessionId: 'res-1' })) as { taskEvents: Update[]; pendingPermissions: Array<{ requestId: string }> };
    expect(snap.taskEvents.map((e) => e.event)).toContain('task.permission_resolved');
    expect(snap.pendingPermissions.map((p) => p.requestId)).toEqual([]);
    expect(await turn).toMatchObject({ status: 'completed', output: 'asked: selected' });
  });
});
