/**
 * Routing resolution for `session.start` / `xworkmate.routing.resolve` (../shared/spec/acp-rpc.md, "Routing
 * resolution"). Pure: request params + the catalog in, a decision out; throws GatewayError (INVALID_PARAMS,
 * ROUTING_REQUIRED, ROUTING_CONFLICT; -32602 on /acp/rpc) for malformed or missing routing fields.
 *
 * Decisions beyond the spec's letter (documented in docs/acp.md):
 * - An empty string counts as absent, and the target value "auto" counts as "no target".
 * - Target values: `agent` | `singleAgent` | `single-agent` → agent; `gateway` → gateway; anything else is -32602.
 * - Two target fields, two provider fields or two model fields that disagree → ROUTING_CONFLICT.
 *   The two gateway fields are only compared on the gateway path (both are ignored on the agent path).
 * - On the gateway path a `provider` names the gateway provider when no gateway is named; when one is named
 *   and differs → ROUTING_CONFLICT.
 * - Without a target, a `provider` that is a gateway provider id (and not an agent id) selects the gateway
 *   path; otherwise `provider` selects the agent path; in explicit mode a gateway alone selects the gateway.
 * - "the first" provider = the first enabled one in config order; if none is enabled the first is reported
 *   unavailable.
 */
import { GatewayError } from '../wire/errors.js';
import { invalidParams, optPickedId } from './params.js';

export interface CatalogEntry {
  providerId: string;
  enabled: boolean;
  unavailableReason?: string;
}

export interface RoutingCatalog {
  /** agent providers, config order */
  agents: CatalogEntry[];
  /** gateway providers, config order */
  gateways: CatalogEntry[];
}

export type RoutingDecision =
  | { kind: 'agent'; providerId: string; model: string }
  | { kind: 'gateway'; gatewayProviderId: string; model: string }
  | {
      kind: 'unavailable';
      target: 'agent' | 'gateway';
      providerId: string;
      gatewayProviderId: string;
      model: string;
      unavailableCode: 'PROVIDER_UNAVAILABLE' | 'GATEWAY_PROVIDER_UNAVAILABLE';
      unavailableMessage: string;
    };

type Target = 'agent' | 'gateway';

/** A routing field: an id or model name as the other ids (at most 256 characters, well-formed), trimmed. */
function str(o: Record<string, unknown>, key: string, field = key): string | undefined {
  return optPickedId(o, key, field);
}

function target(o: Record<string, unknown>, key: string, field = key): Target | undefined {
  const v = str(o, key, field);
  if (v === undefined || v === 'auto') return undefined;
  if (v === 'agent' || v === 'singleAgent' || v === 'single-agent') return 'agent';
  if (v === 'gateway') return 'gateway';
  throw invalidParams(field, `${field} must be "agent" (or "single-agent") or "gateway", got "${v}"`);
}

const conflict = (message: string, fields: string[]): GatewayError => new GatewayError('ROUTING_CONFLICT', message, { details: { fields } });

/** The first defined value; ROUTING_CONFLICT if two defined values differ. */
function agree<T>(pairs: Array<[string, T | undefined]>): T | undefined {
  const given = pairs.filter((p): p is [string, T] => p[1] !== undefined);
  const first = given[0];
  if (!first) return undefined;
  for (const [field, v] of given.slice(1)) {
    if (v !== first[1]) throw conflict(`routing conflict: ${first[0]}=${JSON.stringify(first[1])} but ${field}=${JSON.stringify(v)}`, [first[0], field]);
  }
  return first[1];
}

export function resolveRouting(params: Record<string, unknown>, catalog: RoutingCatalog): RoutingDecision {
  const rawRouting = params.routing;
  if (rawRouting !== undefined && rawRouting !== null && (typeof rawRouting !== 'object' || Array.isArray(rawRouting))) {
    throw invalidParams('routing', 'routing must be an object');
  }
  const r = (rawRouting ?? {}) as Record<string, unknown>;
  const mode = str(r, 'routingMode', 'routing.routingMode');
  if (mode !== undefined && mode !== 'auto' && mode !== 'explicit')
    throw invalidParams('routing.routingMode', `routing.routingMode must be "auto" or "explicit", got "${mode}"`);

  const tgt = agree<Target>([
    ['routing.explicitExecutionTarget', target(r, 'explicitExecutionTarget', 'routing.explicitExecutionTarget')],
    ['requestedExecutionTarget', target(params, 'requestedExecutionTarget')],
    ['executionTarget', target(params, 'executionTarget')],
  ]);
  const provider = agree<string>([
    ['routing.explicitProviderId', str(r, 'explicitProviderId', 'routing.explicitProviderId')],
    ['provider', str(params, 'provider')],
  ]);
  const gatewayFields: Array<[string, string | undefined]> = [
    ['routing.preferredGatewayProviderId', str(r, 'preferredGatewayProviderId', 'routing.preferredGatewayProviderId')],
    ['gatewayProviderId', str(params, 'gatewayProviderId')],
  ];
  const anyGateway = gatewayFields.some(([, v]) => v !== undefined);
  const model =
    agree<string>([
      ['routing.explicitModel', str(r, 'explicitModel', 'routing.explicitModel')],
      ['model', str(params, 'model')],
    ]) ?? '';

  if (tgt === undefined && provider === undefined && !anyGateway && mode !== 'auto') {
    throw new GatewayError(
      'ROUTING_REQUIRED',
      'routing required: name an execution target (routing.explicitExecutionTarget / requestedExecutionTarget), a provider, or a gateway provider, or set routing.routingMode to "auto"',
      { details: { fields: ['routing.explicitExecutionTarget', 'provider', 'routing.preferredGatewayProviderId'] } },
    );
  }

  let path: Target;
  if (tgt) path = tgt;
  else if (provider !== undefined) {
    const isAgent = catalog.agents.some((a) => a.providerId === provider);
    const isGateway = catalog.gateways.some((g) => g.providerId === provider);
    path = isGateway && !isAgent ? 'gateway' : 'agent';
  } else if (mode === 'auto') path = catalog.agents.some((a) => a.enabled) || catalog.gateways.length === 0 ? 'agent' : 'gateway';
  else path = 'gateway';

  if (path === 'agent') return resolveAgent(provider, model, catalog);

  let gateway = agree<string>(gatewayFields);
  if (provider !== undefined) {
    if (gateway === undefined) gateway = provider;
    else if (provider !== gateway)
      throw conflict(`routing conflict: provider=${JSON.stringify(provider)} but the gateway provider is ${JSON.stringify(gateway)}`, [
        'provider',
        'routing.preferredGatewayProviderId',
      ]);
  }
  return resolveGateway(gateway, model, catalog);
}

function resolveAgent(named: string | undefined, model: string, catalog: RoutingCatalog): RoutingDecision {
  const unavailable = (providerId: string, message: string): RoutingDecision => ({
    kind: 'unavailable',
    target: 'agent',
    providerId,
    gatewayProviderId: '',
    model,
    unavailableCode: 'PROVIDER_UNAVAILABLE',
    unavailableMessage: message,
  });
  if (named !== undefined) {
    const e = catalog.agents.find((a) => a.providerId === named);
    if (!e) return unavailable(named, `agent provider "${named}" is not configured on this gateway`);
    if (!e.enabled) return unavailable(named, `agent provider "${named}" is unavailable${e.unavailableReason ? `: ${e.unavailableReason}` : ''}`);
    return { kind: 'agent', providerId: named, model };
  }
  const first = catalog.agents.find((a) => a.enabled);
  if (first) return { kind: 'agent', providerId: first.providerId, model };
  const head = catalog.agents[0];
  if (!head) return unavailable('', 'no agent provider is configured on this gateway');
  return unavailable(head.providerId, `no agent provider is available (${head.providerId}: ${head.unavailableReason ?? 'disabled'})`);
}

function resolveGateway(named: string | undefined, model: string, catalog: RoutingCatalog): RoutingDecision {
  const unavailable = (id: string, message: string): RoutingDecision => ({
    kind: 'unavailable',
    target: 'gateway',
    providerId: '',
    gatewayProviderId: id,
    model,
    unavailableCode: 'GATEWAY_PROVIDER_UNAVAILABLE',
    unavailableMessage: message,
  });
  if (named !== undefined) {
    const e = catalog.gateways.find((g) => g.providerId === named);
    if (!e) return unavailable(named, `gateway provider "${named}" is not configured on this gateway`);
    if (!e.enabled) return unavailable(named, `gateway provider "${named}" is unavailable${e.unavailableReason ? `: ${e.unavailableReason}` : ''}`);
    return { kind: 'gateway', gatewayProviderId: named, model };
  }
  const first = catalog.gateways.find((g) => g.enabled);
  if (first) return { kind: 'gateway', gatewayProviderId: first.providerId, model };
  const head = catalog.gateways[0];
  if (!head) return unavailable('', 'no gateway provider is configured on this gateway');
  return unavailable(head.providerId, `no gateway provider is available (${head.providerId}: ${head.unavailableReason ?? 'disabled'})`);
}
