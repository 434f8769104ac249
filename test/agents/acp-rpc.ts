/** Small /acp/rpc client for the agent suites: one JSON-RPC call (plain or streamed), a session's whole update log, and the agent pids a gateway logged. */
import { expect } from 'vitest';

type Json = any;

export async function rpc(baseUrl: string, token: string, method: string, params: Json, timeoutMs = 120_000): Promise<Json> {
  const res = await fetch(`${baseUrl}/acp/rpc`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: `${method}-${Date.now()}`, method, params }),
    signal: AbortSignal.timeout(timeoutMs),
  });
  expect(res.status).toBe(200);
  return res.json();
}

/** One /acp/rpc call streamed (SSE): every `session.update` its client was sent, and the result. */
export async function rpcStreamed(baseUrl: string, token: string, method: string, params: Json): Promise<{ updates: Json[]; result: Json }> {
  const res = await fetch(`${baseUrl}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: `${method}-${Date.now()}`, method, params }),
    signal: AbortSignal.timeout(60_000),
  });
  expect(res.status).toBe(200);
  const messages = (await res.text()).split('\n\n').filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]');
  const parsed = messages.map((m) => JSON.parse(m.slice(6)));
  const final = parsed.at(-1);
  return { updates: parsed.filter((m) => m.method === 'session.update').map((m) => m.params), result: final.result ?? final };
}

/** A session's whole update log, read a page at a time with `afterSeq` (xworkmate.tasks.get). */
export async function wholeUpdateLog(baseUrl: string, token: string, sessionId: string): Promise<Json[]> {
  const all: Json[] = [];
  let after = 0;
  for (;;) {
    const page = (await rpc(baseUrl, token, 'xworkmate.tasks.get', { sessionId, afterSeq: after, limit: 50 })).result;
    all.push(...page.updates);
    if (page.updates.length === 0 || page.updates.at(-1).seq >= page.lastSeq) return all;
    after = page.updates.at(-1).seq;
  }
}

export const agentRouting = (providerId: string) => ({ routingMode: 'explicit', explicitExecutionTarget: 'agent', explicitProviderId: providerId });

/** The JSON log lines among `lines` (gateway stderr, or a memory logger's lines). */
export function jsonLines(lines: string[] | string): Json[] {
  const all = typeof lines === 'string' ? lines.split('\n') : lines.flatMap((l) => l.split('\n'));
  const out: Json[] = [];
  for (const l of all) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l));
    } catch {
      // a partial line
    }
  }
  return out;
}

/** pids of the agent processes started for `sessionId` (the "agent session started" log line), oldest first */
export function agentPids(lines: string[] | string, sessionId?: string): number[] {
  return jsonLines(lines)
    .filter((l) => l.msg === 'agent session started' && (sessionId === undefined || l.session === sessionId))
    .map((l) => l.pid as number);
}
