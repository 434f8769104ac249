/**
 * Adapter from the ACP stdio agent runtime (runtimes/agent/agent-session.ts, one agent process per session)
 * to the Runtime interface. ACP `session/update`s become `session.update`s: `agent_message_chunk` text →
 * `delta`, `tool_call`/`tool_call_update` → step `tool_call`, `plan` → step `plan`, anything else → step
 * `running`; each carries the ACP update unchanged as `structuredEvent`.
 */
import { AgentSession, type AgentSpec, type SessionUpdate } from './agent-session.js';
import type { Logger } from '../../../util/log.js';
import type { Runtime, RuntimeContext, TurnInput, TurnOutput, UpdateEvent } from '../../runtime.js';

export interface AgentRuntimeOptions {
  agent: AgentSpec;
  workspaceRoot: string;
  idleTimeoutMs?: number;
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

export function createAgentRuntime(o: AgentRuntimeOptions, ctx: RuntimeContext): Runtime {
  const make = () =>
    new AgentSession({
      agent: ctx.permissionPolicy ? { ...o.agent, permissions: ctx.permissionPolicy } : o.agent,
      workspaceRoot: o.workspaceRoot,
      ...(ctx.workingDirectory ? { workingDirectory: ctx.workingDirectory } : {}),
      sessionName: ctx.sessionId,
      ...(ctx.permissions ? { relayPermission: ctx.permissions } : {}),
      ...(o.idleTimeoutMs !== undefined ? { idleTimeoutMs: o.idleTimeoutMs } : {}),
      ...(o.log ? { log: o.log } : {}),
    });
  let session: AgentSession | undefined;
  let started: Promise<unknown> | undefined;
  let closed = false;
  return {
    async prompt(turn: TurnInput, emit: (u: UpdateEvent) => void, signal: AbortSignal): Promise<TurnOutput> {
      // the agent process may have ended between turns (idle timeout, crash): the next turn starts a new one
      if (!session || session.status === 'closed') {
        session = make();
        started = session.start();
      }
      await started;
      if (signal.aborted || closed) return { output: '', stopReason: 'cancelled' };
      const s = session;
      const onAbort = () => s.cancel();
      signal.addEventListener('abort', onAbort, { once: true });
      try {
        const r = await s.prompt(turn.text, (u) => emit(mapAgentUpdate(u)));
        return { output: r.text, stopReason: r.stopReason, messages: [{ role: 'user', content: turn.text }, { role: 'assistant', content: r.text }] };
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
    close: async () => {
      closed = true;
      await session?.close();
    },
  };
}
