/** Small /acp/rpc client for the agent suites: one JSON-RPC call, and the agent pids a gateway logged. */
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
