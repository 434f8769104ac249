/**
 * Adapter from the ACP stdio agent runtime (runtimes/agent/agent-session.ts, one agent process per session)
 * to the Runtime interface. ACP `session/update`s become `session.update`s: `agent_message_chunk` text →
 * `delta`, `tool_call`/`tool_call_update` → step `tool_call`, `plan` → step `plan`, anything else → step
 * `running`; each carries the ACP update unchanged as `structuredEvent`.
 *
 * One runtime = one ACP session of the gateway; it may outlive several agent processes (idle timeout, eviction
 * at the process cap, crash): the next turn starts a new one, which `session/load`s the previous agent session
 * where the agent supports it. With `llm`, the session's private folder and model-API token (launch.ts) are
 * made once, shared by those processes, and removed/revoked at close.
 *
 * Warm spares (warm-pool.ts): a process is taken from the agent's pool instead of spawned when one is ready —
 * with `llm`, only for the session's first process and only when the session's model is the one the spare's
 * token pins (the spare's folder and token become the session's); without, for any process of the session.
 */
import path from 'node:path';
import { safeFolderName } from '../../working-directory.js';
import { AgentSession, type AgentSpec, type SessionUpdate } from './agent-session.js';
import type { Logger } from '../../../util/log.js';
import type { AgentConfig } from '../../../config/schema.js';
import { launchEnv, openLlmSession, type LlmContext, type LlmSession } from './launch.js';
import type { AgentProcessLimiter } from './limits.js';
import type { WarmPool } from './warm-pool.js';
import type { Runtime, RuntimeContext, TurnInput, TurnOutput, UpdateEvent } from '../../runtime.js';

export interface AgentRuntimeOptions {
  /** the launch spec (launch.ts `resolveAgent`) */
  agent: AgentSpec;
  /** the config entry, for `llm` */
  config?: AgentConfig;
  /** required for entries with `llm` */
  llm?: LlmContext;
  workspaceRoot: string;
  idleTimeoutMs?: number;
  limiter?: AgentProcessLimiter;
  /** this agent's warm spares (`acp.agents[].warm`) */
  warm?: WarmPool;
  /** how long an agent has to end a turn it was told to stop (AgentSession; default 10 s) */
  cancelGraceMs?: number;
  log?: Logger;
}

export function mapAgentUpdate(u: SessionUpdate): UpdateEvent {
  const content = u.content as { type?: string; text?: unknown } | undefined;
  if (u.sessionUpdate === 'agent_message_chunk' && content?.type === 'text' && typeof content.text === 'string') {
    return { type: 'delta', event: 'delta', delta: content.text, text: content.text, structuredEvent: u };
  }
  if (u.sessionUpdate === 'tool_call' || u.sessionUpdate === 'tool_call_update') {
    const title = typeof u.title === 'string' ? u.title : undefined;
    return { type: 'step', event: 'tool_call', ...(title ? { text: title } : {}), structuredEvent: u };
  }
  if (u.sessionUpdate === 'plan') return { type: 'step', event: 'plan', structuredEvent: u };
  return { type: 'step', event: 'running', structuredEvent: u };
}

/** `p` (its rejection too), or sooner when `signal` aborts */
function untilAborted(p: Promise<unknown>, signal: AbortSignal): Promise<unknown> {
  if (signal.aborted) return Promise.resolve();
  let onAbort = (): void => undefined;
  const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', (onAbort = () => resolve()), { once: true }));
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

export function createAgentRuntime(o: AgentRuntimeOptions, ctx: RuntimeContext): Runtime {
  let llm: Promise<LlmSession> | undefined;
  /**
   * Starts the taken spare's replacement. Called once this session's first update went out (or its turn ended):
   * a spawn blocks the event loop for a moment, which must not fall into the path the spare was taken to spare.
   */
  let replenish: (() => void) | undefined;
  const refill = () => {
    const r = replenish;
    replenish = undefined;
    r?.();
  };
  let lastAcpSessionId: string | undefined;
  const make = async (): Promise<AgentSession> => {
    let agent = ctx.permissionPolicy ? { ...o.agent, permissions: ctx.permissionPolicy } : o.agent;
    const withLlm = o.config?.llm !== undefined && o.llm !== undefined;
    // an llm session's later processes share its first one's folder: only the first can be a spare
    const booted = withLlm && llm ? undefined : await o.warm?.take(ctx.sessionId, ctx.bindModel, ctx.keyId);
    if (booted?.llm) llm = Promise.resolve(booted.llm);
    if (booted) replenish = booted.replenish;
    if (o.config?.llm && o.llm) {
      // role routing chose the model: the session token pins the agent's every model request to it
      const pending = (llm ??= openLlmSession(o.config, o.llm, ctx.sessionId, ctx.bindModel, ctx.keyId));
      const l = await pending.catch((err: unknown) => {
        if (llm === pending) llm = undefined; // the next turn tries again
        throw err;
      });
      agent = { ...agent, env: launchEnv(agent, o.config, l) };
    }
    return new AgentSession({
      agent,
      workspaceRoot: workspaceRootFor(o.workspaceRoot, ctx.keyId),
      ...(ctx.workingDirectory ? { workingDirectory: ctx.workingDirectory } : {}),
      sessionName: ctx.sessionId,
      ...(ctx.permissions ? { relayPermission: ctx.permissions } : {}),
      ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
      ...(o.limiter ? { limiter: o.limiter } : {}),
      ...(booted ? { booted } : {}),
      ...(lastAcpSessionId ? { resumeSessionId: lastAcpSessionId } : {}),
      ...(o.cancelGraceMs !== undefined ? { cancelGraceMs: o.cancelGraceMs } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
  };
  let session: AgentSession | undefined;
  let started: Promise<unknown> | undefined;
  let closed = false;
  const run = async (turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput> => {
    // the agent process may have ended between turns (idle timeout, eviction, crash): the next turn starts a new
    // one; a process evicted for another session in the moment between its start and this turn gets one retry
    for (let attempt = 0; ; attempt++) {
      // a turn given up on may still be ending; an agent that does not end it is stopped (a new process follows).
      // A cancel of this turn ends the wait
      if (session) await untilAborted(session.settled(), signal);
      if (signal.aborted || closed) return { output: '', stopReason: 'cancelled' };
      if (!session || session.status === 'closed') {
        const made = await make();
        // closed while the private folder was prepared: start nothing (close() already ran; a taken spare stops)
        if (closed) {
          await made.close();
          // a spare's folder and token, taken while close() ran, are this session's to dispose (idempotent)
          await (await llm?.catch(() => undefined))?.dispose();
          return { output: '', stopReason: 'cancelled' };
        }
        const s = (session = made);
        started = s.start().then((r) => {
          lastAcpSessionId = s.acpSessionId;
          return r;
        });
      }
      // a cancel during start-up (initialize, session/new: up to the start timeout) ends the turn now; the start
      // goes on, and the process it makes is the session's, for its next turn (close() stops it, as the idle timeout does)
      await untilAborted(started!, signal);
      if (signal.aborted || closed) return { output: '', stopReason: 'cancelled' };
      if (session.status !== 'closed' || attempt > 0) break;
    }
    const s = session;
    // role routing: bound by the gateway's own pin (llm), else through the agent's model option
    const pinned = ctx.bindModel !== undefined && o.config?.llm !== undefined && o.llm !== undefined;
    if (ctx.bindModel !== undefined && !pinned) await s.bindModel(ctx.bindModel);
    const onAbort = () => s.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
    // the agent's model requests during this turn are children of the turn's span (tracing on)
    const wired = turn.trace !== undefined && llm ? await llm.catch(() => undefined) : undefined;
    wired?.trace(turn.trace);
    try {
      const r = await s.prompt(turn.text, (u) => {
        emit(mapAgentUpdate(u));
        if (replenish) refill();
      });
      return {
        output: r.text,
        stopReason: r.stopReason,
        // the agent keeps its conversation itself: the session's record leaves `messages` empty (docs/sessions.md),
        // and the turn's output is stored once, as `output`, not a second time as an assistant message
        messages: [],
        ...(ctx.bindModel !== undefined ? { modelBindingVerified: true, model: ctx.bindModel } : {}),
      };
    } finally {
      signal.removeEventListener('abort', onAbort);
      wired?.trace(undefined);
    }
  };
  return {
    async prompt(turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput> {
      try {
        return await run(turn, emit, signal);
      } finally {
        refill();
      }
    },
    close: async () => {
      closed = true;
      refill();
      await session?.close();
      const l = await llm?.catch(() => undefined);
      await l?.dispose();
    },
  };
}

/**
 * Where a session's folder is resolved: a virtual key's sessions under `keys/<key id>/` of the root, so that no
 * folder name a key can give (its sessions' ids, another client's path) reaches another key's files; the
 * operator's `acp.tokens` sessions under the root itself.
 */
export function workspaceRootFor(root: string, keyId: string | undefined): string {
  return keyId === undefined ? root : path.join(root, 'keys', safeFolderName(keyId));
}
