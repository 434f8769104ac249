/**
 * The `/acp/rpc` methods as a transport-free table: each method takes its params and a call context and returns
 * its result, or throws a GatewayError (INVALID_PARAMS naming the field, ROUTING_*, METHOD_NOT_FOUND, …).
 * The JSON-RPC transports (src/http/acp/: HTTP, SSE, WebSocket) and the bridge (peers.ts) adapt it; nothing here
 * knows of envelopes, sockets or HTTP.
 */
import { resolveRouting, type RoutingDecision } from './resolve-target.js';
import { capabilitiesResult, routingCatalogOf, type AcpConfig, type Catalog } from './capabilities.js';
import type { TurnRunner } from './turn-runner.js';
import type { Session, SessionTarget } from '../sessions/model.js';
import type { RecordRead } from './record-read.js';
import { GatewayError } from '../wire/errors.js';
import { VERSION } from '../version.js';
import { clientRequestIdOf, invalidParams, optPickedId, optString, quotedMethod, reqString } from './params.js';
import { workingDirectory } from './working-directory.js';
import { productCapabilityOf, productModeGate, resolveRole, roleCapabilities, roleRequestOf, type RoleDecision, type RoleRequest } from './roles.js';
import type { QueuedNotice, RoleBinding } from './turn-runner.js';
import { UPDATE_LOG_READ_MAX } from './update-log.js';
import { taskEventFields } from './task-events.js';
import { newId } from '../util/ids.js';

/** Sessions that live on a bridge peer (started on a runtime it shares, or transferred there). See peers.ts. */
export interface RemoteSessions {
  /** the peer running this target's runtime, when it is a peer-shared runtime */
  peerFor(target: SessionTarget): string | undefined;
  /**
   * `owner`: the peer that owns this session now, or undefined when it is ours (or unknown); `record`: the record
   * that says so (a provisional transfer copy settled). `known`: the record as the caller read it, instead of a read.
   */
  ownerOf(sessionId: string, known?: { rec: Session | undefined }): Promise<{ owner: string | undefined; record: Session | undefined }>;
  /**
   * Runs an /acp/rpc method on the peer: updates relayed in order, its result or error returned unchanged.
   * `hops`: the gateways the call already passed (a session moved A→B→C is reached by following the pointers).
   */
  call(peerId: string, method: string, params: Record<string, unknown>, notify: (params: Record<string, unknown>) => void, hops?: string[]): Promise<unknown>;
  /** records here that the session lives on the peer */
  recordRemote(sessionId: string, peerId: string, target: SessionTarget, threadId: string, caller: string | undefined): Promise<void>;
}

/** How a call that came over the bridge from a peer is served (peers.ts). */
export interface DispatchOptions {
  /** the peer that sent the call: recorded on sessions it starts */
  origin?: string;
  /** the serving side's share list: a target it does not allow is refused */
  allowTarget?: (t: SessionTarget) => boolean;
  /** never start a session on another peer's shared runtime (moved sessions are still followed to their owner) */
  localOnly?: boolean;
  /** gateways this call already passed (bridge hop list), carried when a moved session is followed further */
  hops?: string[];
  /**
   * The serving side's own check of the named session's record (peers.ts: a peer reaches only the sessions it
   * started or transferred here): `check` throws to refuse. Made first, before the caller and owner checks, on the
   * read they share (record-read.ts; `read` when nothing is read yet), so a bridged call reads the record once.
   */
  reach?: { sessionId: string; read: () => Promise<Session | undefined>; check: (rec: Session | undefined) => void };
}

export const DEFAULT_MAX_PROMPT_BYTES = 1024 * 1024;

/** The `clientRequestId` a peer forwards with a REST message's `session.message` (none: a plain message). */
const bridgedClientRequest = (p: Record<string, unknown>): QueuedNotice | undefined =>
  p.clientRequestId === undefined ? undefined : { clientRequestId: clientRequestIdOf(p) };

export interface MethodDeps {
  acp: AcpConfig;
  runner: TurnRunner;
  /** the current catalog (availability cached by the caller) */
  catalog(): Promise<Catalog>;
  /** sessions on bridge peers; absent = none */
  remote?: RemoteSessions | undefined;
  /** model names the mesh serves now (role routing picks among them); default none */
  servedModels?: () => readonly string[];
  maxPromptBytes?: number;
}

export interface CallContext {
  /** pushes a notification to the caller's transport (dropped when it cannot carry them) */
  notify(method: string, params: Record<string, unknown>): void;
  /** W3C traceparent of the transport's server span (tracing on): the turn's span becomes its child */
  trace?: string | undefined;
  /** who the call speaks for (`key:<id>` / `token:…`, src/http/acp/access.ts authorize); a bridge peer's calls are `peer:<id>` */
  caller?: string | undefined;
  /** `session.message` from the REST messages route: the turn's first update is a `queued` one carrying this (turn-runner.ts) */
  queued?: QueuedNotice | undefined;
}

/** The caller a session started by this call records, and `xworkmate.permissions.list` filters by. */
const callerOfCall = (ctx: CallContext, opts: DispatchOptions): string | undefined => ctx.caller ?? (opts.origin ? `peer:${opts.origin}` : undefined);

/** One method call as the transports hand it over (a JSON-RPC request is one). */
export interface AcpCall {
  method: string;
  params: Record<string, unknown>;
}

export type Dispatch = (call: AcpCall, ctx: CallContext, opts?: DispatchOptions) => Promise<unknown>;

/** A method of the table: params and context in, result out. */
type Method = (p: Record<string, unknown>, ctx: CallContext, opts: DispatchOptions) => Promise<unknown>;

/** A non-negative integer param (a `seq`), or undefined. */
function optSeq(p: Record<string, unknown>, field: string): number | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalidParams(field, `${field} must be a non-negative integer`);
  return v;
}

function prompt(p: Record<string, unknown>, maxBytes: number): string {
  const v = p.taskPrompt;
  if (v === undefined || v === null) throw invalidParams('taskPrompt', 'taskPrompt is required (a non-empty string)');
  if (typeof v !== 'string') throw invalidParams('taskPrompt', 'taskPrompt must be a string');
  if (v.trim() === '') throw invalidParams('taskPrompt', 'taskPrompt must not be empty');
  const bytes = Buffer.byteLength(v, 'utf8');
  if (bytes > maxBytes) throw invalidParams('taskPrompt', `taskPrompt is ${bytes} bytes; the limit is ${maxBytes}`);
  return v;
}

function decisionFields(d: RoutingDecision, acp: AcpConfig): Record<string, unknown> {
  if (d.kind === 'unavailable') {
    return {
      resolvedExecutionTarget: d.target === 'agent' ? 'single-agent' : 'gateway',
      resolvedProviderId: d.providerId,
      resolvedGatewayProviderId: d.gatewayProviderId,
      resolvedModel: d.model,
    };
  }
  const t = targetOf(d, acp);
  return {
    resolvedExecutionTarget: t.executionTarget === 'agent' ? 'single-agent' : 'gateway',
    resolvedProviderId: t.providerId,
    resolvedGatewayProviderId: t.gatewayProviderId,
    resolvedModel: t.model,
  };
}

function targetOf(d: Exclude<RoutingDecision, { kind: 'unavailable' }>, acp: AcpConfig): SessionTarget {
  if (d.kind === 'agent') return { executionTarget: 'agent', providerId: d.providerId, gatewayProviderId: '', model: d.model };
  const g = acp.gateways.find((x) => x.id === d.gatewayProviderId);
  return { executionTarget: 'gateway', providerId: '', gatewayProviderId: d.gatewayProviderId, model: d.model || (g?.kind === 'channels' ? g.model : '') };
}

/** session.start params that name `t` explicitly instead of a role (for a peer running a role-routed turn). */
function explicitStart(p: Record<string, unknown>, t: SessionTarget): Record<string, unknown> {
  const { routing: _r, provider: _p, model: _m, requestedExecutionTarget: _ret, executionTarget: _et, gatewayProviderId: _g, ...rest } = p;
  const routing: Record<string, unknown> = { routingMode: 'explicit', explicitExecutionTarget: t.executionTarget, explicitModel: t.model };
  if (t.executionTarget === 'agent') routing.explicitProviderId = t.providerId;
  else routing.preferredGatewayProviderId = t.gatewayProviderId;
  return { ...rest, routing };
}

function targetFields(t: SessionTarget): Record<string, unknown> {
  return {
    resolvedExecutionTarget: t.executionTarget === 'agent' ? 'single-agent' : 'gateway',
    resolvedProviderId: t.providerId,
    resolvedGatewayProviderId: t.gatewayProviderId,
    resolvedModel: t.model,
  };
}

/**
 * A role-routed turn the policy refused: a result, nothing runs (addendum §3). `turnId` names the refused turn,
 * as its `task.rejected` event does.
 */
function roleUnavailableResult(d: Extract<RoleDecision, { kind: 'rejected' }>, sessionId: string, threadId: string, turnId: string): Record<string, unknown> {
  return {
    success: false,
    status: 'unavailable',
    unavailable: true,
    unavailableCode: d.unavailableCode,
    unavailableMessage: d.message,
    sessionId,
    threadId,
    turnId,
    output: '',
    summary: d.message,
    ...(d.selection ? { roleSelection: d.selection } : {}),
  };
}

/**
 * `task.rejected`: the sole event of a refused role turn. Like every task event it carries the turn's id as
 * `turnId` and `task.taskId` (addendum §4; acp-rpc.md: every `session.update` carries a `turnId`): the refused
 * turn gets one of its own. No `runId`: nothing ran. The runner numbers it (`seq`) when the session is open.
 */
function rejectedEvent(
  d: Extract<RoleDecision, { kind: 'rejected' }>,
  req: RoleRequest,
  ids: { sessionId: string; threadId: string; turnId: string },
): Record<string, unknown> {
  return taskEventFields(
    'rejected',
    ids,
    { role: req.role ?? null, roleMode: req.roleMode },
    { code: d.selection?.code ?? d.unavailableCode, message: d.message },
  );
}

function unavailableResult(d: Extract<RoutingDecision, { kind: 'unavailable' }>, sessionId: string, threadId: string, acp: AcpConfig): Record<string, unknown> {
  return {
    success: false,
    status: 'unavailable',
    unavailable: true,
    unavailableCode: d.unavailableCode,
    unavailableMessage: d.unavailableMessage,
    sessionId,
    threadId,
    output: '',
    summary: d.unavailableMessage,
    ...decisionFields(d, acp),
  };
}

export function createDispatch(deps: MethodDeps): Dispatch {
  const maxPrompt = deps.maxPromptBytes ?? DEFAULT_MAX_PROMPT_BYTES;
  const route = async (p: Record<string, unknown>) => resolveRouting(p, routingCatalogOf(await deps.catalog()));
  const roleDecision = async (req: RoleRequest, hasWorkspace: boolean, productMode: string | undefined): Promise<RoleDecision> =>
    resolveRole(req, {
      policy: deps.acp.roles,
      catalog: routingCatalogOf(await deps.catalog()),
      servedModels: deps.servedModels?.() ?? [],
      hasWorkspace,
      productMode,
    });
  const sinkOf = (ctx: CallContext) => (params: Record<string, unknown>) => ctx.notify('session.update', params);
  /**
   * the peer that owns a session now (its continuation runs there), or undefined when it runs here; the record it
   * read (or was given: `seen`, the caller check's) is kept in `seen` for the steps that follow
   */
  const ownerOf = async (sessionId: string, seen: RecordRead): Promise<{ remote: RemoteSessions; owner: string } | undefined> => {
    const remote = deps.remote;
    if (!remote) return undefined;
    const known = seen.known;
    const { owner } = await seen.refresh(
      () => remote.ownerOf(sessionId, known),
      (o) => o.record,
    );
    return owner ? { remote, owner } : undefined;
  };
  /**
   * runs `method` where the session lives: on the peer that owns it now (following moves), or here. The caller
   * check, the owner check and `here` share one read of the record while it is current (record-read.ts).
   */
  const atOwner = async (
    method: string,
    sessionId: string,
    p: Record<string, unknown>,
    ctx: CallContext,
    opts: DispatchOptions,
    here: (seen: RecordRead) => Promise<unknown>,
  ): Promise<unknown> => {
    const seen = deps.runner.watch(sessionId);
    try {
      // on the session the method names, or on none (refused): never on another id's record
      if (opts.reach) opts.reach.check(opts.reach.sessionId === sessionId ? await seen.get(opts.reach.read) : undefined);
      await deps.runner.assertReach(sessionId, ctx.caller, seen);
      const fwd = await ownerOf(sessionId, seen);
      if (fwd) return await fwd.remote.call(fwd.owner, method, p, sinkOf(ctx), opts.hops);
      return await here(seen);
    } finally {
      deps.runner.unwatch(seen);
    }
  };
  const endSession =
    (method: 'session.cancel' | 'session.close'): Method =>
    async (p, ctx, opts) => {
      const sessionId = reqString(p, 'sessionId');
      return atOwner(method, sessionId, p, ctx, opts, () => (method === 'session.cancel' ? deps.runner.cancel(sessionId) : deps.runner.close(sessionId)));
    };

  const methods: Readonly<Record<string, Method>> = {
    'acp.capabilities': async () => {
      const c = await deps.catalog();
      return capabilitiesResult(c, roleCapabilities(deps.acp.roles, routingCatalogOf(c)));
    },
    health: async () => ({ status: 'ok', version: VERSION }),
    'session.start': async (p, ctx, opts) => {
      const sessionId = reqString(p, 'sessionId');
      // a key may not restart (and so take over) a session another caller started
      await deps.runner.assertReach(sessionId, ctx.caller);
      const threadId = optString(p, 'threadId') ?? sessionId;
      const text = prompt(p, maxPrompt);
      const wd = workingDirectory(p);
      const cap = productCapabilityOf(p);
      const roleReq = roleRequestOf(p);
      let target: SessionTarget;
      let role: RoleBinding | undefined;
      if (roleReq) {
        const rd = await roleDecision(roleReq, wd !== undefined, cap?.mode);
        if (rd.kind === 'rejected') {
          const ids = { sessionId, threadId, turnId: newId('turn') };
          await deps.runner.rejected(ids, rejectedEvent(rd, roleReq, ids), sinkOf(ctx));
          return roleUnavailableResult(rd, sessionId, threadId, ids.turnId);
        }
        target = rd.target;
        role = {
          resolvedRole: rd.role,
          roleMode: roleReq.roleMode,
          resolvedModelId: rd.selection.modelId ?? '',
          modelKey: rd.selection.modelKey ?? '',
          modelBindingVerified: rd.modelBindingVerified,
          policyVersion: rd.selection.policyVersion ?? '',
          roleSelection: rd.selection,
        };
      } else {
        const d = await route(p);
        if (d.kind === 'unavailable') return unavailableResult(d, sessionId, threadId, deps.acp);
        target = targetOf(d, deps.acp);
      }
      if (opts.allowTarget && !opts.allowTarget(target)) {
        throw new GatewayError('CHANNEL_NOT_SHARED', `runtime "${target.providerId || target.gatewayProviderId}" is not shared with you`);
      }
      const remote = opts.localOnly ? undefined : deps.remote;
      const peer = remote?.peerFor(target);
      if (peer && remote) {
        // the runtime is a peer's: the session lives there from now on; this gateway keeps a pointer
        await deps.runner.close(sessionId);
        await remote.recordRemote(sessionId, peer, target, threadId, callerOfCall(ctx, opts));
        if (!role) return remote.call(peer, 'session.start', p, sinkOf(ctx));
        // our policy chose the runtime and model: the peer runs exactly that (its own policy is not asked)
        const out = await remote.call(peer, 'session.start', explicitStart(p, target), sinkOf(ctx));
        const { resolvedRole, resolvedModelId, modelBindingVerified, roleSelection } = role;
        return out && typeof out === 'object' ? { ...out, resolvedRole, resolvedModelId, modelBindingVerified, roleSelection } : out;
      }
      return deps.runner.start(
        {
          sessionId,
          threadId,
          prompt: text,
          workingDirectory: wd,
          target,
          origin: opts.origin,
          caller: callerOfCall(ctx, opts),
          ...(role ? { role } : {}),
          trace: ctx.trace,
        },
        sinkOf(ctx),
      );
    },
    'session.message': async (p, ctx, opts) => {
      const sessionId = reqString(p, 'sessionId');
      const text = prompt(p, maxPrompt);
      workingDirectory(p); // validated; the session keeps the folder it started with
      // validated strictly; the session keeps its routing, but a role session's turn is held to its role's modes
      const cap = productCapabilityOf(p);
      // a REST message's clientRequestId travels to the peer that runs the session, whose `queued` update carries
      // it (bridge-protocol.md); over /acp/rpc the param is not read
      const queued = ctx.queued ?? (opts.origin !== undefined ? bridgedClientRequest(p) : undefined);
      const { clientRequestId: _ignored, ...plain } = p;
      const fwd = queued ? { ...plain, clientRequestId: queued.clientRequestId } : plain;
      return atOwner('session.message', sessionId, fwd, ctx, opts, async (seen) => {
        const bound = cap ? await deps.runner.roleBinding(sessionId, seen) : undefined;
        const refused = bound ? productModeGate(deps.acp.roles, bound.role, cap?.mode) : undefined;
        if (bound && refused) {
          const turnId = newId('turn');
          const req: RoleRequest = {
            role: bound.role.resolvedRole,
            roleMode: bound.role.roleMode,
            roleModel: undefined,
            specialty: undefined,
            dataClass: 'unclassified',
          };
          const ids = { sessionId, threadId: bound.threadId, turnId };
          await deps.runner.rejected(ids, rejectedEvent(refused, req, ids), sinkOf(ctx));
          return roleUnavailableResult(refused, sessionId, bound.threadId, turnId);
        }
        return deps.runner.message(sessionId, text, sinkOf(ctx), ctx.trace, queued, seen);
      });
    },
    'session.cancel': endSession('session.cancel'),
    'session.close': endSession('session.close'),
    'xworkmate.tasks.get': async (p, ctx, opts) => {
      const runId = optString(p, 'runId');
      const sessionId = optString(p, 'sessionId');
      if (!runId && !sessionId) throw invalidParams('runId', 'runId or sessionId is required');
      const afterSeq = optSeq(p, 'afterSeq');
      if (afterSeq !== undefined && !sessionId) throw invalidParams('sessionId', 'afterSeq needs a sessionId');
      // at most this many updates (a page the client, or a bridge frame, can take); default and most: the log's read size
      const limit = optSeq(p, 'limit');
      if (limit !== undefined && (limit < 1 || limit > UPDATE_LOG_READ_MAX))
        throw invalidParams('limit', `limit must be an integer from 1 to ${UPDATE_LOG_READ_MAX}`);
      const here = () => deps.runner.task({ ...(runId ? { runId } : {}), ...(sessionId ? { sessionId } : {}), afterSeq, limit });
      // a session that lives elsewhere is asked there (a runId alone names no session: answered here)
      if (sessionId) return atOwner('xworkmate.tasks.get', sessionId, p, ctx, opts, here);
      const snap = await here();
      // the run's session must be one the caller may reach, as when it is named
      if (typeof snap.sessionId === 'string') await deps.runner.assertReach(snap.sessionId, ctx.caller);
      return snap;
    },
    'xworkmate.permissions.respond': async (p, ctx, opts) => {
      const sessionId = reqString(p, 'sessionId');
      // ids the gateway offered (the prompt's, its options'): trimmed, as routing ids are
      const requestId = reqString(p, 'requestId').trim();
      const optionId = optPickedId(p, 'optionId');
      const decision = optPickedId(p, 'decision');
      if (decision !== undefined && decision !== 'cancel') throw invalidParams('decision', 'decision must be "cancel"');
      if ((optionId === undefined) === (decision === undefined)) throw invalidParams('optionId', 'send exactly one of optionId or decision:"cancel"');
      const answer = optionId !== undefined ? { optionId } : { decision: 'cancel' as const };
      return atOwner('xworkmate.permissions.respond', sessionId, p, ctx, opts, () => deps.runner.respondPermission(sessionId, requestId, answer));
    },
    'xworkmate.permissions.list': async (p, ctx, opts) => {
      const sessionId = optString(p, 'sessionId');
      if (sessionId === undefined) return deps.runner.listPermissions(undefined, callerOfCall(ctx, opts));
      return atOwner('xworkmate.permissions.list', sessionId, p, ctx, opts, () => deps.runner.listPermissions(sessionId));
    },
    'xworkmate.routing.resolve': async (p) => {
      optString(p, 'sessionId');
      const cap = productCapabilityOf(p);
      const roleReq = roleRequestOf(p);
      if (roleReq) {
        // the hint as session.start reads it: the same decision ("." is no folder, ".." is refused)
        const rd = await roleDecision(roleReq, workingDirectory(p) !== undefined, cap?.mode);
        if (rd.kind === 'rejected')
          return { unavailable: true, unavailableCode: rd.unavailableCode, unavailableMessage: rd.message, roleSelection: rd.selection ?? null };
        return {
          unavailable: false,
          ...targetFields(rd.target),
          resolvedRole: rd.role,
          resolvedModelId: rd.selection.modelId,
          modelBindingVerified: rd.modelBindingVerified,
          roleSelection: rd.selection,
        };
      }
      const d = await route(p);
      if (d.kind === 'unavailable') {
        return {
          unavailable: true,
          unavailableCode: d.unavailableCode,
          unavailableMessage: d.unavailableMessage,
          ...decisionFields(d, deps.acp),
          roleSelection: null,
        };
      }
      return { unavailable: false, ...decisionFields(d, deps.acp), roleSelection: null };
    },
  };

  return async (call, ctx, opts = {}) => {
    const m = Object.prototype.hasOwnProperty.call(methods, call.method) ? methods[call.method] : undefined;
    if (!m) {
      // the name is the client's: quoted as ids are, never echoed at any length (twice: message and data)
      const method = quotedMethod(call.method);
      throw new GatewayError('METHOD_NOT_FOUND', `method not found: ${method}`, { details: { method } });
    }
    return m(call.params, ctx, opts);
  };
}
