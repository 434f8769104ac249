import { describe, expect, it } from 'vitest';
import { resolveRouting, type RoutingCatalog } from './resolve-target.js';
import { GatewayError } from '../wire/errors.js';
import { toRpcError, type AcpRpcError } from '../http/acp/envelope.js';

const cat: RoutingCatalog = {
  agents: [
    { providerId: 'codex', enabled: false, unavailableReason: 'command "codex" not found on PATH' },
    { providerId: 'opencode', enabled: true },
    { providerId: 'gemini', enabled: true },
  ],
  gateways: [
    { providerId: 'switchyard', enabled: true },
    { providerId: 'openclaw', enabled: false, unavailableReason: 'not implemented' },
  ],
};
const noAgents: RoutingCatalog = { agents: [{ providerId: 'codex', enabled: false, unavailableReason: 'x' }], gateways: cat.gateways };

function rpcErr(fn: () => unknown): AcpRpcError {
  try {
    fn();
  } catch (err) {
    // the core throws transport-free GatewayErrors; the assertions below are on what /acp/rpc sends for them
    expect(err).toBeInstanceOf(GatewayError);
    return toRpcError(err);
  }
  throw new Error('expected a GatewayError');
}

describe('rule 1: fields, ROUTING_REQUIRED, ROUTING_CONFLICT', () => {
  it('nothing named and no auto mode → -32602 ROUTING_REQUIRED', () => {
    for (const p of [{}, { routing: {} }, { routing: { routingMode: 'explicit' } }, { provider: '', routing: { explicitProviderId: '  ' } }]) {
      const e = rpcErr(() => resolveRouting(p, cat));
      expect(e.rpcCode).toBe(-32602);
      expect(e.dataCode).toBe('ROUTING_REQUIRED');
    }
  });
  it('explicitExecutionTarget wins over requestedExecutionTarget over executionTarget; agreeing duplicates are fine', () => {
    expect(resolveRouting({ routing: { explicitExecutionTarget: 'gateway' } }, cat)).toMatchObject({ kind: 'gateway' });
    expect(resolveRouting({ requestedExecutionTarget: 'gateway' }, cat)).toMatchObject({ kind: 'gateway' });
    expect(resolveRouting({ executionTarget: 'gateway' }, cat)).toMatchObject({ kind: 'gateway' });
    expect(
      resolveRouting({ executionTarget: 'agent', requestedExecutionTarget: 'single-agent', routing: { explicitExecutionTarget: 'singleAgent' } }, cat),
    ).toMatchObject({ kind: 'agent' });
  });
  it('contradicting targets → ROUTING_CONFLICT naming both fields', () => {
    const e = rpcErr(() => resolveRouting({ requestedExecutionTarget: 'agent', routing: { explicitExecutionTarget: 'gateway' } }, cat));
    expect(e.dataCode).toBe('ROUTING_CONFLICT');
    expect(e.rpcCode).toBe(-32602);
    expect(e.data.fields).toEqual(['routing.explicitExecutionTarget', 'requestedExecutionTarget']);
    expect(rpcErr(() => resolveRouting({ executionTarget: 'gateway', requestedExecutionTarget: 'agent' }, cat)).dataCode).toBe('ROUTING_CONFLICT');
  });
  it('provider vs explicitProviderId contradiction → ROUTING_CONFLICT', () => {
    const e = rpcErr(() => resolveRouting({ provider: 'codex', routing: { explicitProviderId: 'gemini' } }, cat));
    expect(e.dataCode).toBe('ROUTING_CONFLICT');
    expect(resolveRouting({ provider: 'gemini', routing: { explicitProviderId: 'gemini' } }, cat)).toEqual({ kind: 'agent', providerId: 'gemini', model: '' });
  });
  it('model vs explicitModel contradiction → ROUTING_CONFLICT; one of them is the model', () => {
    expect(rpcErr(() => resolveRouting({ executionTarget: 'gateway', model: 'a', routing: { explicitModel: 'b' } }, cat)).dataCode).toBe('ROUTING_CONFLICT');
    expect(resolveRouting({ executionTarget: 'gateway', routing: { explicitModel: 'b' } }, cat)).toEqual({
      kind: 'gateway',
      gatewayProviderId: 'switchyard',
      model: 'b',
    });
    expect(resolveRouting({ executionTarget: 'gateway', model: 'a' }, cat)).toEqual({ kind: 'gateway', gatewayProviderId: 'switchyard', model: 'a' });
  });
  it('gateway fields that disagree → ROUTING_CONFLICT on the gateway path', () => {
    expect(
      rpcErr(() => resolveRouting({ executionTarget: 'gateway', gatewayProviderId: 'openclaw', routing: { preferredGatewayProviderId: 'switchyard' } }, cat))
        .dataCode,
    ).toBe('ROUTING_CONFLICT');
  });
  it('provider naming another gateway than the named gateway → ROUTING_CONFLICT', () => {
    expect(rpcErr(() => resolveRouting({ executionTarget: 'gateway', provider: 'openclaw', gatewayProviderId: 'switchyard' }, cat)).dataCode).toBe(
      'ROUTING_CONFLICT',
    );
  });
  it('bad values are -32602 naming the field', () => {
    expect(rpcErr(() => resolveRouting({ executionTarget: 'multi-agent' }, cat)).data.field).toBe('executionTarget');
    expect(rpcErr(() => resolveRouting({ provider: 7 }, cat)).data.field).toBe('provider');
    expect(rpcErr(() => resolveRouting({ routing: 'x' }, cat)).data.field).toBe('routing');
    expect(rpcErr(() => resolveRouting({ routing: { routingMode: 'smart' } }, cat)).data.field).toBe('routing.routingMode');
    expect(rpcErr(() => resolveRouting({ routing: { explicitProviderId: ['a'] } }, cat)).data.field).toBe('routing.explicitProviderId');
  });
});

describe('rule 2: agent path', () => {
  it('the named provider', () => {
    expect(resolveRouting({ executionTarget: 'agent', provider: 'gemini' }, cat)).toEqual({ kind: 'agent', providerId: 'gemini', model: '' });
    expect(resolveRouting({ routing: { explicitExecutionTarget: 'agent', explicitProviderId: 'opencode', explicitModel: 'm' } }, cat)).toEqual({
      kind: 'agent',
      providerId: 'opencode',
      model: 'm',
    });
  });
  it('a provider without a target selects the agent path', () => {
    expect(resolveRouting({ provider: 'gemini' }, cat)).toMatchObject({ kind: 'agent', providerId: 'gemini' });
  });
  it('no provider named → the first enabled one (config order)', () => {
    expect(resolveRouting({ executionTarget: 'agent' }, cat)).toMatchObject({ kind: 'agent', providerId: 'opencode' });
  });
  it('aliases singleAgent and single-agent', () => {
    expect(resolveRouting({ requestedExecutionTarget: 'singleAgent' }, cat)).toMatchObject({ kind: 'agent' });
    expect(resolveRouting({ routing: { explicitExecutionTarget: 'single-agent' } }, cat)).toMatchObject({ kind: 'agent' });
  });
  it('unknown named provider → unavailable PROVIDER_UNAVAILABLE (a result, not an error)', () => {
    expect(resolveRouting({ executionTarget: 'agent', provider: 'hermes' }, cat)).toMatchObject({
      kind: 'unavailable',
      target: 'agent',
      providerId: 'hermes',
      unavailableCode: 'PROVIDER_UNAVAILABLE',
    });
  });
  it('disabled named provider → unavailable with its reason; never mapped to another agent', () => {
    const d = resolveRouting({ executionTarget: 'agent', provider: 'codex' }, cat);
    expect(d).toMatchObject({ kind: 'unavailable', providerId: 'codex', unavailableCode: 'PROVIDER_UNAVAILABLE' });
    expect(d.kind === 'unavailable' && d.unavailableMessage).toContain('not found on PATH');
  });
  it('no enabled agent at all → unavailable', () => {
    expect(resolveRouting({ executionTarget: 'agent' }, noAgents)).toMatchObject({ kind: 'unavailable', unavailableCode: 'PROVIDER_UNAVAILABLE' });
    expect(resolveRouting({ executionTarget: 'agent' }, { agents: [], gateways: [] })).toMatchObject({
      kind: 'unavailable',
      unavailableCode: 'PROVIDER_UNAVAILABLE',
      providerId: '',
    });
  });
  it('preferredGatewayProviderId (and gatewayProviderId) are ignored on the agent path, even unknown or conflicting', () => {
    expect(
      resolveRouting({ routing: { explicitExecutionTarget: 'agent', explicitProviderId: 'gemini', preferredGatewayProviderId: 'openclaw' } }, cat),
    ).toEqual({ kind: 'agent', providerId: 'gemini', model: '' });
    expect(resolveRouting({ provider: 'gemini', gatewayProviderId: 'nope', routing: { preferredGatewayProviderId: 'switchyard' } }, cat)).toMatchObject({
      kind: 'agent',
      providerId: 'gemini',
    });
  });
});

describe('rule 3: gateway path', () => {
  it('the named gateway provider (either field)', () => {
    expect(resolveRouting({ routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'switchyard' } }, cat)).toEqual({
      kind: 'gateway',
      gatewayProviderId: 'switchyard',
      model: '',
    });
    expect(resolveRouting({ executionTarget: 'gateway', gatewayProviderId: 'switchyard' }, cat)).toMatchObject({
      kind: 'gateway',
      gatewayProviderId: 'switchyard',
    });
  });
  it('no gateway named → the first enabled', () => {
    expect(resolveRouting({ executionTarget: 'gateway' }, cat)).toMatchObject({ kind: 'gateway', gatewayProviderId: 'switchyard' });
  });
  it('unknown gateway → unavailable GATEWAY_PROVIDER_UNAVAILABLE, never silently mapped to another', () => {
    expect(resolveRouting({ executionTarget: 'gateway', gatewayProviderId: 'other' }, cat)).toMatchObject({
      kind: 'unavailable',
      target: 'gateway',
      gatewayProviderId: 'other',
      unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE',
    });
  });
  it('disabled gateway → unavailable with its reason', () => {
    const d = resolveRouting({ routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'openclaw' } }, cat);
    expect(d).toMatchObject({ kind: 'unavailable', gatewayProviderId: 'openclaw', unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE' });
    expect(d.kind === 'unavailable' && d.unavailableMessage).toContain('not implemented');
  });
  it('no gateways configured → unavailable', () => {
    expect(resolveRouting({ executionTarget: 'gateway' }, { agents: cat.agents, gateways: [] })).toMatchObject({
      kind: 'unavailable',
      unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE',
      gatewayProviderId: '',
    });
  });
  it('a gateway alone (explicit mode, no target) selects the gateway path', () => {
    expect(resolveRouting({ gatewayProviderId: 'switchyard' }, cat)).toMatchObject({ kind: 'gateway', gatewayProviderId: 'switchyard' });
    expect(resolveRouting({ routing: { preferredGatewayProviderId: 'switchyard' } }, cat)).toMatchObject({ kind: 'gateway' });
  });
  it('provider naming a gateway provider: the gateway path', () => {
    expect(resolveRouting({ provider: 'switchyard' }, cat)).toMatchObject({ kind: 'gateway', gatewayProviderId: 'switchyard' });
    expect(resolveRouting({ executionTarget: 'gateway', provider: 'switchyard', gatewayProviderId: 'switchyard' }, cat)).toMatchObject({
      kind: 'gateway',
      gatewayProviderId: 'switchyard',
    });
  });
});

describe('rule 4: auto mode', () => {
  it('auto without a target → agent if any agent is enabled', () => {
    expect(resolveRouting({ routing: { routingMode: 'auto' } }, cat)).toMatchObject({ kind: 'agent', providerId: 'opencode' });
  });
  it("auto with the app's always-sent preferredGatewayProviderId still prefers an enabled agent", () => {
    expect(resolveRouting({ routing: { routingMode: 'auto', preferredGatewayProviderId: 'switchyard' } }, cat)).toMatchObject({ kind: 'agent' });
  });
  it('auto without enabled agents → gateway (the preferred one if named)', () => {
    expect(resolveRouting({ routing: { routingMode: 'auto' } }, noAgents)).toMatchObject({ kind: 'gateway', gatewayProviderId: 'switchyard' });
    expect(resolveRouting({ routing: { routingMode: 'auto', preferredGatewayProviderId: 'openclaw' } }, noAgents)).toMatchObject({
      kind: 'unavailable',
      gatewayProviderId: 'openclaw',
    });
  });
  it('auto with an explicit target or provider follows them', () => {
    expect(resolveRouting({ routing: { routingMode: 'auto', explicitExecutionTarget: 'gateway' } }, cat)).toMatchObject({ kind: 'gateway' });
    expect(resolveRouting({ routing: { routingMode: 'auto' }, provider: 'gemini' }, cat)).toMatchObject({ kind: 'agent', providerId: 'gemini' });
    expect(resolveRouting({ routing: { routingMode: 'auto', explicitExecutionTarget: 'auto' } }, cat)).toMatchObject({ kind: 'agent' });
  });
  it('auto with nothing configured → unavailable, not an error', () => {
    expect(resolveRouting({ routing: { routingMode: 'auto' } }, { agents: [], gateways: [] })).toMatchObject({
      kind: 'unavailable',
      unavailableCode: 'PROVIDER_UNAVAILABLE',
    });
  });
});
