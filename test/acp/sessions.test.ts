/**
 * Session semantics of /acp/rpc, black-box over HTTP/SSE against in-process gateways: cancel and close,
 * start afresh, per-session ordering and cross-session concurrency, a flood of concurrent sessions, agent
 * sessions (fake ACP agent) and durability across a gateway restart on the same SQLite file.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startInProcess, cleanupDirs, tmpDir, waitFor, waitForRunningTurn } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'acp-sessions-token';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const config = {
  channels: [
    { name: 'mock', provider: 'mock', models: ['mock-1'] },
    { name: 'slow', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 80, chunks: 8 } },
  ],
  acp: {
    tokens: [TOKEN],
    allowedOrigins: ['http://localhost:*'],
    agents: [{ id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' }],
    gateways: [
      { id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' },
      { id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' },
    ],
  },
};

type Json = any;
let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess(config);
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

async function call(g: Gateway, method: string, params: unknown): Promise<Json> {
  const res = await fetch(`${g.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  expect(res.status).toBe(200);
  return res.json();
}
const rpc = async (method: string, params: unknown): Promise<Json> => {
  const j = await call(gw, method, params);
  if (!j.ok) throw Object.assign(new Error(j.error.message), { rpc: j.error });
  return j.result;
};

/** SSE call returning the session.update params with arrival times, and the final result. */
async function sse(method: string, params: unknown): Promise<{ updates: Array<Json & { at: number }>; result: Json }> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { accept: 'text/event-stream', authorization: `Bearer ${TOKEN}` },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const updates: Array<Json & { at: number }> = [];
  let result: Json;
  const dec = new TextDecoder();
  let buf = '';
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    buf += dec.decode(chunk, { stream: true });
    let i: number;
    while ((i = buf.indexOf('\n\n')) !== -1) {
      const raw = buf.slice(6, i);
      buf = buf.slice(i + 2);
      if (raw === '[DONE]') continue;
      const m = JSON.parse(raw);
      if (m.method === 'session.update') updates.push({ ...m.params, at: Date.now() });
      else if (m.type === 'res') result = m.ok ? m.result : m;
    }
  }
  return { updates, result };
}

const sid = () => `s-${Math.random().toString(36).slice(2, 10)}`;
const gatewayStart = (sessionId: string, taskPrompt: string, gatewayProviderId = 'switchyard') => ({
  sessionId,
  taskPrompt,
  routing: { explicitExecutionTarget: 'gateway', preferredGatewayProviderId: gatewayProviderId },
});
const running = (sessionId: string) =>
  waitFor(async () => {
    const t = await rpc('xworkmate.tasks.get', { sessionId });
    return t.status === 'running' && t.output.length > 0 ? t : undefined;
  }, `session ${sessionId} to be running`);

describe('session.cancel', () => {
  it('cancels the running turn: {accepted, cancelled:true}, the turn ends cancelled with its partial output', async () => {
    const s = sid();
    const pending = sse('session.start', gatewayStart(s, 'one two three four five six seven eight nine ten', 'slowgw'));
    await running(s);
    expect(await rpc('session.cancel', { sessionId: s })).toEqual({ accepted: true, cancelled: true, runCancelled: true });
    const { result, updates } = await pending;
    expect(result).toMatchObject({ success: false, status: 'cancelled', stopReason: 'cancelled', sessionId: s });
    expect(result.output.length).toBeGreaterThan(0);
    expect('[mock slow-1] You said: one two three four five six seven eight nine ten'.startsWith(result.output)).toBe(true);
    expect(result.output.length).toBeLessThan(70);
    expect(updates.at(-1)).toMatchObject({ type: 'status', event: 'cancelled', status: 'cancelled' });
    const stored = await gw.store.get(s);
    expect(stored!.history.at(-1)).toMatchObject({ status: 'cancelled', messages: [] });
    expect(stored!.status).toBe('active');
    // the session is still usable
    const next = await rpc('session.message', { sessionId: s, taskPrompt: 'after cancel' });
    expect(next).toMatchObject({ status: 'completed', output: '[mock slow-1] You said: after cancel' });
  });
  it('nothing running → {accepted:true, cancelled:false}', async () => {
    const s = sid();
    await rpc('session.start', gatewayStart(s, 'quick'));
    expect(await rpc('session.cancel', { sessionId: s })).toEqual({ accepted: true, cancelled: false, runCancelled: false });
    expect(await rpc('session.cancel', { sessionId: 'never-was' })).toEqual({ accepted: true, cancelled: false, runCancelled: false });
  });
  it('an agent turn is cancelled through ACP session/cancel', async () => {
    const s = sid();
    const pending = rpc('session.start', { sessionId: s, taskPrompt: 'slow', executionTarget: 'agent', provider: 'fake' });
    await running(s);
    expect(await rpc('session.cancel', { sessionId: s })).toEqual({ accepted: true, cancelled: true, runCancelled: true });
    expect(await pending).toMatchObject({ status: 'cancelled', stopReason: 'cancelled', resolvedProviderId: 'fake', resolvedExecutionTarget: 'single-agent' });
    expect(await rpc('session.close', { sessionId: s })).toEqual({ accepted: true, closed: true });
  });
});

describe('session.close', () => {
  it('closes: {accepted, closed:true}; the running turn ends cancelled; later session.message → SESSION_CONTINUATION_UNAVAILABLE', async () => {
    const s = sid();
    const pending = rpc('session.start', gatewayStart(s, 'a b c d e f g h i j', 'slowgw'));
    await running(s);
    expect(await rpc('session.close', { sessionId: s })).toEqual({ accepted: true, closed: true });
    expect(await pending).toMatchObject({ status: 'cancelled' });
    const again = await call(gw, 'session.message', { sessionId: s, taskPrompt: 'hello?' });
    expect(again.error).toMatchObject({ code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } });
    expect((await gw.store.get(s))!.status).toBe('closed');
    expect(await rpc('session.close', { sessionId: s })).toEqual({ accepted: true, closed: false });
    expect(await rpc('session.close', { sessionId: 'never-was' })).toEqual({ accepted: true, closed: false });
  });
  it('closing an agent session stops the agent process', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'spawn-child', executionTarget: 'agent', provider: 'fake' });
    expect(r.status).toBe('completed');
    const child = Number(/child (\d+)/.exec(r.output)![1]);
    expect(alive(child)).toBe(true);
    expect(await rpc('session.close', { sessionId: s })).toEqual({ accepted: true, closed: true });
    await waitFor(() => !alive(child), 'the agent process group to be gone');
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('session.start on an existing session', () => {
  it('starts it afresh: the old history is gone, ids are new, seq keeps increasing', async () => {
    const s = sid();
    const a = await sse('session.start', gatewayStart(s, 'first'));
    await rpc('session.message', { sessionId: s, taskPrompt: 'second' });
    expect((await gw.store.get(s))!.history).toHaveLength(2);
    const b = await sse('session.start', gatewayStart(s, 'third'));
    expect(b.result).toMatchObject({ status: 'completed', output: '[mock mock-1] You said: third' });
    const rec = (await gw.store.get(s))!;
    expect(rec.history.map((t) => t.prompt)).toEqual(['third']);
    expect(Math.min(...b.updates.map((u) => u.seq))).toBeGreaterThan(Math.max(...a.updates.map((u) => u.seq)));
  });
  it('two concurrent starts of one sessionId: the later one replaces the earlier (cancelled), one record', async () => {
    const s = sid();
    const first = rpc('session.start', gatewayStart(s, 'first start a b c d e f', 'slowgw'));
    await running(s);
    const second = await rpc('session.start', gatewayStart(s, 'second start', 'slowgw'));
    expect(await first).toMatchObject({ status: 'cancelled' });
    expect(second).toMatchObject({ status: 'completed', output: '[mock slow-1] You said: second start' });
    const rec = (await gw.store.get(s))!;
    expect(rec.history.map((t) => [t.prompt, t.status])).toEqual([['second start', 'completed']]);
  });
  it('closes the old agent runtime session (its process ends)', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'spawn-child', executionTarget: 'agent', provider: 'fake' });
    const child = Number(/child (\d+)/.exec(r.output)![1]);
    const again = await rpc('session.start', { sessionId: s, taskPrompt: 'fresh start', executionTarget: 'agent', provider: 'fake' });
    expect(again.output).toContain('echo: fresh start');
    await waitFor(() => !alive(child), 'the old agent process group to be gone');
    await rpc('session.close', { sessionId: s });
  });
});

describe('ordering and concurrency', () => {
  it('two messages sent at once on one session run one after the other, in arrival order', async () => {
    const s = sid();
    await rpc('session.start', gatewayStart(s, 'warm up', 'slowgw'));
    const first = sse('session.message', { sessionId: s, taskPrompt: 'first message here' });
    await waitForRunningTurn(gw.url, s);
    const second = sse('session.message', { sessionId: s, taskPrompt: 'second message here' });
    const [A, B] = await Promise.all([first, second]);
    expect(A.result).toMatchObject({ status: 'completed', output: '[mock slow-1] You said: first message here' });
    expect(B.result).toMatchObject({ status: 'completed', output: '[mock slow-1] You said: second message here' });
    const aDone = A.updates.find((u) => u.event === 'completed')!;
    const bStart = B.updates.find((u) => u.event === 'started')!;
    expect(B.updates[0]).toMatchObject({ type: 'status', event: 'queued' });
    expect(bStart.seq).toBeGreaterThan(aDone.seq);
    expect(bStart.at).toBeGreaterThanOrEqual(aDone.at);
    const all = [...A.updates, ...B.updates].sort((x, y) => x.seq - y.seq);
    expect(new Set(all.map((u) => u.seq)).size).toBe(all.length);
    const stored = (await gw.store.get(s))!;
    expect(stored.history.map((t) => t.prompt)).toEqual(['warm up', 'first message here', 'second message here']);
  });

  it('two sessions run concurrently (their turns overlap in time)', async () => {
    const [a, b] = [sid(), sid()];
    const t0 = Date.now();
    const [A, B] = await Promise.all([
      sse('session.start', gatewayStart(a, 'p q r s t u v', 'slowgw')),
      sse('session.start', gatewayStart(b, 'p q r s t u v', 'slowgw')),
    ]);
    const span = (x: typeof A) => ({ start: x.updates.find((u) => u.event === 'started')!.at, end: x.updates.find((u) => u.event === 'completed')!.at });
    const sa = span(A);
    const sb = span(B);
    expect(sa.start).toBeLessThan(sb.end);
    expect(sb.start).toBeLessThan(sa.end);
    const one = sa.end - sa.start;
    expect(Date.now() - t0).toBeLessThan(one * 2);
  });

  it('a flood of 50 concurrent sessions all complete', async () => {
    const ids = Array.from({ length: 50 }, (_, i) => `flood-${i}-${sid()}`);
    const results = await Promise.all(ids.map((s, i) => rpc('session.start', gatewayStart(s, `flood prompt ${i}`))));
    results.forEach((r, i) =>
      expect(r).toMatchObject({ success: true, status: 'completed', sessionId: ids[i], output: `[mock mock-1] You said: flood prompt ${i}` }),
    );
    expect(new Set(results.map((r) => r.runId)).size).toBe(50);
  });
});

describe('agent sessions', () => {
  it('tool calls and plans arrive as step updates carrying the ACP update as structuredEvent', async () => {
    const s = sid();
    const tool = await sse('session.start', { sessionId: s, taskPrompt: 'tool', executionTarget: 'agent', provider: 'fake' });
    expect(tool.result.status).toBe('completed');
    const steps = tool.updates.filter((u) => u.type === 'step');
    expect(steps.length).toBeGreaterThanOrEqual(3);
    expect(steps[0]).toMatchObject({ event: 'tool_call', structuredEvent: { sessionUpdate: 'tool_call' } });
    const plan = await sse('session.message', { sessionId: s, taskPrompt: 'plan' });
    expect(plan.updates.find((u) => u.event === 'plan')).toMatchObject({ type: 'step', structuredEvent: { sessionUpdate: 'plan' } });
    for (const u of [...tool.updates, ...plan.updates])
      expect(u).toMatchObject({ sessionId: s, threadId: s, turnId: expect.any(String), seq: expect.any(Number) });
    await rpc('session.close', { sessionId: s });
  });
  it('an agent that crashes fails the turn with a clear error, and the gateway stays up', async () => {
    const s = sid();
    const r = await rpc('session.start', { sessionId: s, taskPrompt: 'crash', executionTarget: 'agent', provider: 'fake' });
    expect(r).toMatchObject({ success: false, status: 'failed' });
    expect(r.error).toContain('fake');
    expect((await rpc('health', {})).status).toBe('ok');
    // the next turn starts a new agent process
    expect(await rpc('session.message', { sessionId: s, taskPrompt: 'still there?' })).toMatchObject({ status: 'completed' });
    await rpc('session.close', { sessionId: s });
  });
});

describe('durability', () => {
  it('a session survives a gateway restart on the same SQLite file and continues with its history', async () => {
    const dir = tmpDir();
    const store = { kind: 'sqlite', path: join(dir, 'acp.db') };
    const cfg = { ...config, acp: { ...config.acp, agents: [] }, store };
    const s = sid();
    const g1 = await startInProcess(cfg);
    let oldRun: string;
    try {
      const r1 = await call(g1, 'session.start', gatewayStart(s, 'remember the word zebra'));
      expect(r1.result.status).toBe('completed');
      const r2 = await call(g1, 'session.message', { sessionId: s, taskPrompt: 'and the word yak' });
      expect(r2.result.status).toBe('completed');
      oldRun = r1.result.runId;
    } finally {
      await g1.close();
    }
    const g2 = await startInProcess(cfg);
    try {
      const r3 = await call(g2, 'session.message', { sessionId: s, taskPrompt: 'which words?' });
      expect(r3.result).toMatchObject({
        success: true,
        status: 'completed',
        output: '[mock mock-1] You said: which words?',
        resolvedGatewayProviderId: 'switchyard',
        resolvedModel: 'mock-1',
      });
      const rec = (await g2.store.get(s))!;
      expect(rec.history.map((t) => t.prompt)).toEqual(['remember the word zebra', 'and the word yak', 'which words?']);
      expect(rec.history.flatMap((t) => t.messages).map((m) => [m.role, m.content])).toEqual([
        ['user', 'remember the word zebra'],
        ['assistant', '[mock mock-1] You said: remember the word zebra'],
        ['user', 'and the word yak'],
        ['assistant', '[mock mock-1] You said: and the word yak'],
        ['user', 'which words?'],
        ['assistant', '[mock mock-1] You said: which words?'],
      ]);
      // a turn of the previous process is readable from the store
      const old = await call(g2, 'xworkmate.tasks.get', { runId: oldRun });
      expect(old.result).toMatchObject({ status: 'completed', runId: oldRun, sessionId: s, output: '[mock mock-1] You said: remember the word zebra' });
      // closed sessions stay closed across restarts
      await call(g2, 'session.close', { sessionId: s });
    } finally {
      await g2.close();
    }
    const g3 = await startInProcess(cfg);
    try {
      const r = await call(g3, 'session.message', { sessionId: s, taskPrompt: 'back?' });
      expect(r.error).toMatchObject({ code: -32002, data: { code: 'SESSION_CONTINUATION_UNAVAILABLE' } });
    } finally {
      await g3.close();
    }
  });
});
