/**
 * The `/acp/rpc` methods as a transport-free table: each method takes its params and a call context and returns
 * its result, or throws a GatewayError (INVALID_PARAMS naming the field, ROUTING_*, METHOD_NOT_FOUND, …).
 * The JSON-RPC transports (src/http/acp/: HTTP, SSE, WebSocket) and the bridge (peers.ts) adapt it; nothing here
 * knows of envelopes, sockets or HTTP.
 */
import { resolveRouting, type RoutingDecision } from './resolve-target.js';
import { capabilitiesResult, routingCatalogOf, type AcpConfig, type Catalog } from './capabilities.js';
import type { TurnRunner } from './turn-runner.js';
import type { SessionTarget } from '../sessions/model.js';
import { GatewayError } from '../wire/errors.js';
import { VERSION } from '../version.js';
import { invalidParams, optString, reqString } from './params.js';
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

/** One method call as the transports hand it over (a JSON-RPC request is one). */
export interface AcpCall {
  method: string;
  params: Record<string, unknown>;
}

export type Dispatch = (call: AcpCall, ctx: CallContext, opts?: DispatchOptions) => Promise<unknown>;

/** A method of the table: params and context in, result out. */
type Method = (p: Record<string, unknown>, ctx: CallContext, opts: DispatchOptions) => Promise<unknown>;

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
  const sinkOf = (ctx: CallContext) => (params: Record<string, unknown>) => ctx.notify('session.update', params);
  /** the peer that owns a session now (its continuation runs there), or undefined when it runs here */
  const ownerOf = async (sessionId: string, opts: DispatchOptions): Promise<{ remote: RemoteSessions; owner: string } | undefined> => {
    const remote = opts.localOnly ? undefined : deps.remote;
    const owner = remote ? await remote.ownerOf(sessionId) : undefined;
    return remote && owner ? { remote, owner } : undefined;
  };
  const endSession = (method: 'session.cancel' | 'session.close'): Method => async (p, ctx, opts) => {
    const sessionId = reqString(p, 'sessionId');
    const fwd = await ownerOf(sessionId, opts);
    if (fwd) return fwd.remote.call(fwd.owner, method, p, sinkOf(ctx));
    return method === 'session.cancel' ? deps.runner.cancel(sessionId) : deps.runner.close(sessionId);
  };

  const methods: Readonly<Record<string, Method>> = {
    'acp.capabilities': async () => capabilitiesResult(await deps.catalog()),
    health: async () => ({ status: 'ok', version: VERSION }),
    'session.start': async (p, ctx, opts) => {
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
      const remote = opts.localOnly ? undefined : deps.remote;
      const peer = remote?.peerFor(target);
      if (peer && remote) {
        // the runtime is a peer's: the session lives there from now on; this gateway keeps a pointer
        await deps.runner.close(sessionId);
        await remote.recordRemote(sessionId, peer, target, threadId);
        return remote.call(peer, 'session.start', p, sinkOf(ctx));
      }
      return deps.runner.start({ sessionId, threadId, prompt: text, workingDirectory: wd, target, origin: opts.origin }, sinkOf(ctx));
    },
    'session.message': async (p, ctx, opts) => {
      const sessionId = reqString(p, 'sessionId');
      const text = prompt(p, maxPrompt);
      workingDirectory(p); // validated; the session keeps the folder it started with
      const fwd = await ownerOf(sessionId, opts);
      if (fwd) return fwd.remote.call(fwd.owner, 'session.message', p, sinkOf(ctx));
      return deps.runner.message(sessionId, text, sinkOf(ctx));
    },
    'session.cancel': endSession('session.cancel'),
    'session.close': endSession('session.close'),
    'xworkmate.tasks.get': async (p) => {
      const runId = optString(p, 'runId');
      const sessionId = optString(p, 'sessionId');
      if (!runId && !sessionId) throw invalidParams('runId', 'runId or sessionId is required');
      return deps.runner.task({ ...(runId ? { runId } : {}), ...(sessionId ? { sessionId } : {}) });
    },
    'xworkmate.routing.resolve': async (p) => {
      optString(p, 'sessionId');
      const d = await route(p);
      if (d.kind === 'unavailable') {
        return { unavailable: true, unavailableCode: d.unavailableCode, unavailableMessage: d.unavailableMessage, ...decisionFields(d, deps.acp) };
      }
      return { unavailable: false, ...decisionFields(d, deps.acp) };
    },
  };

  return async (call, ctx, opts = {}) => {
    const m = Object.prototype.hasOwnProperty.call(methods, call.method) ? methods[call.method] : undefined;
    if (!m) throw new GatewayError('METHOD_NOT_FOUND', `method not found: ${call.method}`, { details: { method: call.method } });
    return m(call.params, ctx, opts);
  };
}
