/**
 * Role routing (addendum 2026-10 §1–3, issue 12 item 6). Pure: request params, the `acp.roles` policy, the
 * runtime catalog and the models the mesh serves in; a decision out. A turn is role-routed iff `routing.role` or
 * `routing.roleMode` is non-empty; the policy then picks executor and model, and the client's provider / model /
 * explicit routing fields are ignored (no ROUTING_REQUIRED / ROUTING_CONFLICT).
 *
 * Order of checks: policy configured (ROLE_POLICY_UNCONFIGURED) → valid (ROLE_POLICY_INVALID) → enabled
 * (policy_disabled) → role (role_required / role_unknown / role_not_enabled) → product mode
 * (role_not_allowed_for_mode) → specialty (specialty_required) → workspace (workspace_unauthorized) → budget
 * (budget_unconfigured) → manual model (model_unknown) → candidates: executors in role order × models in
 * preference order (manual: its key); the first whose executor is available, whose model the mesh serves and
 * whose `dataClasses` hold the request's `dataClass` wins (no_eligible_candidate when none; the others land in
 * `excluded`: executor_unavailable, catalog_stale, egress_not_allowed). No fallback after dispatch. The refusals are
 * results (`unavailable`), never errors; nothing runs.
 */
import type { RolePolicyConfig } from '../config/schema.js';
import type { SessionTarget } from '../sessions/model.js';
import type { RoutingCatalog } from './resolve-target.js';
import { invalidParams, optPickedId } from './params.js';
import { GatewayError } from '../wire/errors.js';

export const ROLE_NAMES = ['chat', 'worker', 'engineer', 'architect', 'researcher', 'specialist'] as const;

export interface RoleRequest {
  role: string | undefined;
  roleMode: 'auto' | 'manual';
  roleModel: string | undefined;
  specialty: string | undefined;
  dataClass: string;
}

export interface RoleSelection {
  selected: boolean;
  code: string;
  message: string;
  policyVersion: string | null;
  role: string | null;
  roleMode: 'auto' | 'manual';
  executor?: string;
  executorKind?: 'agent' | 'gateway';
  providerId?: string;
  connection?: string;
  modelKey?: string;
  modelId?: string;
  modelOption?: string;
  tools: string[];
  estimatedTokens: number | null;
  effort: { level: string; start: string; min: string; max: string; adjustments: string[] } | null;
  reasons: string[];
  excluded: Array<{ model: string; executor: string; code: string; detail: string }>;
  enabledRoles: string[];
  nextSteps: string[];
}

export type RoleDecision =
  | { kind: 'selected'; target: SessionTarget; role: string; selection: RoleSelection; modelBindingVerified: boolean }
  | {
      kind: 'rejected';
      unavailableCode: 'ROLE_POLICY_UNCONFIGURED' | 'ROLE_POLICY_INVALID' | 'ROLE_SELECTION_REJECTED';
      message: string;
      selection: RoleSelection | undefined;
    };

const routingOf = (p: Record<string, unknown>): Record<string, unknown> =>
  p.routing && typeof p.routing === 'object' && !Array.isArray(p.routing) ? (p.routing as Record<string, unknown>) : {};

const field = (r: Record<string, unknown>, name: string): string | undefined => optPickedId(r, name, `routing.${name}`);

/** The role fields of `routing`, or undefined when the turn is not role-routed. */
export function roleRequestOf(p: Record<string, unknown>): RoleRequest | undefined {
  const r = routingOf(p);
  const role = field(r, 'role')?.toLowerCase();
  const mode = field(r, 'roleMode');
  if (role === undefined && mode === undefined) return undefined;
  return {
    role,
    roleMode: mode === 'manual' ? 'manual' : 'auto',
    roleModel: field(r, 'roleModel'),
    specialty: field(r, 'specialty'),
    dataClass: field(r, 'dataClass') ?? 'unclassified',
  };
}

/**
 * `metadata.xworkmateProductCapability` v1, validated strictly whenever present: an object with only
 * `schemaVersion` (the number 1), `mode` (chat | work | code) and optional `model` (`xworkmate/<id>`, ≤ 256).
 */
export function productCapabilityOf(p: Record<string, unknown>): { mode: 'chat' | 'work' | 'code'; model?: string } | undefined {
  const md = p.metadata;
  if (md === undefined || md === null) return undefined;
  if (typeof md !== 'object' || Array.isArray(md)) throw invalidParams('metadata', 'metadata must be an object');
  const c = (md as Record<string, unknown>).xworkmateProductCapability;
  if (c === undefined) return undefined;
  const bad = () => new GatewayError('INVALID_PARAMS', 'invalid xworkmateProductCapability v1 contract', { param: 'metadata.xworkmateProductCapability' });
  if (!c || typeof c !== 'object' || Array.isArray(c)) throw bad();
  const o = c as Record<string, unknown>;
  if (Object.keys(o).some((k) => k !== 'schemaVersion' && k !== 'mode' && k !== 'model')) throw bad();
  if (o.schemaVersion !== 1) throw bad();
  if (o.mode !== 'chat' && o.mode !== 'work' && o.mode !== 'code') throw bad();
  if (o.model !== undefined && (typeof o.model !== 'string' || o.model.length > 256 || !/^xworkmate\/[A-Za-z0-9_.:/-]+$/.test(o.model))) throw bad();
  return { mode: o.mode, ...(typeof o.model === 'string' ? { model: o.model } : {}) };
}

export type PolicyStatus = { configured: false } | { configured: true; valid: false; error: string } | { configured: true; valid: true };

/** Checks what the schema cannot: unique roles, executors that are runtimes of this gateway (or its peers). */
export function policyStatus(policy: RolePolicyConfig | undefined, catalog: RoutingCatalog): PolicyStatus {
  if (!policy) return { configured: false };
  const seen = new Set<string>();
  for (const r of policy.roles) {
    if (seen.has(r.role)) return { configured: true, valid: false, error: `role "${r.role}" is listed twice` };
    seen.add(r.role);
    for (const e of r.executors) {
      if (!catalog.agents.some((a) => a.providerId === e) && !catalog.gateways.some((g) => g.providerId === e)) {
        return { configured: true, valid: false, error: `role "${r.role}": executor "${e}" is not an ACP runtime of this gateway` };
      }
    }
  }
  return { configured: true, valid: true };
}

/** The policy's roles in the addendum's order (§1: chat, worker, engineer, …), whatever the config's. */
const inRoleOrder = <R extends { role: string }>(roles: readonly R[]): R[] =>
  [...roles].sort((a, b) => ROLE_NAMES.indexOf(a.role as (typeof ROLE_NAMES)[number]) - ROLE_NAMES.indexOf(b.role as (typeof ROLE_NAMES)[number]));

/** The `roleRouting` block of acp.capabilities: no URLs, no tokens. */
export function roleCapabilities(policy: RolePolicyConfig | undefined, catalog: RoutingCatalog): Record<string, unknown> {
  const st = policyStatus(policy, catalog);
  if (!st.configured || !policy) return { configured: false };
  if (!st.valid) return { configured: true, valid: false, error: st.error };
  const roles = inRoleOrder(policy.roles);
  return {
    configured: true,
    valid: true,
    enabled: policy.enabled,
    policyVersion: policy.policyVersion,
    budgetMode: policy.budgetMode,
    enabledRoles: roles.filter((r) => r.enabled).map((r) => r.role),
    modes: ['auto', 'manual'],
    roles: roles.map((r) => ({
      role: r.role,
      enabled: r.enabled,
      models: r.models.map((m) => ({ key: m.key, displayName: m.displayName ?? m.key })),
      executors: r.executors,
      requiresWorkspace: r.requiresWorkspace,
      requiresSpecialty: r.requiresSpecialty,
      productModes: r.productModes,
      effort: r.effort ?? null,
    })),
  };
}

export interface RoleEnv {
  policy: RolePolicyConfig | undefined;
  catalog: RoutingCatalog;
  /** model names the mesh serves now (local channels and peers') */
  servedModels: readonly string[];
  /** the request names a working directory */
  hasWorkspace: boolean;
  /** product mode from metadata.xworkmateProductCapability, if any */
  productMode: string | undefined;
}

/** A not-yet-selected `roleSelection` for `role` under `policy` (filled in by the checks that follow). */
function selectionBase(policy: RolePolicyConfig, role: string | null, roleMode: 'auto' | 'manual'): RoleSelection {
  return {
    selected: false,
    code: '',
    message: '',
    policyVersion: policy.policyVersion,
    role,
    roleMode,
    tools: [],
    estimatedTokens: null,
    effort: null,
    reasons: [],
    excluded: [],
    // in the order acp.capabilities lists them (roleRouting.enabledRoles), not the config's
    enabledRoles: inRoleOrder(policy.roles)
      .filter((r) => r.enabled)
      .map((r) => r.role),
    nextSteps: [],
  };
}

type RoleRejection = Extract<RoleDecision, { kind: 'rejected' }>;

function rejection(base: RoleSelection, code: string, message: string, nextSteps: string[] = []): RoleRejection {
  return { kind: 'rejected', unavailableCode: 'ROLE_SELECTION_REJECTED', message: `${code}: ${message}`, selection: { ...base, code, message, nextSteps } };
}

/**
 * The product-mode gate (addendum §1: role turns need `mode` in the role's `productModes`) for a later turn of a
 * role-routed session. The session keeps the executor and model its first turn was bound to, but every turn that
 * names a product mode is held to its role's modes, as the first one was: a `work` turn on a `code`-only role is
 * refused (`role_not_allowed_for_mode`), nothing runs and the session stays open. No mode, no check; a role the
 * policy no longer lists keeps its binding unchecked.
 */
export function productModeGate(
  policy: RolePolicyConfig | undefined,
  bound: { resolvedRole: string; roleMode: 'auto' | 'manual' },
  productMode: string | undefined,
): RoleRejection | undefined {
  if (!policy || productMode === undefined) return undefined;
  const role = policy.roles.find((r) => r.role === bound.resolvedRole);
  if (!role || role.productModes.some((m) => m === productMode)) return undefined;
  const base = selectionBase(policy, role.role, bound.roleMode);
  return rejection(base, 'role_not_allowed_for_mode', `role "${role.role}" is not allowed in product mode "${productMode}"`);
}

export function resolveRole(req: RoleRequest, env: RoleEnv): RoleDecision {
  const policy = env.policy;
  const st = policyStatus(policy, env.catalog);
  if (!st.configured || !policy)
    return {
      kind: 'rejected',
      unavailableCode: 'ROLE_POLICY_UNCONFIGURED',
      message: 'role routing is not configured on this gateway (acp.roles)',
      selection: undefined,
    };
  if (!st.valid) return { kind: 'rejected', unavailableCode: 'ROLE_POLICY_INVALID', message: `the role policy is invalid: ${st.error}`, selection: undefined };
  const base = selectionBase(policy, req.role ?? null, req.roleMode);
  const enabledRoles = base.enabledRoles;
  const reject = (code: string, message: string, nextSteps: string[] = []): RoleDecision => rejection(base, code, message, nextSteps);
  if (!policy.enabled) return reject('policy_disabled', 'role routing is disabled by the policy');
  let roleName = req.role;
  if (roleName === undefined) {
    if (req.roleMode === 'manual' || enabledRoles.length !== 1)
      return reject(
        'role_required',
        'name a role (routing.role)',
        enabledRoles.map((r) => `send routing.role "${r}"`),
      );
    roleName = enabledRoles[0]!;
    base.role = roleName;
    base.reasons.push('the only enabled role');
  }
  const role = policy.roles.find((r) => r.role === roleName);
  if (!role) return reject('role_unknown', `role "${roleName}" is not in the policy`);
  if (!role.enabled) return reject('role_not_enabled', `role "${roleName}" is not enabled`);
  if (env.productMode !== undefined && !role.productModes.some((m) => m === env.productMode)) {
    return reject('role_not_allowed_for_mode', `role "${roleName}" is not allowed in product mode "${env.productMode}"`);
  }
  if (role.requiresSpecialty && !req.specialty) return reject('specialty_required', `role "${roleName}" needs routing.specialty`);
  const needsWorkspace = role.requiresWorkspace || role.executors.some((e) => env.catalog.agents.some((a) => a.providerId === e));
  if (needsWorkspace && !env.hasWorkspace) return reject('workspace_unauthorized', `role "${roleName}" needs a workingDirectory`);
  if (policy.budgetMode !== 'gateway_quota') return reject('budget_unconfigured', `budget mode "${policy.budgetMode}" does not dispatch`);
  let models = role.models;
  if (req.roleMode === 'manual') {
    const m = role.models.find((x) => x.key === req.roleModel);
    if (!m)
      return reject(
        'model_unknown',
        `role "${roleName}" has no model "${req.roleModel ?? ''}"`,
        role.models.map((x) => `send routing.roleModel "${x.key}"`),
      );
    models = [m];
  }
  const effort = role.effort ? { level: role.effort.start, start: role.effort.start, min: role.effort.min, max: role.effort.max, adjustments: [] } : null;
  for (const executor of role.executors) {
    const agent = env.catalog.agents.find((a) => a.providerId === executor);
    const gateway = agent ? undefined : env.catalog.gateways.find((g) => g.providerId === executor);
    const entry = agent ?? gateway;
    for (const m of models) {
      if (!entry || !entry.enabled) {
        base.excluded.push({ model: m.key, executor, code: 'executor_unavailable', detail: entry?.unavailableReason ?? 'not available' });
        continue;
      }
      if (!env.servedModels.includes(m.model)) {
        base.excluded.push({ model: m.key, executor, code: 'catalog_stale', detail: `model "${m.model}" is not served by this gateway or its peers` });
        continue;
      }
      if (!m.dataClasses.includes(req.dataClass)) {
        base.excluded.push({
          model: m.key,
          executor,
          code: 'egress_not_allowed',
          detail: `data class "${req.dataClass}" may not be sent to model "${m.model}"`,
        });
        continue;
      }
      const kind = agent ? 'agent' : 'gateway';
      const target: SessionTarget =
        kind === 'agent'
          ? { executionTarget: 'agent', providerId: executor, gatewayProviderId: '', model: m.model }
          : { executionTarget: 'gateway', providerId: '', gatewayProviderId: executor, model: m.model };
      // a `channels` gateway sends exactly this model to the router; an agent's model option is not bound (yet)
      const verified = kind === 'gateway';
      return {
        kind: 'selected',
        target,
        role: roleName,
        modelBindingVerified: verified,
        selection: {
          ...base,
          selected: true,
          code: 'selected',
          message: `role "${roleName}" → ${executor} with ${m.model}`,
          role: roleName,
          executor,
          executorKind: kind,
          providerId: executor,
          connection: 'gateway',
          modelKey: m.key,
          modelId: m.model,
          modelOption: m.model,
          effort,
          reasons: [...base.reasons, req.roleMode === 'manual' ? 'the requested roleModel' : 'first eligible executor × model in policy order'],
        },
      };
    }
  }
  return reject(
    'no_eligible_candidate',
    `no executor × model of role "${roleName}" is available (${base.excluded.map((x) => `${x.executor}/${x.model}: ${x.code}`).join(', ')})`,
  );
}
