/**
 * `acp.capabilities`: what this gateway offers on /acp/rpc, built from config (`acp.agents`, `acp.gateways`)
 * and a pluggable availability probe. Entries carry ids, labels, targets and availability only: never a
 * command line, URL or any other network address.
 */
import type { Config } from '../config/schema.js';
import type { RoutingCatalog } from './resolve-target.js';

export type AcpConfig = Config['acp'];
export type AgentConfig = AcpConfig['agents'][number];
export type GatewayProviderConfig = AcpConfig['gateways'][number];

export type Availability = { enabled: true } | { enabled: false; reason: string };

/** Answers "can this provider run a turn now?". Implementations cache (probes may spawn processes). */
export interface AvailabilitySource {
  agent(a: AgentConfig): Promise<Availability>;
  gateway(g: GatewayProviderConfig): Promise<Availability>;
}

export interface ProviderEntry {
  providerId: string;
  label: string;
  targets: Array<'agent' | 'gateway'>;
  enabled: boolean;
  unavailableReason?: string;
}

/** A runtime a bridge peer shares with us (listed after our own; a local id always wins). */
export interface PeerRuntime {
  peerId: string;
  peerName: string;
  id: string;
  label: string;
  kind: 'agent' | 'gateway';
}

export interface Catalog {
  providerCatalog: ProviderEntry[];
  gatewayProviders: ProviderEntry[];
}

function entry(id: string, label: string, target: 'agent' | 'gateway', a: Availability): ProviderEntry {
  return a.enabled
    ? { providerId: id, label, targets: [target], enabled: true }
    : { providerId: id, label, targets: [target], enabled: false, unavailableReason: a.reason };
}

async function safe(p: Promise<Availability>): Promise<Availability> {
  try {
    return await p;
  } catch (err) {
    return { enabled: false, reason: `availability probe failed: ${(err as Error).message ?? String(err)}` };
  }
}

/** Both lists in config order, then peers' shared runtimes (connected, so enabled); probes run concurrently. */
export async function buildCatalog(acp: AcpConfig, source: AvailabilitySource, peers: PeerRuntime[] = []): Promise<Catalog> {
  const [agents, gateways] = await Promise.all([
    Promise.all(acp.agents.map(async (a) => entry(a.id, a.label, 'agent', await safe(source.agent(a))))),
    Promise.all(acp.gateways.map(async (g) => entry(g.id, g.label, 'gateway', await safe(source.gateway(g))))),
  ]);
  for (const r of peers) (r.kind === 'agent' ? agents : gateways).push(entry(r.id, `${r.label} (via ${r.peerName})`, r.kind, { enabled: true }));
  return { providerCatalog: agents, gatewayProviders: gateways };
}

export function routingCatalogOf(c: Catalog): RoutingCatalog {
  const strip = (e: ProviderEntry) => ({
    providerId: e.providerId,
    enabled: e.enabled,
    ...(e.unavailableReason ? { unavailableReason: e.unavailableReason } : {}),
  });
  return { agents: c.providerCatalog.map(strip), gateways: c.gatewayProviders.map(strip) };
}

/** The `acp.capabilities` result: top-level fields plus the `capabilities.*` mirrors. */
export function capabilitiesResult(c: Catalog, roleRouting: Record<string, unknown> = { configured: false }): Record<string, unknown> {
  const availableExecutionTargets: string[] = [];
  if (c.providerCatalog.length > 0) availableExecutionTargets.push('agent');
  if (c.gatewayProviders.length > 0) availableExecutionTargets.push('gateway');
  const singleAgent = c.providerCatalog.length > 0;
  return {
    singleAgent,
    multiAgent: false,
    availableExecutionTargets,
    providerCatalog: c.providerCatalog,
    gatewayProviders: c.gatewayProviders,
    /** addendum 2026-10 §5: agents' permission requests reach the app (xworkmate.permissions.*) */
    permissionRelay: true,
    /** addendum 2026-10 §2: the role policy as served (no URLs, no tokens) */
    roleRouting,
    capabilities: {
      single_agent: singleAgent,
      multi_agent: false,
      providerCatalog: c.providerCatalog,
      gatewayProviders: c.gatewayProviders,
      availableExecutionTargets,
    },
  };
}
