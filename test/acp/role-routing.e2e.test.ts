/**
 * Issue 12 item 6, role routing (addendum 2026-10 §1–3) with real gateway processes: A's `acp.roles` policy picks
 * a model that only its bridge peer B serves; the turn runs on A's `channels` runtime and the router sends it to B.
 * Refusals are results with the ROLE_* codes, never a silent fallback; a gateway without a policy says so.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GatewayProcess } from '../helpers/env.js';
import { adminGet, cleanupDirs, startProcess, waitFor, wsUrl, acpRpc } from '../helpers/env.js';

const BRIDGE = 'roles-bridge-token-2';
const ACP = 'roles-acp-token-3';
let a: GatewayProcess;
let b: GatewayProcess;

type Json = any;
const rpc = (gw: GatewayProcess, method: string, params: Record<string, unknown>, sse = false) => acpRpc(gw.url, ACP, method, params, sse);

const policy = {
  policyVersion: 'p-3',
  roles: [
    {
      role: 'engineer',
      // the first model is served nowhere: excluded (catalog_stale); the second only by the peer B
      models: [
        { key: 'ghost', model: 'not-served-1', displayName: 'Ghost' },
        // may receive unclassified and internal data (routing.dataClass), nothing else
        { key: 'm1', model: 'peer-model-1', displayName: 'M One', dataClasses: ['unclassified', 'internal'] },
      ],
      executors: ['switchyard'],
      productModes: ['code'],
      effort: { start: 'high', min: 'medium', max: 'max' },
    },
    { role: 'researcher', models: [{ key: 'local', model: 'local-1' }], executors: ['switchyard'], productModes: ['work'], enabled: false },
    // an executor that is the peer's shared runtime: the turn runs on B, with the model A's policy chose
    { role: 'architect', models: [{ key: 'm1', model: 'peer-model-1' }], executors: ['b-chat'], productModes: ['code'] },
  ],
};

beforeAll(async () => {
  b = await startProcess({
    gateway: { id: 'gw_roles_b', name: 'gpu', bridge: { enabled: true, allowedTokens: [BRIDGE], shareChannels: ['peer'], shareAgents: ['b-chat'] } },
    channels: [{ name: 'peer', provider: 'mock', models: ['peer-model-1'], options: { reply: 'answered on B' } }],
    acp: {
      tokens: [ACP],
      gateways: [
        { id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'peer-model-1' },
        { id: 'b-chat', label: 'B chat', kind: 'channels', model: 'peer-model-1' },
      ],
    },
  });
  a = await startProcess({
    gateway: { id: 'gw_roles_a', name: 'office', bridges: [{ name: 'gpu', url: wsUrl(b.url), token: BRIDGE, reconnectInterval: 100, shareAgents: false }] },
    channels: [{ name: 'local', provider: 'mock', models: ['local-1'], options: { reply: 'answered on A' } }],
    acp: { tokens: [ACP], roles: policy, gateways: [{ id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'local-1' }] },
  });
  await waitFor(async () => (await adminGet(a.url, '/admin/bridges')).peers[0]?.state === 'open', 'A→B link');
  await waitFor(
    async () => ((await (await fetch(`${a.url}/v1/models`)).json()) as { data: Json[] }).data.some((m) => m.id === 'peer-model-1'),
    "B's model known to A",
  );
});
afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  cleanupDirs();
});

const app = (sessionId: string, routing: Record<string, unknown>, mode = 'code') => ({
  sessionId,
  threadId: sessionId,
  taskPrompt: 'fix the test',
  workingDirectory: '/Users/me/demo',
  // what the app always sends; ignored on a role-routed turn (no ROUTING_CONFLICT)
  provider: 'codex',
  model: 'something-else',
  routing: { routingMode: 'explicit', explicitExecutionTarget: 'agent', preferredGatewayProviderId: 'switchyard', ...routing },
  metadata: { xworkmateProductCapability: { schemaVersion: 1, mode } },
});

describe('role routing', () => {
  it('capabilities describe the policy (A) or say it is not configured (B)', async () => {
    const ca = (await rpc(a, 'acp.capabilities', {})).result;
    expect(ca.permissionRelay).toBe(true);
    expect(ca.roleRouting).toMatchObject({
      configured: true,
      valid: true,
      enabled: true,
      policyVersion: 'p-3',
      budgetMode: 'gateway_quota',
      enabledRoles: ['engineer', 'architect'],
      modes: ['auto', 'manual'],
    });
    expect(ca.roleRouting.roles[0]).toEqual({
      role: 'engineer',
      enabled: true,
      models: [
        { key: 'ghost', displayName: 'Ghost' },
        { key: 'm1', displayName: 'M One' },
      ],
      executors: ['switchyard'],
      requiresWorkspace: false,
      requiresSpecialty: false,
      productModes: ['code'],
      effort: { start: 'high', min: 'medium', max: 'max' },
    });
    expect(JSON.stringify(ca)).not.toMatch(/ws:\/\/|127\.0\.0\.1|roles-/);
    expect((await rpc(b, 'acp.capabilities', {})).result.roleRouting).toEqual({ configured: false });
  });

  it("auto: the policy picks the peer's model; the turn is served by B; selection, task events and tasks.get say so", async () => {
    const r = await rpc(a, 'session.start', app('role-1', { role: 'Engineer ', roleMode: 'auto' }), true);
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({
      success: true,
      status: 'completed',
      output: 'answered on B',
      resolvedExecutionTarget: 'gateway',
      resolvedGatewayProviderId: 'switchyard',
      resolvedModel: 'peer-model-1',
      resolvedRole: 'engineer',
      resolvedModelId: 'peer-model-1',
      modelBindingVerified: true,
    });
    const sel = r.result.roleSelection;
    expect(sel).toMatchObject({
      selected: true,
      role: 'engineer',
      roleMode: 'auto',
      executor: 'switchyard',
      modelKey: 'm1',
      modelId: 'peer-model-1',
      policyVersion: 'p-3',
      effort: { level: 'high' },
    });
    expect(sel.excluded).toEqual([{ model: 'ghost', executor: 'switchyard', code: 'catalog_stale', detail: expect.stringContaining('not-served-1') }]);
    const phases = r.updates.filter((u) => u.type === 'task').map((u) => u.task.phase);
    expect(phases).toEqual(['selected', 'started', 'completed']);
    expect(r.updates.find((u) => u.event === 'task.selected').task).toMatchObject({ role: 'engineer', modelKey: 'm1', detail: { selected: true } });
    const t = (await rpc(a, 'xworkmate.tasks.get', { sessionId: 'role-1' })).result;
    expect(t).toMatchObject({ resolvedRole: 'engineer', roleSelection: { modelKey: 'm1' } });
    // the session keeps its binding: the next message runs on the same model
    const next = await rpc(a, 'session.message', { sessionId: 'role-1', taskPrompt: 'again' });
    expect(next.result).toMatchObject({ status: 'completed', output: 'answered on B', resolvedRole: 'engineer' });
  });

  it("an executor that is the peer's shared runtime: B runs it with the model A's policy chose (B has no policy)", async () => {
    const r = await rpc(a, 'session.start', app('role-peer', { role: 'architect', roleMode: 'auto' }), true);
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({
      success: true,
      status: 'completed',
      output: 'answered on B',
      resolvedGatewayProviderId: 'b-chat',
      resolvedModel: 'peer-model-1',
      resolvedRole: 'architect',
      roleSelection: { executor: 'b-chat' },
    });
    expect((await adminGet(b.url, '/admin/sessions/role-peer')).session).toMatchObject({
      status: 'active',
      target: { gatewayProviderId: 'b-chat', model: 'peer-model-1' },
      metadata: { viaPeer: 'gw_roles_a' },
    });
  });

  it('manual with a known key runs; refusals are results with codes, nothing runs, never a fallback', async () => {
    expect((await rpc(a, 'session.start', app('role-2', { role: 'engineer', roleMode: 'manual', roleModel: 'm1' }))).result).toMatchObject({
      status: 'completed',
      resolvedModel: 'peer-model-1',
    });
    const cases: Array<[Record<string, unknown>, string, string]> = [
      [{ role: 'engineer', roleMode: 'manual', roleModel: 'nope' }, 'code', 'model_unknown'],
      [{ role: 'engineer', roleMode: 'manual', roleModel: 'ghost' }, 'code', 'no_eligible_candidate'],
      [{ role: 'researcher' }, 'work', 'role_not_enabled'],
      [{ role: 'pilot' }, 'code', 'role_unknown'],
      [{ role: 'engineer' }, 'work', 'role_not_allowed_for_mode'],
    ];
    for (const [routing, mode, code] of cases) {
      const r = await rpc(a, 'session.start', app(`role-x-${code}`, routing, mode), true);
      expect(r.result).toMatchObject({
        success: false,
        status: 'unavailable',
        unavailable: true,
        unavailableCode: 'ROLE_SELECTION_REJECTED',
        roleSelection: { selected: false, code },
      });
      expect(r.result.unavailableMessage).toMatch(new RegExp(`^${code}: `));
      expect(r.updates.map((u) => u.event)).toEqual(['task.rejected']);
      expect((await adminGet(a.url, `/admin/sessions/role-x-${code}`).catch(() => ({ session: undefined }))).session).toBeUndefined();
    }
    // routing.dataClass: a class the model may receive runs; any other excludes it (egress_not_allowed), and with
    // no other candidate the turn is refused; a class that is not a string is a bad param
    expect((await rpc(a, 'session.start', app('role-dc-ok', { role: 'engineer', dataClass: ' internal ' }))).result).toMatchObject({
      status: 'completed',
      resolvedModelId: 'peer-model-1',
    });
    const secret = await rpc(a, 'session.start', app('role-dc-secret', { role: 'engineer', dataClass: 'secret' }), true);
    expect(secret.result).toMatchObject({
      status: 'unavailable',
      unavailableCode: 'ROLE_SELECTION_REJECTED',
      roleSelection: { selected: false, code: 'no_eligible_candidate' },
    });
    expect(secret.result.roleSelection.excluded).toEqual([
      { model: 'ghost', executor: 'switchyard', code: 'catalog_stale', detail: expect.stringContaining('not-served-1') },
      { model: 'm1', executor: 'switchyard', code: 'egress_not_allowed', detail: 'data class "secret" may not be sent to model "peer-model-1"' },
    ]);
    expect(secret.updates.map((u) => u.event)).toEqual(['task.rejected']);
    expect((await rpc(a, 'session.start', app('role-dc-bad', { role: 'engineer', dataClass: 7 }))).error).toMatchObject({
      code: -32602,
      data: { code: 'INVALID_PARAMS' },
      message: expect.stringContaining('routing.dataClass must be a string'),
    });
    const none = await rpc(b, 'session.start', app('role-b', { role: 'engineer', roleMode: 'auto' }));
    expect(none.result).toMatchObject({ status: 'unavailable', unavailableCode: 'ROLE_POLICY_UNCONFIGURED' });
    expect(none.result.roleSelection).toBeUndefined();
    const resolved = await rpc(a, 'xworkmate.routing.resolve', { routing: { role: 'engineer', roleMode: 'auto' }, workingDirectory: 'x' });
    expect(resolved.result).toMatchObject({ unavailable: false, resolvedRole: 'engineer', resolvedModel: 'peer-model-1', roleSelection: { selected: true } });
    expect((await rpc(a, 'xworkmate.routing.resolve', { routing: { routingMode: 'auto' } })).result.roleSelection).toBeNull();
  });

  it("the addendum's example payload, as sent, over the WebSocket", async () => {
    const sock = new (await import('ws')).default(`${a.url.replace(/^http/, 'ws')}/acp`, { headers: { authorization: `Bearer ${ACP}` } });
    await new Promise((r) => sock.once('open', r));
    const reply = new Promise<Json>((resolve) =>
      sock.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.id === 1) resolve(m);
      }),
    );
    sock.send(
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'session.start',
        params: {
          sessionId: 'eng',
          taskPrompt: 'fix the test',
          workingDirectory: 'demo',
          metadata: { xworkmateProductCapability: { schemaVersion: 1, mode: 'code' } },
          routing: { role: 'engineer', roleMode: 'auto' },
        },
      }),
    );
    const m = await reply;
    sock.close();
    expect(m).toMatchObject({
      type: 'res',
      ok: true,
      result: { success: true, resolvedRole: 'engineer', resolvedModelId: 'peer-model-1', remoteWorkingDirectory: 'demo' },
    });
  });

  it('metadata.xworkmateProductCapability is validated strictly', async () => {
    for (const cap of [
      { schemaVersion: 2, mode: 'code' },
      { schemaVersion: 1, mode: 'play' },
      { schemaVersion: 1, mode: 'code', extra: 1 },
      { schemaVersion: 1, mode: 'code', model: 'other/x' },
      'v1',
    ]) {
      const r = await rpc(a, 'session.start', { ...app('role-cap', { role: 'engineer' }), metadata: { xworkmateProductCapability: cap } });
      expect(r.error).toMatchObject({ code: -32602, message: 'invalid xworkmateProductCapability v1 contract', data: { code: 'INVALID_PARAMS' } });
    }
    const ok = await rpc(a, 'session.start', {
      ...app('role-cap', { role: 'engineer' }),
      metadata: { xworkmateProductCapability: { schemaVersion: 1, mode: 'code', model: 'xworkmate/m-1' } },
    });
    expect(ok.result.status).toBe('completed');
  });
});
