/**
 * Method dispatch for /acp/rpc (HTTP, SSE and WebSocket share it): parameter validation (-32602 naming the
 * field), routing resolution, and the calls into the turn runner. Unknown methods → -32601 naming the method.
 */
import { AcpRpcError, RPC, invalidParams, type RpcRequest } from './envelope.js';
import { resolveRouting, type RoutingDecision } from './routing.js';
import { capabilitiesResult, routingCatalogOf, type AcpConfig, type Catalog } from './capabilities.js';
import type { TurnRunner } from './turns.js';
import type { SessionTarget } from '../sessions/model.js';
import { GatewayError } from '../wire/errors.js';
import { VERSION } from '../version.js';

/** Sessions that live on a bridge peer (started on a runtime it shares, or transferred there). See peers.ts. */
export interface RemoteSessions {
  /** the peer running this target's runtime, when it is a peer-shared runtime */
  peerFor(target: SessionTarget): string | undefined;
  /** the peer that owns this session now, or undefined when it is ours (or unknown) */
  ownerOf(sessionId: string): Promise<string | undefined>;
  /** runs an /acp/rpc method on the peer: updates relayed in order, its result or error returned unchanged */
  call(peerId: string, method: string, params: Record<string, unknown>, notify: (params: Record<string, unknown>) => void): Promise<unknown>;
  /** records here that the session lives on the peer */
  recordRemote(sessionId: string, peerId: string, target: SessionTarget, threadId: string): Promise<void>;
}

/** How a call that came over the bridge from a peer is served (peers.ts). */
export interface DispatchOptions {
  /** the peer that sent the call: recorded on sessions it starts */
  origin?: string;
  /** the serving side's share list: a target it does not allow is refused */
  allowTarget?: (t: SessionTarget) => boolean;
  /** never forward to another peer */
  localOnly?: boolean;
}


export const DEFAULT_MAX_PROMPT_BYTES = 1024 * 1024;
const MAX_ID_CHARS = 256;
const MAX_WORKDIR_CHARS = 1024;

export interface MethodDeps {
  acp: AcpConfig;
  runner: TurnRunner;
  /** the current catalog (availability cached by the caller) */
  catalog(): Promise<Catalog>;
  /** sessions on bridge peers; absent = none */
  remote?: RemoteSessions | undefined;
  maxPromptBytes?: number;
}

export interface CallContext {
  /** pushes a notification to the caller's transport (dropped when it cannot carry them) */
  notify(method: string, params: Record<string, unknown>): void;
}

export type Dispatch = (req: RpcRequest, ctx: CallContext, opts?: DispatchOptions) => Promise<unknown>;

function optString(p: Record<string, unknown>, field: string, max = MAX_ID_CHARS): string | undefined {
  const v = p[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalidParams(field, `${field} must be a string`);
  if (v.length > max) throw invalidParams(field, `${field} is longer than ${max} characters`);
  return v.trim() === '' ? undefined : v;
}

function reqString(p: Record<string, unknown>, field: string, max = MAX_ID_CHARS): string {
  const v = optString(p, field, max);
  if (v === undefined) throw invalidParams(field, `${field} is required (a non-empty string)`);
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

/** A relative folder hint under acp.workspaceRoot: never absolute, never with a `..` segment. */
export function workingDirectory(p: Record<string, unknown>): string | undefined {
  const v = optString(p, 'workingDirectory', MAX_WORKDIR_CHARS);
  if (v === undefined) return undefined;
  if (v.includes('\0')) throw invalidParams('workingDirectory', 'workingDirectory contains a NUL byte');
  if (v.startsWith('/') || v.startsWith('\\') || /^[A-Za-z]:/.test(v) || v.startsWith('~')) {
    throw invalidParams('workingDirectory', 'workingDirectory must be a relative folder under the workspace root, not an absolute path');
  }
  if (v.split(/[\\/]+/).includes('..')) throw invalidParams('workingDirectory', 'workingDirectory must not contain ".."');
  return v.trim();
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

  return async (req, ctx, opts = {}) => {
    const p = req.params;
    const sink = (params: Record<string, unknown>) => ctx.notify('session.update', params);
    const remote = opts.localOnly ? undefined : deps.remote;
    /** where a session's continuation runs: a peer that owns it, or here */
    const forwarded = async (sessionId: string): Promise<string | undefined> => (remote ? remote.ownerOf(sessionId) : undefined);
    switch (req.method) {
      case 'acp.capabilities':
        return capabilitiesResult(await deps.catalog());
      case 'health':
        return { status: 'ok', version: VERSION };
      case 'session.start': {
        const sessionId = reqString(p, 'sessionId');
        const threadId = optString(p, 'threadId') ?? sessionId;
        const text = prompt(p, maxPrompt);
        const wd = workingDirectory(p);
        const d = await route(p);
        if (d.kind === 'unavailable') return unavailableResult(d, sessionId, threadId, deps.acp);
        const target = targetOf(d, deps.acp);
        if (opts.allowTarget && !opts.allowTarget(target)) {
          throw new GatewayError('CHANNEL_NOT_SHARED', `runtime "${target.providerId || target.gatewayProviderId}" is not shared with you`);
        }
        const peer = remote?.peerFor(target);
        if (peer && remote) {
          // the runtime is a peer's: the session lives there from now on; this gateway keeps a pointer
          await deps.runner.close(sessionId);
          await remote.recordRemote(sessionId, peer, target, threadId);
          return remote.call(peer, 'session.start', p, sink);
        }
        return deps.runner.start({ sessionId, threadId, prompt: text, workingDirectory: wd, target, origin: opts.origin }, sink);
      }
      case 'session.message': {
        const sessionId = reqString(p, 'sessionId');
        const text = prompt(p, maxPrompt);
        workingDirectory(p); // validated; the session keeps the folder it started with
        const owner = await forwarded(sessionId);
        if (owner && remote) return remote.call(owner, 'session.message', p, sink);
        return deps.runner.message(sessionId, text, sink);
      }
      case 'session.cancel':
      case 'session.close': {
        const sessionId = reqString(p, 'sessionId');
        const owner = await forwarded(sessionId);
        if (owner && remote) return remote.call(owner, req.method, p, sink);
        return req.method === 'session.cancel' ? deps.runner.cancel(sessionId) : deps.runner.close(sessionId);
      }
      case 'xworkmate.tasks.get': {
        const runId = optString(p, 'runId');
        const sessionId = optString(p, 'sessionId');
        if (!runId && !sessionId) throw invalidParams('runId', 'runId or sessionId is required');
        return deps.runner.task({ ...(runId ? { runId } : {}), ...(sessionId ? { sessionId } : {}) });
      }
      case 'xworkmate.routing.resolve': {
        optString(p, 'sessionId');
        const d = await route(p);
        if (d.kind === 'unavailable') {
          return { unavailable: true, unavailableCode: d.unavailableCode, unavailableMessage: d.unavailableMessage, ...decisionFields(d, deps.acp) };
        }
        return { unavailable: false, ...decisionFields(d, deps.acp) };
      }
      default:
        throw new AcpRpcError(RPC.METHOD_NOT_FOUND, 'METHOD_NOT_FOUND', `method not found: ${req.method}`, { method: req.method });
    }
  };
}
