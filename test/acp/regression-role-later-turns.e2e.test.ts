/**
 * Conformance gaps of role routing on `/acp/rpc` (addendum 2026-10 §1–3), found by a black-box audit against a
 * real gateway process over the mock channel:
 *
 * - A later turn of a role-routed session was not held to its role's product modes: `session.message` with
 *   `metadata.xworkmateProductCapability.mode: "work"` on a session whose role (`engineer`) allows only `code` ran
 *   the turn, where the same mode on `session.start` (and `xworkmate.routing.resolve`) is refused with
 *   `role_not_allowed_for_mode`. The addendum's gate is per role turn ("Role turns need `mode` in the role's
 *   `productModes`"), and the metadata was already validated on `session.message`, then its mode ignored. Such a
 *   turn is now refused as the first one would be: an `unavailable` result (`ROLE_SELECTION_REJECTED`,
 *   `roleSelection.code: "role_not_allowed_for_mode"`), one `task.rejected` update, nothing runs, and the session
 *   stays open for turns in an allowed mode (or with no mode: no mode, no check).
 * - `roleSelection.enabledRoles` (and the `nextSteps` of a `role_required` refusal) listed the roles in config
 *   order, where `acp.capabilities.roleRouting.enabledRoles` lists them in the addendum's role order (§2: "Roles in
 *   §1 order"): an app comparing the two saw two orders of one list. Both are in the addendum's order now.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { acpRpc, startProcess, type GatewayProcess } from '../helpers/env.js';
import { stopAfterAll } from '../helpers/stop-after.js';

const ACP = 'role-later-turns-acp-token-7731';
const started = stopAfterAll();
let gw: GatewayProcess;

beforeAll(async () => {
  gw = started.trackGateway(
    await startProcess({
      gateway: { id: 'gw_role_later_turns' },
      channels: [{ name: 'mock', provider: 'mock', models: ['mock-1'] }],
      acp: {
        tokens: [ACP],
        gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' }],
        roles: {
          policyVersion: 'p-7',
          // config order is not the addendum's role order (chat, worker, engineer, …)
          roles: [
            { role: 'engineer', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'], productModes: ['code'] },
            { role: 'worker', models: [{ key: 'm1', model: 'mock-1' }], executors: ['switchyard'], productModes: ['work'] },
          ],
        },
      },
    }),
  );
}, 60_000);

const mode = (m: string) => ({ xworkmateProductCapability: { schemaVersion: 1, mode: m } });

describe('later turns of a role-routed session', () => {
  it('a session.message in a product mode its role does not allow is refused as session.start would be; nothing runs, the session stays open', async () => {
    const sessionId = 'role-mode-later';
    const first = await acpRpc(gw.url, ACP, 'session.start', {
      sessionId,
      taskPrompt: 'first',
      metadata: mode('code'),
      routing: { role: 'engineer', roleMode: 'auto' },
    });
    expect(first.result).toMatchObject({ success: true, status: 'completed', resolvedRole: 'engineer' });

    // the same mode on a start is refused: the gate a later turn must keep
    const startWork = await acpRpc(gw.url, ACP, 'session.start', {
      sessionId: 'role-mode-start',
      taskPrompt: 'x',
      metadata: mode('work'),
      routing: { role: 'engineer' },
    });
    expect(startWork.result).toMatchObject({
      status: 'unavailable',
      unavailableCode: 'ROLE_SELECTION_REJECTED',
      roleSelection: { code: 'role_not_allowed_for_mode' },
    });

    const later = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'second', metadata: mode('work') }, true);
    expect(later.error).toBeUndefined();
    expect(later.result).toMatchObject({
      success: false,
      status: 'unavailable',
      unavailable: true,
      unavailableCode: 'ROLE_SELECTION_REJECTED',
      sessionId,
      threadId: sessionId,
      output: '',
      roleSelection: { selected: false, code: 'role_not_allowed_for_mode', role: 'engineer', roleMode: 'auto', policyVersion: 'p-7' },
    });
    expect(later.result.unavailableMessage).toMatch(/^role_not_allowed_for_mode: /);
    // its sole update is the refusal, for the refused turn's id
    expect(later.updates).toHaveLength(1);
    expect(later.updates[0]).toMatchObject({
      type: 'task',
      event: 'task.rejected',
      sessionId,
      turnId: later.result.turnId,
      pending: false,
      error: true,
      task: { phase: 'rejected', role: 'engineer', detail: { code: 'role_not_allowed_for_mode' } },
    });

    // nothing ran: the session's latest turn is still the first one
    const snap = (await acpRpc(gw.url, ACP, 'xworkmate.tasks.get', { sessionId })).result;
    expect(snap).toMatchObject({ status: 'completed', turnId: first.result.turnId, resolvedRole: 'engineer' });

    // the session is open: a turn in an allowed mode, and one naming no mode, run on its binding
    const code = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'third', metadata: mode('code') });
    expect(code.result).toMatchObject({ success: true, status: 'completed', resolvedRole: 'engineer' });
    const none = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'fourth' });
    expect(none.result).toMatchObject({ success: true, status: 'completed', resolvedRole: 'engineer' });
  });

  it('a session that is not role-routed takes any valid mode (the gate is for role turns only)', async () => {
    const sessionId = 'plain-mode-later';
    const first = await acpRpc(gw.url, ACP, 'session.start', { sessionId, taskPrompt: 'first', executionTarget: 'gateway' });
    expect(first.result).toMatchObject({ success: true, status: 'completed' });
    const later = await acpRpc(gw.url, ACP, 'session.message', { sessionId, taskPrompt: 'second', metadata: mode('work') });
    expect(later.result).toMatchObject({ success: true, status: 'completed' });
  });
});

describe('enabledRoles', () => {
  it('roleSelection lists the enabled roles in the order acp.capabilities does (the addendum’s, not the config’s)', async () => {
    const caps = (await acpRpc(gw.url, ACP, 'acp.capabilities', {})).result;
    expect(caps.roleRouting.enabledRoles).toEqual(['worker', 'engineer']);

    const selected = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'roles-order', taskPrompt: 'x', routing: { role: 'engineer' } });
    expect(selected.result).toMatchObject({ status: 'completed', roleSelection: { selected: true } });
    expect(selected.result.roleSelection.enabledRoles).toEqual(caps.roleRouting.enabledRoles);

    const resolved = await acpRpc(gw.url, ACP, 'xworkmate.routing.resolve', { routing: { role: 'worker' } });
    expect(resolved.result.roleSelection.enabledRoles).toEqual(caps.roleRouting.enabledRoles);

    // auto without a role, two roles enabled: refused, naming them in that order
    const required = await acpRpc(gw.url, ACP, 'session.start', { sessionId: 'roles-required', taskPrompt: 'x', routing: { roleMode: 'auto' } });
    expect(required.result.roleSelection).toMatchObject({ code: 'role_required', enabledRoles: caps.roleRouting.enabledRoles });
    expect(required.result.roleSelection.nextSteps).toEqual(['send routing.role "worker"', 'send routing.role "engineer"']);
  });
});
