/**
 * Issue 12: the xworkmate app's own request shapes (acp-rpc.md and the 2026-10 addendum, with its `/Users/...`
 * paths and `metadata`) against a real in-process gateway, over HTTP, SSE and WebSocket.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileURLToPath } from 'node:url';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import WebSocket from 'ws';
import { cleanupDirs, startInProcess, tmpDir } from '../helpers/env.js';
import type { Gateway } from '../../src/gateway.js';

const TOKEN = 'app-contract-token-1';
const FAKE_AGENT = fileURLToPath(new URL('../fakes/fake-acp-agent.mjs', import.meta.url));
const root = join(tmpDir('sy-app-ws-'), 'workspaces');

let gw: Gateway;
beforeAll(async () => {
  gw = await startInProcess({
    channels: [
      { name: 'mock', provider: 'mock', models: ['mock-1'] },
      { name: 'slowmock', provider: 'mock', models: ['slow-1'], options: { chunkDelayMs: 25 } },
    ],
    acp: {
      tokens: [TOKEN],
      workspaceRoot: root,
      agents: [{ id: 'fake', label: 'Fake Agent', command: process.execPath, args: [FAKE_AGENT], permissions: 'allow' }],
      gateways: [
        { id: 'switchyard', label: 'Switchyard', kind: 'channels', model: 'mock-1' },
        { id: 'slowgw', label: 'Slow', kind: 'channels', model: 'slow-1' },
      ],
    },
  });
});
afterAll(async () => {
  await gw?.close();
  cleanupDirs();
});

type Json = any;
let n = 0;
async function http(method: string, params: Record<string, unknown>): Promise<Json> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: `req-${++n}`, method, params }),
  });
  return res.json();
}
async function sse(method: string, params: Record<string, unknown>): Promise<{ final: Json; updates: Json[] }> {
  const res = await fetch(`${gw.url}/acp/rpc`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: `req-${++n}`, method, params }),
  });
  const text = await res.text();
  const msgs = text
    .split('\n\n')
    .filter((b) => b.startsWith('data: ') && b !== 'data: [DONE]')
    .map((b) => JSON.parse(b.slice(6)));
  return { final: msgs.find((m) => 'id' in m), updates: msgs.filter((m) => m.method === 'session.update').map((m) => m.params) };
}
async function ws(method: string, params: Record<string, unknown>): Promise<{ final: Json; updates: Json[] }> {
  const sock = new WebSocket(gw.url.replace(/^http/, 'ws') + '/acp', { headers: { authorization: `Bearer ${TOKEN}` } });
  await new Promise((r, j) => (sock.once('open', r), sock.once('error', j)));
  const updates: Json[] = [];
  const id = `ws-${++n}`;
  const final = await new Promise<Json>((resolve) => {
    sock.on('message', (d) => {
      const m = JSON.parse(d.toString());
      if (m.method === 'session.update') updates.push(m.params);
      else if (m.id === id) resolve(m);
    });
    sock.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
  });
  sock.close();
  return { final, updates };
}

/** session.start as the app sends it for a local agent task (acp-rpc.md; the app's routing object). */
const appStart = (sessionId: string, taskPrompt: string, workingDirectory: string) => ({
  sessionId,
  threadId: sessionId,
  taskPrompt,
  workingDirectory,
  provider: 'fake',
  requestedExecutionTarget: 'agent',
  routing: {
    routingMode: 'explicit',
    explicitExecutionTarget: 'agent',
    explicitProviderId: 'fake',
    preferredGatewayProviderId: 'switchyard',
    explicitModel: '',
  },
  metadata: { source: 'xworkmate-app', xworkmateProductCapability: { schemaVersion: 1, mode: 'code' } },
});

describe('working directories from the app (absolute client paths)', () => {
  it('an absolute /Users/... path maps to a stable folder under the root, echoed back; never used raw', async () => {
    const r = await http('session.start', appStart('wd-1', 'cwd', '/Users/me/project'));
    expect(r.error).toBeUndefined();
    expect(r.result).toMatchObject({ success: true, status: 'completed', remoteWorkspaceRefKind: 'remotePath' });
    const rel: string = r.result.remoteWorkingDirectory;
    expect(rel).toMatch(/^clients\/project-[0-9a-f]{12}$/);
    expect(r.result.output).toContain(join(root, rel));
    expect(r.result.output).not.toContain('/Users/me');
    expect(existsSync(join(root, rel))).toBe(true);

    // the same app folder → the same server folder, for a new session and for the next message
    const again = await sse('session.start', appStart('wd-2', 'cwd', '/Users/me/project'));
    expect(again.final.result.remoteWorkingDirectory).toBe(rel);
    const msg = await http('session.message', { sessionId: 'wd-1', threadId: 'wd-1', taskPrompt: 'cwd', workingDirectory: '/Users/me/project' });
    expect(msg.result).toMatchObject({ status: 'completed', remoteWorkingDirectory: rel });
    expect(msg.result.output).toContain(join(root, rel));

    // another app folder → another server folder; Windows paths too; over the WebSocket
    const other = await ws('session.start', appStart('wd-3', 'cwd', 'C:\\Users\\me\\other'));
    expect(other.final.result.remoteWorkingDirectory).toMatch(/^clients\/other-[0-9a-f]{12}$/);
    expect(other.final.result.remoteWorkingDirectory).not.toBe(rel);
  });

  it('the confinement rules stay: ".." and NUL are refused, absolute or not', async () => {
    for (const wd of ['/Users/me/../../etc', '../x', 'a/\u0000b']) {
      const r = await http('session.start', appStart('wd-bad', 'cwd', wd));
      expect(r.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field: 'workingDirectory' } });
    }
  });

  it('gateway paths accept the app path too and echo the mapped folder', async () => {
    const r = await http('session.start', {
      sessionId: 'wd-gw',
      taskPrompt: 'hello',
      workingDirectory: '/Users/me/project',
      requestedExecutionTarget: 'gateway',
      gatewayProviderId: 'switchyard',
    });
    expect(r.result).toMatchObject({ status: 'completed', remoteWorkspaceRefKind: 'remotePath' });
    expect(r.result.remoteWorkingDirectory).toMatch(/^clients\/project-[0-9a-f]{12}$/);
  });
});

const LONG = Array.from({ length: 60 }, (_, i) => `word${i}`).join(' ');
const gwStart = (sessionId: string) => ({
  sessionId,
  taskPrompt: LONG,
  requestedExecutionTarget: 'gateway',
  gatewayProviderId: 'slowgw',
  routing: { routingMode: 'explicit', explicitExecutionTarget: 'gateway', preferredGatewayProviderId: 'slowgw' },
});
const until = async <T>(fn: () => Promise<T | undefined>, what: string, ms = 15_000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 30));
  }
};
function expectContiguous(seqs: number[]) {
  expect(seqs.length).toBeGreaterThan(3);
  for (let i = 1; i < seqs.length; i++) expect(seqs[i]).toBe((seqs[i - 1] as number) + 1);
}

describe('resume after a disconnect (issue 12 item 7)', () => {
  it('a dropped SSE stream: tasks.get afterSeq returns exactly the rest (nothing missed, nothing repeated)', async () => {
    const sessionId = 'resume-sse';
    const ac = new AbortController();
    const res = await fetch(`${gw.url}/acp/rpc`, {
      method: 'POST',
      signal: ac.signal,
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 'drop-1', method: 'session.start', params: gwStart(sessionId) }),
    });
    const seen: Json[] = [];
    const reader = res.body!.getReader();
    let buf = '';
    while (seen.length < 5) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += Buffer.from(value).toString();
      let i;
      while ((i = buf.indexOf('\n\n')) !== -1) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        if (!block.startsWith('data: ') || block === 'data: [DONE]') continue;
        const m = JSON.parse(block.slice(6));
        if (m.method === 'session.update') seen.push(m.params);
      }
    }
    ac.abort(); // the client drops; the turn goes on
    const k = seen.at(-1).seq as number;
    const done = await until(async () => {
      const t = await http('xworkmate.tasks.get', { sessionId });
      return t.result?.status === 'completed' ? t.result : undefined;
    }, 'the turn to finish');
    expect(done.output).toContain('word59');
    const missed = await http('xworkmate.tasks.get', { sessionId, afterSeq: k });
    const rest: Json[] = missed.result.updates;
    expect(rest[0].seq).toBe(k + 1);
    const all = [...seen, ...rest];
    expectContiguous(all.map((u) => u.seq));
    expect(all.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    expect(missed.result.lastSeq).toBe(all.at(-1).seq);
    // the text the client shows: what it had plus what it missed = the whole output
    const text = all
      .filter((u) => u.type === 'delta')
      .map((u) => u.delta)
      .join('');
    expect(text).toBe(done.output);
    // nothing after the last one
    expect((await http('xworkmate.tasks.get', { sessionId, afterSeq: all.at(-1).seq })).result.updates).toEqual([]);
  });

  it('tasks.get pages the missed updates with limit: at most that many, lastSeq still the session’s highest', async () => {
    const sessionId = 'resume-sse'; // the turn of the test above, ended
    const all = (await http('xworkmate.tasks.get', { sessionId, afterSeq: 0 })).result;
    const page = (await http('xworkmate.tasks.get', { sessionId, afterSeq: 2, limit: 3 })).result;
    expect(page.updates.map((u: Json) => u.seq)).toEqual([3, 4, 5]);
    expect(page.updates).toEqual(all.updates.slice(2, 5));
    expect(page.lastSeq).toBe(all.lastSeq);
    for (const limit of [0, 1001, 1.5, '3'])
      expect((await http('xworkmate.tasks.get', { sessionId, afterSeq: 2, limit })).error).toMatchObject({
        code: -32602,
        data: { code: 'INVALID_PARAMS', field: 'limit' },
      });
  });

  it('a WebSocket opened with sessionId & afterSeq gets the missed updates, then the live ones, each once', async () => {
    const sessionId = 'resume-ws';
    const running = http('session.start', gwStart(sessionId));
    const early = await until(async () => {
      const t = await http('xworkmate.tasks.get', { sessionId, afterSeq: 0 });
      return t.result?.updates?.length >= 3 ? t.result.updates : undefined;
    }, 'a few updates');
    const k = early[1].seq as number;
    const sock = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=${sessionId}&afterSeq=${k}`, { headers: { authorization: `Bearer ${TOKEN}` } });
    const got: Json[] = [];
    const finished = new Promise<void>((resolve) =>
      sock.on('message', (d) => {
        const m = JSON.parse(d.toString());
        if (m.method !== 'session.update') return;
        got.push(m.params);
        if (m.params.type === 'status' && m.params.event === 'completed') resolve();
      }),
    );
    await finished;
    sock.close();
    const result = (await running).result;
    expect(result.status).toBe('completed');
    expect(got[0].seq).toBe(k + 1);
    expectContiguous([...early.slice(0, 2), ...got].map((u) => u.seq));
    expect(got.filter((u) => u.type === 'delta').length).toBeGreaterThan(0);
  });

  it('bad resume parameters are refused at the upgrade; afterSeq without sessionId is refused by tasks.get', async () => {
    const status = await new Promise<number>((resolve) => {
      const sock = new WebSocket(`${gw.url.replace(/^http/, 'ws')}/acp?sessionId=x&afterSeq=-1`, { headers: { authorization: `Bearer ${TOKEN}` } });
      sock.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      sock.once('open', () => resolve(101));
    });
    expect(status).toBe(400);
    const r = await http('xworkmate.tasks.get', { runId: 'run_x', afterSeq: 3 });
    expect(r.error).toMatchObject({ code: -32602, data: { code: 'INVALID_PARAMS', field: 'sessionId' } });
  });
});

describe('task events (issue 12 item 5)', () => {
  it('every phase is a task update; tasks.get returns them, kept in the store; cancel answers runCancelled', async () => {
    const r = await sse('session.start', appStart('te-1', 'hello there', 'demo'));
    expect(r.final.result.status).toBe('completed');
    const tasks = r.updates.filter((u) => u.type === 'task');
    expect(tasks.map((u) => u.event)).toEqual(['task.started', 'task.completed']);
    expect(tasks[0]).toMatchObject({
      sessionId: 'te-1',
      threadId: 'te-1',
      turnId: r.final.result.turnId,
      pending: true,
      error: false,
      task: { taskId: r.final.result.turnId, phase: 'started', providerId: 'fake' },
    });
    expect(tasks[1]).toMatchObject({ pending: false, error: false, task: { phase: 'completed', detail: { status: 'completed' } } });
    expect(Date.parse(tasks[1].task.at)).toBeGreaterThan(0);
    // the final status is still the last update
    expect(r.updates.at(-1)).toMatchObject({ type: 'status', event: 'completed' });
    const t = await http('xworkmate.tasks.get', { sessionId: 'te-1' });
    expect(t.result.taskEvents.map((e: Json) => e.event)).toEqual(['task.started', 'task.completed']);
    expect(t.result.taskEvents.map((e: Json) => e.seq)).toEqual(tasks.map((u) => u.seq));
    expect(t.result.pendingPermissions).toEqual([]);
    const c = await http('session.cancel', { sessionId: 'te-1' });
    expect(c.result).toEqual({ accepted: true, cancelled: false, runCancelled: false });
  });

  it('a failed turn: task.failed with error true and the error in its detail', async () => {
    const r = await sse('session.start', { sessionId: 'te-2', taskPrompt: 'crash', provider: 'fake', requestedExecutionTarget: 'agent' });
    expect(r.final.result.status).toBe('failed');
    const last = r.updates.filter((u) => u.type === 'task').at(-1);
    expect(last).toMatchObject({ event: 'task.failed', pending: false, error: true, task: { phase: 'failed', detail: { status: 'failed' } } });
    expect(typeof last.task.detail.error).toBe('string');
  });
});
